"""The pages' routes: an HTML shell per page, and the stylesheet and scripts they load.

Assets are read once, at import, and served from memory under a content hash
(`/static/NAME?v=HASH`), so a browser keeps them until they change. Every page
is sent with a Content-Security-Policy that allows scripts and styles from this
service only: the pages work on an air-gapped cluster and run nothing injected.
Images may also come from `blob:` (thumbnails fetched with the key) and from
http(s) (a hit kept only as a url, shown from there when the browser can reach it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..service.errors import ApiError

HERE = Path(__file__).resolve().parent
MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' blob: data: https: http:; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a thumbnail loaded from a hit's url learns nothing of the page
}
NAV = (("/", "Search"), ("/classify", "Classify"), ("/streams", "Streams"), ("/corpora", "Corpora"))


@dataclass(frozen=True)
class Asset:
    data: bytes
    media_type: str
    version: str


def _assets() -> dict[str, Asset]:
    out = {}
    for path in sorted((HERE / "static").iterdir()):
        if path.suffix in MEDIA_TYPES:
            data = path.read_bytes()
            out[path.name] = Asset(data, MEDIA_TYPES[path.suffix], hashlib.sha256(data).hexdigest()[:12])
    return out


ASSETS = _assets()
templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)
router = APIRouter(include_in_schema=False)


def asset_url(root: str, name: str) -> str:
    return f"{root}/static/{name}?v={ASSETS[name].version}"


def page(request: Request, template: str, title: str, **context) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy's path prefix, links keep it
    html = templates.get_template(template).render(
        root=root, title=title, nav=NAV, path=request.url.path[len(root):] or "/",
        asset=lambda name: asset_url(root, name), **context)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/")
def search_page(request: Request) -> HTMLResponse:
    return page(request, "search.html", "Search")


@router.get("/classify")
def classify_page(request: Request) -> HTMLResponse:
    from ..classify import classify_methods
    from ..evaluation.scoring import CASES
    from ..methods import get_method
    from ..methods.base import FUSION, TEXTBANK

    # The page cannot know which files the service was started with: it says which methods need one, and the
    # API's 422 names the missing start option if one is asked for anyway.
    files = {TEXTBANK: "a text bank", FUSION: "a fusion layer"}
    methods = [(name, " and ".join(files[n] for n in sorted(get_method(name).needs & set(files))))
               for name in classify_methods()]
    return page(request, "classify.html", "Classify", methods=methods, cases=list(CASES))


@router.get("/streams")
def streams_page(request: Request) -> HTMLResponse:
    return page(request, "streams.html", "Streams")


@router.get("/streams/{name:path}")
def stream_page(request: Request, name: str) -> HTMLResponse:
    return page(request, "stream.html", f"Stream {name}", stream=name)


@router.get("/corpora")
def corpora_page(request: Request) -> HTMLResponse:
    return page(request, "corpora.html", "Corpora")


@router.get("/static/{name}")
def static_file(name: str, v: str | None = None) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise ApiError(404, f"no static file {name}")
    # Under its current hash the file never changes; without one, the browser asks again each time.
    cache = "public, max-age=31536000, immutable" if v == asset.version else "no-cache"
    return Response(asset.data, media_type=asset.media_type,
                    headers={"Cache-Control": cache, "ETag": f'"{asset.version}"', **SECURITY_HEADERS})
