"""The vector store interface shared by the embedded (Qdrant Edge) and server backends.

Two collections joined by pair id: `images` holds the coarse encoder's image
embeddings (named vector "coarse"), `texts` the fine encoder's caption
embeddings (named vector "fine") with payload {caption, corpus, key}. Pair ids
derive from (corpus, key), so re-ingesting a corpus overwrites, never duplicates.

Nothing here touches an engine: the dataclasses, the protocol, and the checks
both backends run before any call to one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import StoreError, StoreMismatchError

IMAGES = "images"
TEXTS = "texts"
COARSE_VECTOR = "coarse"
FINE_VECTOR = "fine"
# The classifier's text embedding of each caption, kept in `texts` beside the fine one
# so that classification encodes no caption at query time (the caption cache).
CAPTION_VECTOR = "classifier"

# Fixed forever: changing it would give every stored pair a new id.
PAIR_NAMESPACE = uuid.UUID("1e40783b-1b06-40d2-bb23-62347f75a1c8")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def pair_id(corpus: str, key: str) -> str:
    """The id of the pair `key` of `corpus` in both collections (a UUID string)."""
    if "\x1f" in corpus:
        raise ValueError(f"corpus name {corpus!r} contains the reserved separator \\x1f")
    return str(uuid.uuid5(PAIR_NAMESPACE, f"{corpus}\x1f{key}"))


@dataclass(frozen=True)
class Provenance:
    """What built the collections. Storage records it; open() compares model names and sizes.

    Fingerprints (e.g. a checkpoint hash) are kept for information only.
    """

    coarse_model: str
    coarse_dim: int
    fine_model: str
    fine_dim: int
    coarse_fingerprint: str | None = None
    fine_fingerprint: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Provenance:
        """Raises ValueError on a record that is not one of ours."""
        if not isinstance(data, dict):
            raise ValueError("not a mapping")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("coarse_model", "fine_model"):
            if not isinstance(values.get(name), str):
                raise ValueError(f"{name} missing")
        for name in ("coarse_dim", "fine_dim"):
            if not isinstance(values.get(name), int) or values[name] < 1:
                raise ValueError(f"{name} missing")
        return cls(**values)


@dataclass(frozen=True)
class CaptionCache:
    """The classifier whose caption embeddings `texts` holds as the vector "classifier"."""

    model: str
    dim: int


@dataclass(frozen=True)
class PairBatch:
    """Image-caption pairs of one corpus; row i of each field belongs to keys[i]."""

    corpus: str
    keys: list[str]
    captions: list[str]
    image_vectors: np.ndarray  # (n, coarse_dim)
    text_vectors: np.ndarray  # (n, fine_dim)
    caption_vectors: np.ndarray | None = None  # (n, cache dim): the caption cache's vectors, if it is on

    @property
    def ids(self) -> list[str]:
        return [pair_id(self.corpus, key) for key in self.keys]


@dataclass(frozen=True)
class ImageHit:
    pair_id: str
    score: float


@dataclass(frozen=True)
class CaptionHit:
    pair_id: str
    score: float
    caption: str
    corpus: str
    key: str


@runtime_checkable
class VectorStore(Protocol):
    """One interface, two engines: EdgeStore (embedded) and ServerStore (qdrant-client).

    Constructing a store touches nothing; init() or open() does. Searches return
    hits sorted by score (cosine similarity) descending, ids as strings.
    """

    backend: str  # "qdrant-edge" | "qdrant-server"
    location: str  # path or URL, never a secret

    def init(self, provenance: Provenance) -> bool:
        """Create absent collections (True if any was); validate existing ones like open()."""
        ...

    def open(self, provenance: Provenance) -> None:
        """Check the stored provenance against `provenance` before anything is written."""
        ...

    def stored_provenance(self) -> Provenance | None: ...

    def upsert_pairs(self, batch: PairBatch) -> None:
        """Write texts, then images, and return once both are durable."""
        ...

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The ids among `ids` present in both collections."""
        ...

    def coarse_search(self, queries: np.ndarray, *, limit: int, hnsw_ef: int | None = None) -> list[list[ImageHit]]:
        """queries (B, coarse_dim): the `limit` nearest images of each, one batched call.

        `hnsw_ef` is the graph search's beam width (None: the engine's default,
        which is no wider than `limit`); wider finds more of the exact neighbours.
        """
        ...

    def fine_search(
        self, queries: np.ndarray, candidates: Sequence[Sequence[str]], *, limit: int
    ) -> list[list[CaptionHit]]:
        """queries (B, fine_dim): the `limit` nearest captions among candidates[i] for query i."""
        ...

    def caption_cache(self) -> CaptionCache | None:
        """The classifier the caption cache holds embeddings of, or None if there is none."""
        ...

    def set_caption_cache(self, cache: CaptionCache) -> None:
        """Make `texts` hold `cache.model`'s caption embeddings; another model's are dropped."""
        ...

    def caption_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """(n, cache dim) cached caption embeddings of `ids`; NaN rows where none is stored."""
        ...

    def set_caption_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Store cached caption embeddings for existing `texts` points."""
        ...

    def uncached_captions(self, *, limit: int, offset: str | None = None) -> tuple[list[tuple[str, str]], str | None]:
        """A page of (id, caption) without a cached embedding, and the next page's offset."""
        ...

    def counts(self) -> dict[str, int]: ...

    def corpus_counts(self, corpus: str) -> dict[str, int]:
        """Points of one corpus in each collection (a count under a payload filter on `corpus`)."""
        ...

    def delete_corpus(self, corpus: str) -> None:
        """Remove the corpus' points from both collections (images first: pairs stop being reachable)."""
        ...

    def bulk_load(self) -> AbstractContextManager[None]:
        """A context for a large load: graph building deferred, rebuilt once at the end."""
        ...

    def optimize(self) -> None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------
# Checks shared by the backends: they run before any engine call.
# ---------------------------------------------------------------------------


def check_provenance(stored: Provenance, configured: Provenance, location: str) -> None:
    """StoreMismatchError, one line naming each differing collection, if model or size differ."""
    problems = []
    for collection, role in ((IMAGES, "coarse"), (TEXTS, "fine")):
        s_model, s_dim = getattr(stored, f"{role}_model"), getattr(stored, f"{role}_dim")
        c_model, c_dim = getattr(configured, f"{role}_model"), getattr(configured, f"{role}_dim")
        if (s_model, s_dim) != (c_model, c_dim):
            problems.append(
                f"collection {collection!r} was built with {s_model} ({s_dim}-d) "
                f"but the configured {role} model is {c_model} ({c_dim}-d)"
            )
    if problems:
        raise StoreMismatchError(
            f"the vector store at {location} does not match the configured models: "
            + "; ".join(problems)
            + ": configure the models it was built with, or use a new store"
        )


def check_batch(batch: PairBatch, provenance: Provenance, location: str) -> tuple[
    list[str], np.ndarray, np.ndarray
]:
    """Validate a batch: returns (ids, image vectors float32, text vectors float32)."""
    if not isinstance(batch.corpus, str) or not batch.corpus:
        raise ValueError("PairBatch.corpus must be a non-empty string")
    n = len(batch.keys)
    if len(batch.captions) != n:
        raise ValueError(f"PairBatch has {n} keys but {len(batch.captions)} captions")
    if len(set(batch.keys)) != n:
        raise ValueError("PairBatch.keys has duplicates")
    images = _rows(batch.image_vectors, n, "image_vectors")
    texts = _rows(batch.text_vectors, n, "text_vectors")
    _check_dim(images, provenance.coarse_dim, IMAGES, provenance.coarse_model, "image", location)
    _check_dim(texts, provenance.fine_dim, TEXTS, provenance.fine_model, "text", location)
    return batch.ids, images, texts


def check_queries(
    queries: np.ndarray, provenance: Provenance, role: str, location: str
) -> np.ndarray:
    """(B, dim) float32 query matrix for `role` ("coarse" or "fine")."""
    array = np.asarray(queries)
    if array.ndim != 2:
        raise ValueError(f"{role} queries must be a (B, dim) matrix, got shape {array.shape}")
    array = _finite_float32(array, f"{role} queries")
    if role == "coarse":
        _check_dim(array, provenance.coarse_dim, IMAGES, provenance.coarse_model, "query", location)
    else:
        _check_dim(array, provenance.fine_dim, TEXTS, provenance.fine_model, "query", location)
    return array


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return int(limit)


def check_candidates(candidates: Sequence[Sequence[str]], n_queries: int) -> list[list[str]]:
    """Candidate ids per query, canonical UUID strings, duplicates removed in order."""
    if isinstance(candidates, (str, bytes)) or len(candidates) != n_queries:
        raise ValueError(f"expected one candidate list per query ({n_queries})")
    return [list(dict.fromkeys(canonical_ids(group))) for group in candidates]


def canonical_ids(ids: Sequence[str]) -> list[str]:
    """Pair ids as the engines return them (lowercase hyphenated UUIDs); ValueError otherwise."""
    if isinstance(ids, (str, bytes)):
        raise ValueError("expected a sequence of pair ids, got a single string")
    out = []
    for value in ids:
        if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
            out.append(value)  # the common case, five times cheaper than parsing
            continue
        try:
            out.append(str(uuid.UUID(str(value))))
        except ValueError:
            raise ValueError(f"{value!r} is not a pair id (a UUID string)") from None
    return out


def sorted_by_score(hits: list) -> list:
    """Score descending; the engines already return this order, this makes it a guarantee."""
    return sorted(hits, key=lambda hit: -hit.score)


def _rows(vectors: np.ndarray, n: int, name: str) -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[0] != n:
        raise ValueError(f"PairBatch.{name} must have shape ({n}, dim), got {array.shape}")
    return _finite_float32(array, f"PairBatch.{name}")


def _finite_float32(array: np.ndarray, name: str) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    out = np.ascontiguousarray(array, dtype=np.float32)
    if out.size and not np.isfinite(out).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    if out.size and (np.linalg.norm(out, axis=1) == 0).any():
        raise ValueError(f"{name} contain an all-zero vector (no direction for cosine)")
    return out


def _check_dim(
    array: np.ndarray, dim: int, collection: str, model: str, what: str, location: str
) -> None:
    if array.shape[1] != dim:
        raise StoreMismatchError(
            f"{what} vectors have {array.shape[1]} dimensions but collection {collection!r} "
            f"at {location} holds {dim}-d vectors of {model}"
        )


def short(error: BaseException, limit: int = 300) -> str:
    """One line of an engine's message."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def engine_failure(action: str, location: str, error: BaseException) -> StoreError:
    return StoreError(f"{action} failed at {location}: {short(error)}")


__all__ = [
    "COARSE_VECTOR", "FINE_VECTOR", "IMAGES", "TEXTS", "PAIR_NAMESPACE",
    "CaptionHit", "ImageHit", "PairBatch", "Provenance", "VectorStore", "pair_id",
]


def check_caption_vectors(cache: CaptionCache | None, vectors: np.ndarray, n: int, location: str) -> np.ndarray:
    """Caption-cache vectors as float32 (n, dim), or StoreMismatchError if the cache is off or sized otherwise."""
    if cache is None:
        raise StoreMismatchError(f"the vector store at {location} has no caption cache: enable it first")
    matrix = _rows(vectors, n, "caption_vectors")
    if matrix.shape[1] != cache.dim:
        raise StoreMismatchError(
            f"caption vectors are {matrix.shape[1]}-d but the caption cache at {location} holds "
            f"{cache.model} ({cache.dim}-d)"
        )
    return matrix


def cached_rows(wanted: list[str], records: Sequence[object], dim: int) -> np.ndarray:
    """(len(wanted), dim) float32: each retrieved record's caption-cache vector in `wanted` order, NaN where absent."""
    found = {str(r.id): (r.vector or {}).get(CAPTION_VECTOR) for r in records}
    out = np.full((len(wanted), dim), np.nan, dtype=np.float32)
    for row, pid in enumerate(wanted):
        if found.get(pid) is not None:
            out[row] = found[pid]
    return out
