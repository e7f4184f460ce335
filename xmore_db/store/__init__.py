"""The vector store: image and caption embeddings joined by pair id.

`open_store(settings)` picks the backend: the embedded Qdrant Edge store under
`<home>/qdrant` by default, a Qdrant server when `qdrant_url` is set. The
engines are imported only when a store is made (qdrant-client takes a second
to import), so importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import VectorStore
from .storage import Storage, StorageRequest
from .types import CaptionCache, CaptionHit, ImageHit, IndexState, PairBatch, Provenance, pair_id

if TYPE_CHECKING:
    from ..config import Settings
    from .edge import EdgeStore
    from .server import ServerStore


def open_store(settings: Settings) -> VectorStore:
    """The configured store, not yet opened: call `init()` or `open()` with the provenance."""
    if settings.qdrant_url:
        from .server import ServerStore

        return ServerStore.from_settings(settings)
    from .beam import BeamTarget
    from .edge import EdgeStore
    from .storage import StorageRequest

    return EdgeStore(settings.home / "qdrant", storage=StorageRequest.from_settings(settings),
                     beam=BeamTarget(recall=settings.recall_target, limit=settings.coarse_k))


def __getattr__(name: str):
    if name == "EdgeStore":
        from .edge import EdgeStore

        return EdgeStore
    if name == "ServerStore":
        from .server import ServerStore

        return ServerStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CaptionCache", "CaptionHit", "EdgeStore", "ImageHit", "IndexState", "PairBatch", "Provenance", "ServerStore",
    "Storage", "StorageRequest", "VectorStore", "open_store", "pair_id",
]
