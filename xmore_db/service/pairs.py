"""`GET /v1/pairs/{pair}/image`: a stored pair's image as a JPEG thumbnail (the web pages' hit grids).

Any valid key may fetch any pair's thumbnail: every team searches the same
corpora. The image is found as `xmore_db.thumbnails` describes, shrunk to at
most `size` pixels a side and cached under the home (cache/thumbnails); a pair
whose image is not on this server (only a url, a moved folder) gets 404 with the
reason in one line, the url included when there is one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from ..errors import first_line
from ..pairs import resolve
from ..thumbnails import ThumbnailCache, locate, make_thumbnail, read_image
from .auth import Who
from .errors import ApiError

if TYPE_CHECKING:
    from ..api import Index

DEFAULT_SIZE = 256
# The browser may keep a thumbnail for a day: a pair's image changes only when its corpus is re-ingested.
CACHE_CONTROL = "private, max-age=86400"


def router(index: Index, turn: Callable[[], AbstractContextManager[None]]) -> APIRouter:
    """The thumbnail route over `index`; `turn()` holds the index for this thread (the app's lock, with its
    timeout), taken only to read the pair's payload and its corpus' record, never while an image is decoded."""
    routes = APIRouter()
    cache = ThumbnailCache(index.settings.home / "cache" / "thumbnails")

    @routes.get("/v1/pairs/{pair:path}/image", response_class=Response,
                summary="A pair's image as a JPEG thumbnail (folder files and webdataset shard members)",
                responses={200: {"content": {"image/jpeg": {}}},
                           404: {"description": "no such pair, or its image is not on this server"}})
    def pair_image(
        who: Who,
        pair: Annotated[str, Path(description="A pair id (hits' pair_id) or CORPUS:KEY.")],
        size: Annotated[int, Query(ge=16, le=1024, description="Longest side, in pixels.")] = DEFAULT_SIZE,
    ) -> Response:
        pid, _, _ = resolve(pair)  # 400 for neither a UUID nor CORPUS:KEY
        thumbnail = cache.get(pid, size)
        if thumbnail is None:
            with turn():
                found = locate(index._workspace.store(), index._workspace.ledger, pair)
            if found.missing is not None:
                raise ApiError(404, found.missing)
            try:
                thumbnail = make_thumbnail(read_image(found), size)
            except OSError as error:
                raise ApiError(404, f"the image of pair {pid} ({found.where}) cannot be read: "
                                    f"{first_line(error) or type(error).__name__}") from None
            cache.put(pid, size, thumbnail)
        return Response(thumbnail, media_type="image/jpeg", headers={"Cache-Control": CACHE_CONTROL})

    return routes
