"""Encoding and retrieving a test set once, cached as arrays.

Per dataset and setup (the three models' weight fingerprints, the store's
contents, K and the largest k), one folder under XMORE_HOME/cache/eval/:

    <dataset sha256[:16]>/<setup sha256[:16]>/arrays.npz   the arrays below
    <dataset sha256[:16]>/<setup sha256[:16]>/setup.json   what the key was made of
    <dataset sha256[:16]>/<setup sha256[:16]>/prompts-<sha256[:16]>.npy   class prompts per labels + template

A second eval of the same data, models and store encodes nothing and loads no model.
The store's contents are known by its collection sizes and provenance: a
corpus replaced by another of the same size is not noticed (use --refresh).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import write_atomically
from .datasets import EvalDataset

if TYPE_CHECKING:
    from ..workspace import Workspace

CACHE_VERSION = 2  # 2: the retrieved pairs' ids (coarse_pairs, fine_pairs, pair_ids)


@dataclass(frozen=True)
class EvalArrays:
    """What scoring needs, for N queries and M = the largest k.

    image_embeddings (N, D): the classifier's image embeddings;
    caption_embeddings (U, D): the classifier's text embeddings of the U distinct captions retrieved;
    fine_slots (N, M): caption rows in fine (direct image-to-text) order, -1 padding;
    indirect_slots (N, M): caption rows of the first M coarse neighbours, in coarse order, -1 padding;
    pair_ids (P,): the distinct pair ids retrieved (coarse or fine);
    coarse_pairs (N, K): rows of pair_ids of the K coarse neighbours, in coarse order, -1 padding;
    fine_pairs (N, M): rows of pair_ids of the fine captions, in fine order (row for row with fine_slots);
    logit_scale: the classifier's.
    """

    image_embeddings: np.ndarray
    caption_embeddings: np.ndarray
    captions: np.ndarray
    fine_slots: np.ndarray
    indirect_slots: np.ndarray
    pair_ids: np.ndarray
    coarse_pairs: np.ndarray
    fine_pairs: np.ndarray
    logit_scale: float


ARRAY_NAMES = ("image_embeddings", "caption_embeddings", "captions", "fine_slots", "indirect_slots", "pair_ids",
               "coarse_pairs", "fine_pairs")


def _sha(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def setup_key(workspace: Workspace, *, coarse_k: int, max_k: int) -> dict:
    """The models' fingerprints, the store's state and the retrieval sizes, without loading a model."""
    from ..models import resolve_weights
    from ..workspace import ROLES

    settings = workspace.settings
    store = workspace.store()
    fingerprints = {role: resolve_weights(workspace.spec(role), cache_dir=settings.model_cache_dir,
                                          role=role).fingerprint for role in ROLES}
    stored = store.stored_provenance()
    return {
        "version": CACHE_VERSION, "models": fingerprints, "coarse_k": coarse_k, "max_k": max_k,
        "hnsw_ef": store.search_beam(coarse_k, settings.hnsw_ef),  # the beam searched, however chosen
        "store": {"backend": store.backend, "location": store.location, "counts": store.counts(),
                  "provenance": stored.to_dict() if stored else None},
    }


class EvalCache:
    def __init__(self, root: Path, dataset: EvalDataset, setup: dict):
        self.dataset_hash = dataset.fingerprint()
        self.setup = setup
        self.folder = Path(root) / "eval" / self.dataset_hash[:16] / _sha(setup)[:16]

    def load(self) -> EvalArrays | None:
        try:
            with np.load(self.folder / "arrays.npz", allow_pickle=False) as data:
                arrays = EvalArrays(**{name: data[name] for name in ARRAY_NAMES},
                                    logit_scale=float(data["logit_scale"]))
        except (OSError, KeyError, ValueError):
            return None
        return arrays

    def save(self, arrays: EvalArrays) -> None:
        write_atomically(self.folder / "arrays.npz", lambda f: np.savez(
            f, **{name: getattr(arrays, name) for name in ARRAY_NAMES}, logit_scale=np.float64(arrays.logit_scale)))
        (self.folder / "setup.json").write_text(json.dumps(
            {"dataset_sha256": self.dataset_hash, **self.setup}, indent=2, default=str) + "\n")

    def prompts(self, labels: list[str], template: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.folder / f"prompts-{_sha([labels, template])[:16]}.npy"
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape[0] == len(labels):
                return cached
        except (OSError, ValueError):
            pass
        prompts = np.asarray(compute(), dtype=np.float32)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: np.save(f, prompts))
        return prompts


def compute_arrays(
    workspace: Workspace, dataset: EvalDataset, *, coarse_k: int, max_k: int,
    on_start: Callable[[int], None] = lambda total: None, on_progress: Callable[[int], None] = lambda n: None,
) -> EvalArrays:
    """Encode every image with the three roles and retrieve once, at K = coarse_k and k = max_k.

    Fine: the max_k captions among the K coarse candidates nearest to the image
    (fine encoder), as `xmore classify` retrieves them. Indirect: the captions
    of the first max_k coarse neighbours, kept in coarse order. Captions are
    embedded once each by the classifier's text encoder.
    """
    from ..classify import embed_images
    from ..images import load_image
    from ..retrieval import retrieve

    store = workspace.store()
    classifier = workspace.encoder("classifier")
    n = len(dataset.images)
    image_embeddings = np.zeros((n, classifier.dim), dtype=np.float32)
    fine_slots = np.full((n, max_k), -1, dtype=np.int32)
    indirect_slots = np.full((n, max_k), -1, dtype=np.int32)
    fine_pairs = np.full((n, max_k), -1, dtype=np.int32)
    coarse_pairs = np.full((n, coarse_k), -1, dtype=np.int32)
    rows: dict[str, int] = {}
    pair_rows: dict[str, int] = {}
    caption_chunks: list[np.ndarray] = []
    step = 4 * workspace.settings.batch_size
    on_start(n)
    for start in range(0, n, step):
        paths = dataset.images[start:start + step]
        images = [load_image(dataset.root / rel) for rel in paths]
        emb = embed_images(workspace, images, ("classifier", "coarse", "fine"))
        image_embeddings[start:start + len(paths)] = emb["classifier"]
        retrieved = retrieve(store, emb["coarse"], emb["fine"], coarse_k=coarse_k, fine_k=max_k,
                             hnsw_ef=workspace.settings.hnsw_ef)
        # Indirect: the same captions' hits, for the first max_k neighbours, put back in coarse order.
        nearest = [[hit.pair_id for hit in r.coarse[:max_k]] for r in retrieved]
        indirect_hits = store.fine_search(emb["fine"], nearest, limit=max_k)
        retrieved_captions = ({hit.caption for r in retrieved for hit in r.captions}
                              | {hit.caption for hits in indirect_hits for hit in hits})
        new = sorted(retrieved_captions - rows.keys())
        if new:
            rows.update({text: len(rows) + i for i, text in enumerate(new)})
            caption_chunks.append(classifier.encode_texts(new))
        for i, (r, indirect_q, ids) in enumerate(zip(retrieved, indirect_hits, nearest, strict=True)):
            fine_slots[start + i, :len(r.captions)] = [rows[hit.caption] for hit in r.captions]
            fine_pairs[start + i, :len(r.captions)] = [_row_of(pair_rows, hit.pair_id) for hit in r.captions]
            coarse_pairs[start + i, :len(r.coarse)] = [_row_of(pair_rows, hit.pair_id) for hit in r.coarse]
            rank = {pair: position for position, pair in enumerate(ids)}
            ordered = sorted(indirect_q, key=lambda hit: rank[hit.pair_id])
            indirect_slots[start + i, :len(ordered)] = [rows[hit.caption] for hit in ordered]
        for image in images:
            image.close()
        on_progress(len(paths))
    captions = np.array(sorted(rows, key=rows.get), dtype=str) if rows else np.zeros((0,), dtype=str)
    pair_ids = np.array(sorted(pair_rows, key=pair_rows.get), dtype=str) if pair_rows else np.zeros((0,), dtype=str)
    caption_embeddings = (np.concatenate(caption_chunks) if caption_chunks
                          else np.zeros((0, classifier.dim), dtype=np.float32))
    return EvalArrays(image_embeddings=image_embeddings, caption_embeddings=caption_embeddings,
                      captions=captions, fine_slots=fine_slots, indirect_slots=indirect_slots, pair_ids=pair_ids,
                      coarse_pairs=coarse_pairs, fine_pairs=fine_pairs, logit_scale=classifier.logit_scale)


def _row_of(table: dict[str, int], key: str) -> int:
    return table.setdefault(key, len(table))
