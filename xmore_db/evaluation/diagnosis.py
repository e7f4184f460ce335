"""Why a result came out as it did: what retrieval found, and how well the classifier reads it.

Pure functions over the eval arrays, plus the reader of a corpus' attribute
file (the ground truth a generated corpus has and a web corpus does not).

- coarse / fine *same class*: the share of coarse neighbours, and of the k
  fine captions, whose pair has the query's class. Known only where the
  corpus' pairs are labelled (`--corpus-attributes`); omitted otherwise.
- *caption accuracy*: the share of the k fine captions that the classifier,
  reading the caption alone, assigns to the query's class. p_T is their mean.
- *captions read right*: among fine captions whose pair's class is known, the
  share the classifier assigns to that pair's own class: how well the
  classifier's text tower reads captions, whatever retrieval did.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import method
from ..errors import ConfigError
from ..store import pair_id

UNKNOWN = -2  # the pair is not in the attribute file
OTHER = -1  # the pair is known and its value is none of the dataset's classes


def read_corpus_attributes(corpus: str, path: Path) -> dict[str, dict[str, str]]:
    """{column: {pair id: value}} from a CSV with a `key` column (the ingest key) and attribute columns."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c for c in (reader.fieldnames or []) if c != "key"]
            if "key" not in (reader.fieldnames or []) or not columns:
                raise ConfigError(f"corpus attribute file {path} needs a 'key' column and at least one attribute "
                                  f"column, found {', '.join(reader.fieldnames or []) or 'no header'}")
            out: dict[str, dict[str, str]] = {c: {} for c in columns}
            for row in reader:
                pid = pair_id(corpus, row["key"])
                for c in columns:
                    out[c][pid] = (row.get(c) or "").strip()
    except OSError as error:
        raise ConfigError(f"cannot read corpus attribute file {path}: {error.strerror or error}") from None
    return out


def _normal(label: str) -> str:
    return label.strip().lower().replace("_", " ")


def matching_column(labels: Sequence[str], attributes: dict[str, dict[str, str]]) -> str | None:
    """The first attribute column whose values include every class of `labels` (case and '_' ignored)."""
    wanted = {_normal(label) for label in labels}
    for column, values in attributes.items():
        if wanted <= {_normal(v) for v in values.values()}:
            return column
    return None


def pair_classes(pair_ids: Sequence[str], values: dict[str, str], labels: Sequence[str]) -> np.ndarray:
    """(P,) class index of each pair, OTHER for a value outside the labels, UNKNOWN for a pair not listed."""
    index = {_normal(label): i for i, label in enumerate(labels)}
    out = np.full(len(pair_ids), UNKNOWN, dtype=np.int64)
    for row, pid in enumerate(pair_ids):
        if pid in values:
            out[row] = index.get(_normal(values[pid]), OTHER)
    return out


def same_class_share(pair_rows: np.ndarray, classes: np.ndarray, truth: np.ndarray) -> float:
    """Share of retrieved pairs (rows of pair_rows (N, R), -1 padding) whose class is the query's.

    Pairs of unknown class are left out; NaN when no retrieved pair is known.
    """
    pair_rows, truth = np.asarray(pair_rows), np.asarray(truth)
    valid = pair_rows >= 0
    cls = np.where(valid, np.asarray(classes)[np.where(valid, pair_rows, 0)], UNKNOWN)
    known = cls != UNKNOWN
    if not known.any():
        return float("nan")
    return float((cls == truth[:, None])[known].mean())


def caption_predictions(slots: np.ndarray, caption_embeddings: np.ndarray, prompts: np.ndarray,
                        logit_scale: float, k: int) -> np.ndarray:
    """(N, k) the classifier's class for each of the first k fine captions, -1 where there is none."""
    slots = np.asarray(slots)[:, :k]
    out = np.full(slots.shape, -1, dtype=np.int64)
    valid = slots >= 0
    if valid.any():
        p = method.class_probabilities(np.asarray(caption_embeddings)[slots[valid]], prompts, logit_scale)
        out[valid] = np.argmax(p, axis=-1)
    return out


def diagnose(*, slots: np.ndarray, fine_pairs: np.ndarray, coarse_pairs: np.ndarray, pair_ids: Sequence[str],
             caption_embeddings: np.ndarray, prompts: np.ndarray, logit_scale: float, truth: np.ndarray,
             labels: Sequence[str], k: int, attributes: dict[str, dict[str, str]] | None) -> dict:
    """The diagnosis of one dataset at k (see the module's docstring); plain Python values."""
    truth = np.asarray(truth)
    predicted = caption_predictions(slots, caption_embeddings, prompts, logit_scale, k)
    has = predicted >= 0
    out: dict[str, object] = {
        "k": k,
        "captions": int(has.sum()),
        "caption_accuracy": float((predicted == truth[:, None])[has].mean()) if has.any() else float("nan"),
        "attribute": None,
    }
    column = matching_column(labels, attributes) if attributes else None
    if column is None:
        return out
    classes = pair_classes(pair_ids, attributes[column], labels)
    fine = np.asarray(fine_pairs)[:, :k]
    fine_classes = np.where(fine >= 0, classes[np.where(fine >= 0, fine, 0)], UNKNOWN)
    readable = has & (fine_classes >= 0)
    out.update({
        "attribute": column,
        "coarse_same_class": same_class_share(coarse_pairs, classes, truth),
        "fine_same_class": same_class_share(fine, classes, truth),
        "captions_read_right": float((predicted == fine_classes)[readable].mean()) if readable.any()
        else float("nan"),
    })
    return out
