"""RECO's training data: every pair of a corpus with what the memory returns for it, its own pair left out.

For pair i of the corpus: the image query is the classifier's embedding of its image, the text query
(and contrastive target) its caption's classifier embedding (the caption cache). The image side
retrieves through the same store code as classification: a coarse search on `images` with the pair's
stored image vector, the k nearest pairs other than i, and their captions' cached classifier embeddings.
The text side (when the coarse model is the classifier): the k captions nearest to i's caption in the
caption cache, other than i's own, and their pairs' image embeddings.

The image queries: the stored image vectors when the coarse model is the classifier; otherwise the
corpus' image files, re-encoded by the classifier, which only a folder corpus (images with a captions
file) keeps on disk (the ingest records the folder, and each key is the image's path in it).

Retrievals are cached per corpus, k, models and store state under XMORE_HOME/cache/reco/.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BadInputError, ConfigError
from ..files import write_atomically
from . import text_side
from .inputs import neighbour_ids, require_caption_cache

if TYPE_CHECKING:
    from ..workspace import Workspace

PAGE = 1024
SEARCH_BATCH = 256
CACHE_VERSION = 1


@dataclass(frozen=True)
class TrainingMemory:
    """N training pairs (the corpus'), k items each, D the classifier's size.

    Tables of R ≥ N pairs, the corpus' first (row i is training pair i), then the other corpora's pairs
    retrieved: `captions` (R, D) their captions' classifier embeddings; `images` (R, D) their images' in the
    classifier's space, or None without a text side. `image_queries` (N, D) the training pairs' images.
    `image_neighbours` (N, k): rows of `captions` retrieved for each image; `text_neighbours` (N, k): rows of
    `images` retrieved for each caption (None without a text side); -1 where fewer than k came back.
    """

    ids: np.ndarray
    image_queries: np.ndarray
    captions: np.ndarray
    image_neighbours: np.ndarray
    images: np.ndarray | None = None
    text_neighbours: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.image_queries)

    @property
    def k(self) -> int:
        return self.image_neighbours.shape[1]

    @property
    def has_text(self) -> bool:
        return self.text_neighbours is not None

    def batch(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Training pairs `rows`: image and caption queries (B, D), retrieved items (B, k, D), NaN-padded."""
        out = {"image_queries": self.image_queries[rows], "captions": self.captions[rows],
               "image_items": gather(self.image_neighbours[rows], self.captions)}
        if self.text_neighbours is not None:
            out["text_items"] = gather(self.text_neighbours[rows], self.images)
        return out


def gather(slots: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(B, k, D) rows of `table` at `slots` (B, k), NaN where a slot is -1."""
    out = np.full((*slots.shape, table.shape[1]), np.nan, dtype=np.float32)
    valid = slots >= 0
    out[valid] = table[slots[valid]]
    return out


def corpus_ids(workspace: Workspace, corpus: str) -> tuple[list[str], list[str]]:
    """(pair ids, keys) of the corpus' pairs, in id order."""
    store = workspace.store()
    ids, keys, offset = [], [], None
    while True:
        page, offset = store.corpus_pairs(corpus, limit=PAGE, offset=offset)
        ids += [pid for pid, _ in page]
        keys += [key for _, key in page]
        if offset is None:
            return ids, keys


def check_training(workspace: Workspace, corpus: str, k: int) -> int:
    """The corpus' size, after the checks that need no model: it exists, k fits, the caption cache is there."""
    store = workspace.store()
    size = store.corpus_counts(corpus)["texts"]
    if size == 0:
        raise BadInputError(f"corpus {corpus!r} has no pairs in the store at {store.location} "
                            "(`xmore corpora list` shows the corpora)")
    if k >= size:
        raise BadInputError(f"k ({k}) must be smaller than corpus {corpus!r}'s {size} pairs: each pair's "
                            "own is left out of what it retrieves")
    require_caption_cache(workspace, "RECO training (the captions' classifier embeddings)")
    if not text_side(workspace.settings)[0]:
        image_folder(workspace, corpus)  # the images must be re-encoded: refuse now if they cannot be
    return size


def image_folder(workspace: Workspace, corpus: str) -> Path:
    """The folder a folder corpus was ingested from; ConfigError for corpora whose images are not on disk."""
    settings = workspace.settings
    units = workspace.ledger.units(corpus)
    kinds = {u.kind for u in units}
    sources = {u.source for u in units}
    if kinds != {"folder"} or len(sources) != 1:
        raise ConfigError(
            f"RECO training needs the corpus' images in the classifier's space: the coarse model "
            f"{settings.coarse} is not the classifier {settings.classifier}, so corpus {corpus!r} must be "
            f"re-encoded from its image files, which only a folder corpus keeps (this one was ingested as "
            f"{', '.join(sorted(kinds)) or 'nothing'}): train on a store whose coarse model is the classifier")
    return Path(next(iter(sources)))


def cache_key(workspace: Workspace, corpus: str, k: int) -> dict:
    from ..models import resolve_weights
    from ..workspace import ROLES

    settings = workspace.settings
    store = workspace.store()
    cache = store.caption_cache()
    return {
        "version": CACHE_VERSION, "corpus": corpus, "k": k,
        "hnsw_ef": store.search_beam(k + 1, settings.hnsw_ef),  # the beam searched, however chosen
        "models": {role: resolve_weights(workspace.spec(role), cache_dir=settings.model_cache_dir,
                                         role=role).fingerprint for role in ROLES},
        "store": {"backend": store.backend, "location": store.location, "counts": store.counts(),
                  "caption_cache": cache.model if cache else None},
    }


def cache_folder(workspace: Workspace, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return workspace.settings.home / "cache" / "reco" / digest


def build_memory(workspace: Workspace, corpus: str, k: int, *,
                 on_start: Callable[[int], None] = lambda total: None,
                 on_progress: Callable[[int], None] = lambda n: None) -> tuple[TrainingMemory, dict]:
    """The corpus' training memory and {"cached": bool, "seconds", "path"}; retrieved once, then cached."""
    started = time.perf_counter()
    check_training(workspace, corpus, k)
    key = cache_key(workspace, corpus, k)
    path = cache_folder(workspace, key) / "memory.npz"
    memory = load_memory(path)
    if memory is not None:
        return memory, {"cached": True, "seconds": time.perf_counter() - started, "path": str(path)}
    memory = retrieve_memory(workspace, corpus, k, on_start=on_start, on_progress=on_progress)
    save_memory(path, memory)
    (path.parent / "key.json").write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")
    return memory, {"cached": False, "seconds": time.perf_counter() - started, "path": str(path)}


def retrieve_memory(workspace: Workspace, corpus: str, k: int, *, on_start: Callable[[int], None],
                    on_progress: Callable[[int], None]) -> TrainingMemory:
    store = workspace.store()
    settings = workspace.settings
    ids, keys = corpus_ids(workspace, corpus)
    captions = store.caption_vectors(ids)
    if np.isnan(captions).any():
        missing = int(np.isnan(captions).any(axis=1).sum())
        raise BadInputError(f"{missing} of corpus {corpus!r}'s captions have no cached classifier embedding: "
                            "run `xmore cache-captions`")
    coarse = store.image_vectors(ids)
    text = text_side(settings)[0]
    on_start(len(ids) * (1 if text else 2))  # (encoding and) searching
    image_queries = coarse if text else encode_images(workspace, image_folder(workspace, corpus), keys,
                                                        on_progress)
    rows = {pid: i for i, pid in enumerate(ids)}
    image_neighbours = np.full((len(ids), k), -1, dtype=np.int32)
    text_neighbours = np.full((len(ids), k), -1, dtype=np.int32) if text else None
    for start in range(0, len(ids), SEARCH_BATCH):
        stop = min(start + SEARCH_BATCH, len(ids))
        own = ids[start:stop]
        hits = store.coarse_search(coarse[start:stop], limit=k + 1, hnsw_ef=settings.hnsw_ef)
        for i, row in enumerate(hits):
            nearest = [h.pair_id for h in row if h.pair_id != own[i]][:k]
            image_neighbours[start + i, :len(nearest)] = [rows.setdefault(pid, len(rows)) for pid in nearest]
        if text_neighbours is not None:
            for i, nearest in enumerate(neighbour_ids(store, captions[start:stop], k=k, exclude=own)):
                text_neighbours[start + i, :len(nearest)] = [rows.setdefault(pid, len(rows)) for pid in nearest]
        on_progress(stop - start)
    others = list(rows)[len(ids):]  # pairs of other corpora that were retrieved
    caption_table = np.concatenate([captions, store.caption_vectors(others)]) if others else captions
    image_table = None
    if text:
        image_table = np.concatenate([coarse, store.image_vectors(others)]) if others else coarse
    # A retrieved pair without a cached caption (another corpus, cache unfilled) is dropped from the items.
    uncached = np.isnan(caption_table).any(axis=1)
    image_neighbours[(image_neighbours >= 0) & uncached[image_neighbours]] = -1
    return TrainingMemory(ids=np.array(ids, dtype=str), image_queries=image_queries.astype(np.float32),
                          captions=caption_table.astype(np.float32), image_neighbours=image_neighbours,
                          images=None if image_table is None else image_table.astype(np.float32),
                          text_neighbours=text_neighbours)


def encode_images(workspace: Workspace, folder: Path, keys: list[str],
                  on_progress: Callable[[int], None]) -> np.ndarray:
    """The classifier's embeddings of a folder corpus' images, read from `folder / key`."""
    from ..images import load_image

    classifier = workspace.encoder("classifier")
    out = np.zeros((len(keys), classifier.dim), dtype=np.float32)
    step = 4 * workspace.settings.batch_size
    for start in range(0, len(keys), step):
        images = [load_image(folder / key) for key in keys[start:start + step]]
        out[start:start + len(images)] = classifier.encode_images(images)
        for image in images:
            image.close()
        on_progress(len(images))
    return out


def save_memory(path: Path, memory: TrainingMemory) -> None:
    arrays = {f.name: getattr(memory, f.name) for f in fields(memory) if getattr(memory, f.name) is not None}
    write_atomically(path, lambda handle: np.savez(handle, **arrays))


def load_memory(path: Path) -> TrainingMemory | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            values = {name: data[name] for name in data.files}
        return TrainingMemory(**values)
    except (OSError, ValueError, TypeError):
        return None
