"""The checks both backends run before any engine call, and the mapping of what engines return."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

import numpy as np

from ..config import Settings
from ..errors import StoreMismatchError, first_line
from .storage import SETTING_OF, Storage, StorageRequest
from .types import (
    CAPTION_VECTOR,
    IMAGES,
    LAYOUT,
    TEXTS,
    CaptionCache,
    CaptionHit,
    PairBatch,
    Provenance,
    StoredPoint,
)

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_provenance(stored: Provenance, configured: Provenance, location: str) -> None:
    """StoreMismatchError, one line naming each differing collection, if model or size differ."""
    problems = []
    for collection in (IMAGES, TEXTS):
        role = LAYOUT[collection].role
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


def check_storage(recorded: Storage, request: StorageRequest, location: str) -> None:
    """StoreMismatchError, one line naming the recorded storage and the settings that ask for another,
    if `request` would build differently from what `recorded` says was built."""
    built, asked = recorded.build(), request.resolve(recorded).build()
    differing = [name for name in built if built[name] != asked[name]]
    if not differing:
        return
    differences = [f"{name} {_shown(asked[name])} instead of {_shown(built[name])}" for name in differing]
    # Each difference comes from its own knob if given, else from the profile.
    asking = {name if name in request.given() else "profile" for name in differing}
    setting = {"profile": "storage_profile", **SETTING_OF}
    given = [f"{Settings.ENV[setting[name]]}={_shown(value)}" for name, value in request.given().items()
             if name in asking]
    raise StoreMismatchError(
        f"the vector store at {location} was built with storage profile {recorded.profile} ({recorded.details()}); "
        f"{', '.join(given)} {'asks' if len(given) == 1 else 'ask'} for another ({'; '.join(differences)}): "
        f"unset {'it' if len(given) == 1 else 'them'} (an existing store keeps the storage it records) "
        "or use a new store"
    )


def _shown(value: object) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


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
    if batch.extras is not None and len(batch.extras) != n:
        raise ValueError(f"PairBatch has {n} keys but {len(batch.extras)} extras")
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


def check_cache_queries(queries: np.ndarray, cache: CaptionCache | None, location: str) -> np.ndarray:
    """(B, cache dim) float32 queries for the caption cache's vector; StoreMismatchError without a cache or
    with another size."""
    if cache is None:
        raise StoreMismatchError(f"the vector store at {location} has no caption cache: run `xmore cache-captions`")
    array = np.asarray(queries)
    if array.ndim != 2:
        raise ValueError(f"caption-cache queries must be a (B, dim) matrix, got shape {array.shape}")
    array = _finite_float32(array, "caption-cache queries")
    if array.shape[1] != cache.dim:
        raise StoreMismatchError(
            f"query vectors have {array.shape[1]} dimensions but the caption cache at {location} holds "
            f"{cache.dim}-d vectors of {cache.model}"
        )
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


def caption_hit(point: object) -> CaptionHit:
    """A scored `texts` point of either engine (id, score, payload) as a CaptionHit."""
    return payload_hit(str(point.id), float(point.score), point.payload or {})


def text_payloads(batch: PairBatch) -> list[dict]:
    """The `texts` payload of each row: its extras (url, path, metadata), then caption, corpus and key."""
    extras = batch.extras if batch.extras is not None else [{}] * len(batch.keys)
    return [{**(extra or {}), "caption": caption, "corpus": batch.corpus, "key": key}
            for caption, key, extra in zip(batch.captions, batch.keys, extras, strict=True)]


def stored_points(records: Sequence[object]) -> dict[str, StoredPoint]:
    """Engine records (.id, .payload, .vector) as {pair id: StoredPoint}, with each named vector's size."""
    out = {}
    for record in records:
        vectors = record.vector if isinstance(getattr(record, "vector", None), dict) else {}
        out[str(record.id)] = StoredPoint(payload=dict(record.payload or {}),
                                          vectors={str(name): len(row) for name, row in sorted(vectors.items())
                                                   if row is not None})
    return out


def payload_hit(pid: str, score: float, payload: dict) -> CaptionHit:
    """A hit from a `texts` payload: caption, corpus, key, and url, path, metadata where stored."""
    url, path, metadata = payload.get("url"), payload.get("path"), payload.get("metadata")
    return CaptionHit(
        pair_id=pid, score=score, caption=str(payload.get("caption", "")),
        corpus=str(payload.get("corpus", "")), key=str(payload.get("key", "")),
        url=None if url is None else str(url), path=None if path is None else str(path),
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
    )


def cached_rows(wanted: list[str], records: Sequence[object], dim: int, vector: str = CAPTION_VECTOR) -> np.ndarray:
    """(len(wanted), dim) float32: each retrieved record's `vector` (the caption cache's by default) in `wanted`
    order, NaN where absent."""
    found = {str(r.id): (r.vector or {}).get(vector) for r in records}
    out = np.full((len(wanted), dim), np.nan, dtype=np.float32)
    for row, pid in enumerate(wanted):
        if found.get(pid) is not None:
            out[row] = found[pid]
    return out


def short(error: BaseException, limit: int = 300) -> str:
    """One line of an engine's message (its type's name when it has none)."""
    return first_line(error, limit) or type(error).__name__


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
