"""The store's vocabulary: collection and vector names, pair ids, and the values it takes and returns.

Two collections joined by pair id: `images` holds the coarse encoder's image
embeddings (named vector "coarse") with payload {corpus, key}, `texts` the fine
encoder's caption embeddings (named vector "fine") with payload {caption,
corpus, key} and, where the source has them, `url`, `path` (the image's place
in the source) and `metadata` (the --keep-columns columns). The rest of a pair
is read from `texts` by id when wanted (coarse hits: one batched read), so it is
stored once. Pair ids derive from (corpus, key), so re-ingesting a corpus
overwrites, never duplicates.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple

import numpy as np

IMAGES = "images"
TEXTS = "texts"
COLLECTIONS = (IMAGES, TEXTS)
COARSE_VECTOR = "coarse"
FINE_VECTOR = "fine"
# The classifier's text embedding of each caption, kept in `texts` beside the fine one
# so that classification encodes no caption at query time (the caption cache).
CAPTION_VECTOR = "classifier"



class Layout(NamedTuple):
    role: str  # the model role whose vectors the collection holds
    vector: str  # the named vector
    graph: bool  # whether it gets an HNSW graph (its m and ef_construct: the store's Storage) and a quantized copy


# `texts` gets no graph (m=0) and no quantized copy: it is only searched under a has_id
# filter, an exact scan of the listed points. Only `images` needs an index build after a bulk load.
LAYOUT = {IMAGES: Layout("coarse", COARSE_VECTOR, True), TEXTS: Layout("fine", FINE_VECTOR, False)}

# Fixed forever: changing it would give every stored pair a new id.
PAIR_NAMESPACE = uuid.UUID("1e40783b-1b06-40d2-bb23-62347f75a1c8")


def pair_id(corpus: str, key: str) -> str:
    """The id of the pair `key` of `corpus` in both collections (a UUID string)."""
    return pair_ids(corpus, [key])[0]


def pair_ids(corpus: str, keys: Iterable[str]) -> list[str]:
    """The ids of the pairs `keys` of `corpus`: uuid5(PAIR_NAMESPACE, corpus + "\\x1f" + key) each.

    The hash is taken here rather than by uuid.uuid5, which builds two UUID objects
    per id: ingest makes an id for every row, and this is several times cheaper.
    """
    if "\x1f" in corpus:
        raise ValueError(f"corpus name {corpus!r} contains the reserved separator \\x1f")
    prefix = PAIR_NAMESPACE.bytes + f"{corpus}\x1f".encode()
    out = []
    for key in keys:
        digest = bytearray(hashlib.sha1(prefix + key.encode()).digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
        digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = digest.hex()
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


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
    extras: list[dict] | None = None  # per row, payload fields besides caption, corpus, key: url, path, metadata

    @property
    def ids(self) -> list[str]:
        return pair_ids(self.corpus, self.keys)


@dataclass(frozen=True)
class ImageHit:
    pair_id: str
    score: float


@dataclass(frozen=True)
class CaptionHit:
    """A pair found, with what is stored to find it again (url, path, metadata: None/{} where the source had none).

    Coarse hits shown to users are CaptionHits too (`retrieval.describe`), scored by the image search.
    """

    pair_id: str
    score: float
    caption: str
    corpus: str
    key: str
    url: str | None = None
    path: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StoredPoint:
    """One point as stored: its payload, and the size of each named vector it has."""

    payload: dict
    vectors: dict[str, int]


@dataclass(frozen=True)
class IndexState:
    """One collection's index, as the engine reports it.

    `indexed` counts the vectors in an HNSW graph (None where the engine keeps no
    index: qdrant-client's local mode). A graph is built only past the engine's
    indexing threshold, so a small collection is complete with 0 indexed.
    `needs_build` is the truth to act on: a bulk load deferred the build, or a kill
    interrupted it; `optimize()` finishes it.
    """

    points: int
    indexed: int | None
    graph: bool  # whether the collection gets a graph at all (images: yes; texts: m=0, no)
    needs_build: bool
