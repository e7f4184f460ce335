"""CODER (arXiv 2404.17753) over the shared inputs: an image scored by its similarities to many texts per class.

- `coder`: score_c = s · mean([sims to c's attribute and analogy texts] ∪ [max sim to c's name and
  synonym texts]); p = softmax(score) (the authors' `heuristic_classifier`, with the classifier's logit
  scale s in place of their fixed 100, which is s for the released CLIP models);
- `coder-star`: CODER*, the top 5 re-ranked by the one-vs-one texts when the softmax gap between the
  first two is below the threshold (docs/method.md, section CODER); never looks at labels;
- `coder+captions`: the retrieved captions as neighbours too: p_T = mean of the first k captions' CODER
  distributions, p_I = the image's, combined by the confidence ensemble (min-max over the stream).

Shapes: N queries, C classes, D the classifier's embedding size, T the bank's name/synonym/attribute/
analogy texts, P its one-vs-one texts, M captions per query. Pure: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import method
from ..config import DEFAULT_CODER_THRESHOLD
from .base import CAPTIONS, TEXTBANK, MethodInputs, Modalities, require
from .xmore import prefix_mean

TOP = 5  # CODER* re-ranks the top 5 classes
CHUNK = 4096  # query rows scored at once: N × T similarities stay small


@dataclass(frozen=True, eq=False)
class EncodedBank:
    """A text bank encoded by the classifier, classes in label order.

    texts (T, D) unit rows; text_class (T,) class index of each; is_name (T,) True for name and synonym
    texts (the max), False for attribute and analogy texts (the mean); ovo_texts (P, D) unit rows and
    ovo_pair (P, 2) the ordered class pair (a, b) each one-vs-one text tells apart; threshold: CODER*'s
    softmax-gap threshold.
    """

    classes: tuple[str, ...]
    texts: np.ndarray
    text_class: np.ndarray
    is_name: np.ndarray
    ovo_texts: np.ndarray
    ovo_pair: np.ndarray
    threshold: float = DEFAULT_CODER_THRESHOLD


def class_scores(similarities: np.ndarray, text_class: np.ndarray, is_name: np.ndarray, n_classes: int,
                 scale: float) -> np.ndarray:
    """(N, C) CODER class scores from (N, T) similarities to the bank's texts.

    score_c = scale · (Σ sims of c's attribute/analogy texts + max sims of c's name/synonym texts)
    / (number of c's attribute/analogy texts + 1). Every class needs at least one name text.
    """
    sims = np.asarray(similarities, dtype=np.float64)
    text_class = np.asarray(text_class, dtype=np.int64)
    is_name = np.asarray(is_name, dtype=bool)
    if sims.ndim != 2 or sims.shape[1] != len(text_class) or len(is_name) != len(text_class):
        raise ValueError(f"similarities {sims.shape} do not match {len(text_class)} texts")
    named = text_class[is_name]
    name_counts = np.bincount(named, minlength=n_classes)
    if len(name_counts) != n_classes or (name_counts == 0).any():
        raise ValueError("every class needs at least one name text, and no text may name a class beyond C")
    order = np.argsort(named, kind="stable")
    starts = np.concatenate([[0], np.cumsum(name_counts)[:-1]])
    name_max = np.maximum.reduceat(sims[:, is_name][:, order], starts, axis=1)
    described = text_class[~is_name]
    counts = np.bincount(described, minlength=n_classes)
    if len(counts) != n_classes:
        raise ValueError("no text may name a class beyond C")
    order = np.argsort(described, kind="stable")
    running = np.concatenate([np.zeros((len(sims), 1)), np.cumsum(sims[:, ~is_name][:, order], axis=1)], axis=1)
    ends = np.cumsum(counts)
    described_sum = running[:, ends] - running[:, ends - counts]
    return scale * (described_sum + name_max) / (counts + 1)


def coder_scores(queries: np.ndarray, bank: EncodedBank, scale: float) -> np.ndarray:
    """(N, C) CODER scores of unit query rows (N, D) (images or captions), in chunks of CHUNK rows."""
    queries = np.asarray(queries, dtype=np.float64)
    texts = np.asarray(bank.texts, dtype=np.float64)
    out = np.empty((len(queries), len(bank.classes)))
    for start in range(0, len(queries), CHUNK):
        chunk = queries[start:start + CHUNK]
        out[start:start + len(chunk)] = class_scores(chunk @ texts.T, bank.text_class, bank.is_name,
                                                     len(bank.classes), scale)
    return out


def pair_means(queries: np.ndarray, ovo_texts: np.ndarray, ovo_pair: np.ndarray) -> tuple[np.ndarray, dict]:
    """((N, Q) mean similarity of each query to each of the Q ordered pairs' texts, {(a, b): column})."""
    pairs, column = np.unique(np.asarray(ovo_pair, dtype=np.int64).reshape(-1, 2), axis=0, return_inverse=True)
    column = column.reshape(-1)
    sims = np.asarray(queries, dtype=np.float64) @ np.asarray(ovo_texts, dtype=np.float64).T
    sums = np.zeros((len(sims), len(pairs)))
    np.add.at(sums, (slice(None), column), sims)
    means = sums / np.bincount(column, minlength=len(pairs))
    return means, {(int(a), int(b)): j for j, (a, b) in enumerate(pairs)}


def ovo_rerank(queries: np.ndarray, scores: np.ndarray, ovo_texts: np.ndarray, ovo_pair: np.ndarray,
               threshold: float, top: int = TOP) -> np.ndarray:
    """(N, C) CODER* distributions: softmax(scores), with the top classes re-ranked where the gap is small.

    For a query whose softmax top-1 minus top-2 is below `threshold`, each of its `top` best classes a
    gets r_a = mean over the other top classes b of (mean sim to ovo(a, b) texts − mean sim to ovo(b, a)
    texts), 0 for a pair missing either direction (the authors' code); the classes are re-ordered by r,
    ties kept in score order, and their probabilities permuted to follow (the largest goes to the new
    first), so the argmax is the re-ranked winner and the entropy is unchanged. Labels play no part.
    """
    p = method.softmax(scores)
    n, c = p.shape
    top = min(top, c)
    if top < 2 or len(ovo_texts) == 0 or n == 0:
        return p
    order = np.argsort(-np.asarray(scores, dtype=np.float64), axis=1, kind="stable")[:, :top]
    ranked = np.take_along_axis(p, order, axis=1)
    chosen = np.flatnonzero(ranked[:, 0] - ranked[:, 1] < threshold)
    if not len(chosen):
        return p
    means, column = pair_means(np.asarray(queries)[chosen], ovo_texts, ovo_pair)
    out = p.copy()
    for row, i in enumerate(chosen):
        classes = order[i]
        r = np.zeros(top)
        for x, a in enumerate(classes):
            diffs = [means[row, column[(a, b)]] - means[row, column[(b, a)]]
                     if (a, b) in column and (b, a) in column else 0.0 for b in classes if b != a]
            r[x] = sum(diffs) / len(diffs)
        out[i, classes[np.argsort(-r, kind="stable")]] = ranked[i]
    return out


def caption_distributions(captions: np.ndarray, bank: EncodedBank, scale: float) -> np.ndarray:
    """(N, M, C) each caption's CODER distribution, NaN where the caption row is NaN (padding).

    A caption retrieved for several queries is scored once.
    """
    captions = np.asarray(captions, dtype=np.float32)
    n, m, d = captions.shape
    flat = captions.reshape(-1, d)
    present = ~np.isnan(flat).any(axis=-1)
    out = np.full((n * m, len(bank.classes)), np.nan)
    if present.any():
        distinct, inverse = np.unique(flat[present], axis=0, return_inverse=True)
        out[present] = method.softmax(coder_scores(distinct, bank, scale))[inverse.reshape(-1)]
    return out.reshape(n, m, -1)


def _bank(inputs: MethodInputs, name: str) -> EncodedBank:
    bank = require(inputs, TEXTBANK, name)
    if len(bank.classes) != len(inputs.prompts):
        raise ValueError(f"the text bank has {len(bank.classes)} classes, the prompts {len(inputs.prompts)}")
    return bank


def image_scores(inputs: MethodInputs, name: str = "coder") -> np.ndarray:
    """(N, C) the images' CODER scores."""
    bank = _bank(inputs, name)
    return inputs.cached("coder:image_scores", lambda: coder_scores(inputs.image_embeddings, bank,
                                                                     inputs.logit_scale))


@dataclass(frozen=True)
class Coder:
    name: str = "coder"
    title: str = "CODER (image only)"
    needs: frozenset = frozenset({TEXTBANK})
    normalize: str | None = None
    uses_k: bool = False

    def modalities(self, inputs: MethodInputs, k: int) -> Modalities:
        return Modalities(method.softmax(image_scores(inputs, self.name)))


@dataclass(frozen=True)
class CoderStar:
    name: str = "coder-star"
    title: str = "CODER* (one-vs-one re-rank)"
    needs: frozenset = frozenset({TEXTBANK})
    normalize: str | None = None
    uses_k: bool = False

    def modalities(self, inputs: MethodInputs, k: int) -> Modalities:
        bank = _bank(inputs, self.name)
        return Modalities(ovo_rerank(inputs.image_embeddings, image_scores(inputs, self.name), bank.ovo_texts,
                                     bank.ovo_pair, bank.threshold))


@dataclass(frozen=True)
class CoderCaptions:
    name: str = "coder+captions"
    title: str = "CODER + retrieved captions (minmax)"
    needs: frozenset = frozenset({TEXTBANK, CAPTIONS})
    normalize: str | None = "minmax"
    uses_k: bool = True

    def modalities(self, inputs: MethodInputs, k: int) -> Modalities:
        bank = _bank(inputs, self.name)
        per_caption = inputs.cached("coder:per_caption", lambda: caption_distributions(
            require(inputs, CAPTIONS, self.name), bank, inputs.logit_scale))
        return Modalities(method.softmax(image_scores(inputs, self.name)), prefix_mean(per_caption, k))


METHODS = (Coder(), CoderStar(), CoderCaptions())
