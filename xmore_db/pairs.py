"""One pair as stored, found by pair id or CORPUS:KEY (`xmore show`).

Both collections' payloads, the named vectors each point has (and their sizes),
and whether the caption cache holds the pair's caption embedding. Reads only:
no model is loaded or checked.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass

from .errors import BadInputError, UnknownPairError
from .store import VectorStore, pair_id
from .store.types import CAPTION_VECTOR, IMAGES, TEXTS, StoredPoint

_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class StoredPair:
    pair_id: str
    corpus: str | None
    key: str | None
    texts: StoredPoint | None  # None: `texts` has no such point
    images: StoredPoint | None
    caption_cache: dict | None  # {"model", "cached": whether this pair's caption embedding is stored}; None: no cache

    def to_dict(self) -> dict:
        return asdict(self)


def resolve(ref: str) -> tuple[str, str | None, str | None]:
    """(pair id, corpus, key) of a pair id (a UUID) or CORPUS:KEY (split at the first colon)."""
    ref = ref.strip()
    if _UUID.fullmatch(ref):
        return str(uuid.UUID(ref)), None, None
    corpus, sep, key = ref.partition(":")
    if not sep or not corpus or not key:
        raise BadInputError(f"{ref!r} is neither a pair id (a UUID) nor CORPUS:KEY")
    return pair_id(corpus, key), corpus, key


def show_pair(store: VectorStore, ref: str) -> StoredPair:
    """Everything stored for the pair `ref`; UnknownPairError when neither collection holds it."""
    pid, corpus, key = resolve(ref)
    texts = store.points(TEXTS, [pid], vectors=True).get(pid)
    images = store.points(IMAGES, [pid], vectors=True).get(pid)
    if texts is None and images is None:
        hint = f": `xmore corpora show {corpus}` lists its units" if corpus else ""
        raise UnknownPairError(f"no pair {ref} in the vector store at {store.location}{hint}")
    payload = (texts or images).payload
    cache = store.caption_cache()
    return StoredPair(
        pair_id=pid, corpus=payload.get("corpus", corpus), key=payload.get("key", key), texts=texts, images=images,
        caption_cache=None if cache is None else {
            "model": cache.model, "cached": texts is not None and CAPTION_VECTOR in texts.vectors},
    )
