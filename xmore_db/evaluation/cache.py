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
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .datasets import EvalDataset

if TYPE_CHECKING:
    from ..workspace import Workspace

CACHE_VERSION = 1


@dataclass(frozen=True)
class EvalArrays:
    """What scoring needs, for N queries and M = the largest k.

    image_embeddings (N, D): the classifier's image embeddings;
    caption_embeddings (U, D): the classifier's text embeddings of the U distinct captions retrieved;
    fine_slots (N, M): caption rows in fine (direct image-to-text) order, -1 padding;
    indirect_slots (N, M): caption rows of the first M coarse neighbours, in coarse order, -1 padding;
    logit_scale: the classifier's.
    """

    image_embeddings: np.ndarray
    caption_embeddings: np.ndarray
    captions: np.ndarray
    fine_slots: np.ndarray
    indirect_slots: np.ndarray
    logit_scale: float


def _sha(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def setup_key(workspace: Workspace, *, coarse_k: int, max_k: int) -> dict:
    """The models' fingerprints, the store's state and the retrieval sizes, without loading a model."""
    from ..models import resolve_weights

    settings = workspace.settings
    store = workspace.store()
    fingerprints = {role: resolve_weights(workspace.spec(role), cache_dir=settings.model_cache_dir,
                                          role=role).fingerprint for role in ("coarse", "fine", "classifier")}
    stored = store.stored_provenance()
    return {
        "version": CACHE_VERSION, "models": fingerprints, "coarse_k": coarse_k, "max_k": max_k,
        "hnsw_ef": settings.hnsw_ef,
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
                arrays = EvalArrays(**{name: data[name] for name in ("image_embeddings", "caption_embeddings",
                                                                    "captions", "fine_slots", "indirect_slots")},
                                    logit_scale=float(data["logit_scale"]))
        except (OSError, KeyError, ValueError):
            return None
        return arrays

    def save(self, arrays: EvalArrays) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic(self.folder / "arrays.npz", lambda f: np.savez(
            f, image_embeddings=arrays.image_embeddings, caption_embeddings=arrays.caption_embeddings,
            captions=arrays.captions, fine_slots=arrays.fine_slots, indirect_slots=arrays.indirect_slots,
            logit_scale=np.float64(arrays.logit_scale)))
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
        _atomic(path, lambda f: np.save(f, prompts))
        return prompts


def _atomic(path: Path, write: Callable) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compute_arrays(
    workspace: Workspace, dataset: EvalDataset, *, coarse_k: int, max_k: int,
    on_start: Callable[[int], None] = lambda total: None, on_progress: Callable[[int], None] = lambda n: None,
) -> EvalArrays:
    """Encode every image with the three roles and retrieve once, at K = coarse_k and k = max_k.

    Fine: the max_k captions among the K coarse candidates nearest to the image
    (fine encoder). Indirect: the captions of the first max_k coarse
    neighbours, kept in coarse order. Captions are embedded once each by the
    classifier's text encoder.
    """
    from ..classify import embed_images
    from ..images import load_image

    store = workspace.store()
    classifier = workspace.encoder("classifier")
    n = len(dataset.images)
    image_embeddings = np.zeros((n, classifier.dim), dtype=np.float32)
    fine_slots = np.full((n, max_k), -1, dtype=np.int32)
    indirect_slots = np.full((n, max_k), -1, dtype=np.int32)
    rows: dict[str, int] = {}
    caption_chunks: list[np.ndarray] = []
    step = 4 * workspace.settings.batch_size
    on_start(n)
    for start in range(0, n, step):
        paths = dataset.images[start:start + step]
        images = [load_image(dataset.root / rel) for rel in paths]
        emb = embed_images(workspace, images, ("classifier", "coarse", "fine"))
        image_embeddings[start:start + len(paths)] = emb["classifier"]
        coarse = store.coarse_search(emb["coarse"], limit=coarse_k, hnsw_ef=workspace.settings.hnsw_ef)
        candidates = [[hit.pair_id for hit in hits] for hits in coarse]
        fine = store.fine_search(emb["fine"], candidates, limit=max_k)
        # Indirect: the same captions' hits, for the first max_k neighbours, put back in coarse order.
        nearest = [ids[:max_k] for ids in candidates]
        indirect_hits = store.fine_search(emb["fine"], nearest, limit=max_k)
        new = sorted({hit.caption for hits in fine + indirect_hits for hit in hits} - rows.keys())
        if new:
            rows.update({text: len(rows) + i for i, text in enumerate(new)})
            caption_chunks.append(classifier.encode_texts(new))
        for i, (fine_q, indirect_q, ids) in enumerate(zip(fine, indirect_hits, nearest, strict=True)):
            fine_slots[start + i, :len(fine_q)] = [rows[hit.caption] for hit in fine_q]
            rank = {pair: r for r, pair in enumerate(ids)}
            ordered = sorted(indirect_q, key=lambda hit: rank[hit.pair_id])
            indirect_slots[start + i, :len(ordered)] = [rows[hit.caption] for hit in ordered]
        for image in images:
            image.close()
        on_progress(len(paths))
    captions = np.array(sorted(rows, key=rows.get), dtype=str) if rows else np.zeros((0,), dtype=str)
    caption_embeddings = (np.concatenate(caption_chunks) if caption_chunks
                          else np.zeros((0, classifier.dim), dtype=np.float32))
    return EvalArrays(image_embeddings=image_embeddings, caption_embeddings=caption_embeddings,
                      captions=captions, fine_slots=fine_slots, indirect_slots=indirect_slots,
                      logit_scale=classifier.logit_scale)
