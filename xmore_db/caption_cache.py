"""Filling the caption cache of existing corpora: the classifier's embedding of every caption.

Ingest fills the cache for new pairs when it is on; this pass fills what is
missing (corpora ingested before, or with the cache off), and with `rebuild`
replaces a cache made for another classifier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import StoreMismatchError

if TYPE_CHECKING:
    from .workspace import Workspace

PAGE = 1024


@dataclass(frozen=True)
class CacheReport:
    model: str
    dim: int
    filled: int
    replaced: str | None  # the model whose cache was replaced, if any
    seconds: float


def fill_caption_cache(workspace: Workspace, *, rebuild: bool = False,
                       on_start: Callable[[int], None] = lambda total: None,
                       on_progress: Callable[[int], None] = lambda n: None) -> CacheReport:
    started = time.perf_counter()
    store = workspace.store()
    wanted = workspace.caption_cache()
    current = store.caption_cache()
    if current is not None and current != wanted and not rebuild:
        raise StoreMismatchError(
            f"the caption cache holds {current.model} ({current.dim}-d) but the classifier is {wanted.model} "
            f"({wanted.dim}-d): pass --rebuild to replace it"
        )
    classifier = workspace.encoder("classifier")  # missing weights fail before the store changes
    store.set_caption_cache(wanted)
    on_start(store.counts()["texts"])
    filled, offset = 0, None
    while True:
        page, offset = store.uncached_captions(limit=PAGE, offset=offset)
        if page:
            ids, captions = zip(*page, strict=True)
            store.set_caption_vectors(list(ids), classifier.encode_texts(list(captions)))
            filled += len(page)
            on_progress(len(page))
        if offset is None:
            break
    return CacheReport(model=wanted.model, dim=wanted.dim, filled=filled,
                       replaced=current.model if current is not None and current != wanted else None,
                       seconds=time.perf_counter() - started)
