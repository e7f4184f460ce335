"""xmore-db: X-MoRe retrieval-augmented CLIP classification over Qdrant.

The Python API is `xmore_db.open(home=..., **settings)` (see `xmore_db.api`); importing
this package loads neither torch nor an engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .api import Index


def open(home=None, **settings) -> Index:  # noqa: A001 - the entry point's name, as in sqlite3.connect's place
    """An Index over `home` with these settings: search, retrieve, classify, stream, events, ingest, init."""
    from .api import open as open_index

    return open_index(home, **settings)


__all__ = ["open"]
