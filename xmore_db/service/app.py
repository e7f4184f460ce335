"""The FastAPI app: routes that parse a request, call the Index, and return the CLI's --json shapes."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import secret_values
from ..errors import ImageError, LabelsError, XmoreError, first_line
from . import corpora as corpora_routes
from . import key_routes, labelsets
from .auth import Caller, Keys, Who
from .batching import Batcher, Job
from .errors import ApiError, body, status_and_message
from .ingests import Ingests
from .method_files import ServedFiles
from .metrics import Metrics
from .settings import ServiceSettings

if TYPE_CHECKING:
    from PIL import Image

    from ..api import Index


class SearchRequest(BaseModel):
    """`xmore search TEXT`'s options."""

    text: str = Field(min_length=1)
    n: int = Field(20, ge=1, le=10_000)
    offset: int = Field(0, ge=0)
    corpora: list[str] | None = None
    dedup: float | None = Field(None, gt=0, le=1)


def _stream_json(who: Caller, stats) -> dict:
    """A stream's statistics as `xmore streams … --json` prints them, under the caller's name for it."""
    out = asdict(stats) | {"created_at": stats.created_at.isoformat()}  # the CLI's +00:00, not pydantic's Z
    return {"stream": who.shown(out.pop("name"))} | out


def _known_stream(history, name: str, stored: str):
    """The stream's statistics; 404 under the caller's own name for it (the team prefix is the service's)."""
    from ..errors import UnknownStreamError

    try:
        return history.stream(stored)
    except UnknownStreamError:
        raise ApiError(404, f"no stream named {name!r} for your team (GET /v1/streams or "
                             "`xmore streams list` lists them)") from None


def parse_labels(text: str) -> list[str]:
    """Labels given inline: separated by newlines, or by commas on a single line."""
    from ..labels import check_labels

    parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    names = [p.strip() for p in parts if p.strip()]
    if not names:
        raise LabelsError("no labels given: `labels` holds class names separated by commas or newlines")
    return check_labels(names)


def create_app(index: Index, *, keys: Keys | None = None, settings: ServiceSettings | None = None,
               preload: bool = False, files: ServedFiles | None = None,
               on_batch: Callable[[list[Job]], None] | None = None,
               ingest_hook: Callable[[int], None] | None = None) -> FastAPI:
    """The service over one open Index. `preload` loads the encoders and opens the store at startup.

    `files`: the CODER text banks and RECO fusion layer the service was started with (checked by
    `ServedFiles.check`); `on_batch`: the micro-batcher's test hook (see `Batcher`); `ingest_hook`: the
    writer's test hook of HTTP ingests (see `ingest.Writer`).
    """
    keys = keys or Keys.open()
    settings = settings or ServiceSettings()
    files = files or ServedFiles()
    metrics = Metrics()
    lock = threading.Lock()  # the Index is used by one thread at a time: the batcher's or a route's
    s = index.settings
    secrets = secret_values(database_url=s.database_url, qdrant_url=s.qdrant_url, qdrant_api_key=s.qdrant_api_key)
    state: dict = {}
    ingests = Ingests(index._workspace, lock, secrets=secrets, after_write=ingest_hook)
    label_sets = labelsets.LabelSets(index._workspace.database)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if preload:
            await run_in_threadpool(_preload, index, lock, files)
        state["batcher"] = Batcher(index, lock, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms,
                                   max_queue=settings.max_queue, metrics=metrics, on_batch=on_batch)
        try:
            yield
        finally:
            state.pop("batcher").close()
            ingests.close()

    app = FastAPI(title="xmore", version="1", lifespan=lifespan,
                  description="X-MoRe zero-shot classification over one shared index (`xmore serve`).")
    app.state.keys = keys
    app.state.ingests = ingests  # the HTTP ingests, running and finished

    def error_response(exc: BaseException) -> JSONResponse:
        status, message = status_and_message(exc, secrets)
        headers = dict(exc.headers) if isinstance(exc, ApiError) else {}
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(body(message), status_code=status, headers=headers or None)

    @contextmanager
    def turn():
        """The index for this thread, once the batcher or another route lets go of it; 503 past the timeout."""
        if not lock.acquire(timeout=settings.request_timeout):
            metrics.rejected.labels("timeout").inc()
            raise ApiError(503, f"timed out after {settings.request_timeout:g} s waiting for the index; nothing "
                                "was done: retry later", headers={"Retry-After": state["batcher"].retry_after()})
        try:
            yield
        finally:
            lock.release()

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_upload_bytes:
            response = error_response(ApiError(413, f"request body of {int(length):,} bytes is over the limit of "
                                                    f"{settings.max_upload_bytes:,}"))
        else:
            try:
                response = await call_next(request)
            except Exception as exc:  # noqa: BLE001 - never a traceback to the client
                response = error_response(exc)
        route = getattr(request.scope.get("route"), "path", None) or "unmatched"
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(ApiError)
    @app.exception_handler(XmoreError)
    async def known(_request: Request, exc: Exception):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        problems = exc.errors()
        first = problems[0] if problems else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return JSONResponse(body(f"{where}: {first_line(first.get('msg', 'invalid'))}{more}"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        return JSONResponse(body(first_line(str(exc.detail))), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception):
        return error_response(exc)


    async def read_images(uploads: list[UploadFile]) -> tuple[list[Image.Image], list[str]]:
        if not uploads:
            raise ApiError(400, "no images given: send one or more `images` file fields")
        if len(uploads) > settings.max_images:
            raise ApiError(413, f"{len(uploads)} images in one request, over the limit of {settings.max_images}")
        total, blobs = 0, []
        for upload in uploads:
            data = await upload.read()
            total += len(data)
            if total > settings.max_upload_bytes:
                raise ApiError(413, f"uploads over the limit of {settings.max_upload_bytes:,} bytes")
            blobs.append((upload.filename or f"<image {len(blobs)}>", data))
        images = await run_in_threadpool(lambda: [decode(name, data, settings.max_pixels) for name, data in blobs])
        return images, [name for name, _ in blobs]

    # ---- classification and retrieval -------------------------------------------------------------------------

    @app.post("/v1/classify", summary="Classify uploaded images into a stream (`xmore classify --json`)")
    async def classify(
        who: Who,
        images: Annotated[list[UploadFile], File(description="Images, in stream order.")],
        labels: Annotated[str | None, Form(description="Class names, separated by commas or newlines.")] = None,
        label_set: Annotated[str | None, Form(description="Instead of `labels`: the name of one of the team's "
                                                          "label sets (/v1/labelsets).")] = None,
        stream: Annotated[str, Form()] = "default",
        method: Annotated[str, Form()] = "xmore",
        corpora: Annotated[str | None, Form(description="Corpus names, comma separated (default: all).")] = None,
    ) -> list[dict]:
        from ..classify import classify_methods
        from ..errors import BadInputError

        stored = who.stored(stream)
        names = await labelsets.request_labels(label_sets, who, labels, label_set)
        if method not in classify_methods():
            raise BadInputError(f"unknown method {method!r}: choose from {', '.join(classify_methods())}")
        needed = files.for_request(method, names)  # 422 naming the `xmore serve` option a method lacks
        pil, queries = await read_images(images)
        chosen = [c.strip() for c in corpora.split(",") if c.strip()] if corpora else None
        job = Job(images=pil, queries=queries, labels=names, stream=stored, method=method, corpora=chosen,
                  files=needed, key_id=who.key_id)
        batcher: Batcher = state["batcher"]
        outcome = asyncio.wrap_future(batcher.submit(job))  # 429 when the queue is full
        await asyncio.wait({outcome}, timeout=settings.request_timeout)
        if not outcome.done() and batcher.withdraw(job):
            raise ApiError(503, f"timed out after {settings.request_timeout:g} s waiting in the queue; nothing "
                                "was recorded: retry later", headers={"Retry-After": batcher.retry_after()})
        results = await outcome  # started before the timeout: scored and recorded in full, however long it takes
        return [r.to_dict() | {"stream": who.shown(r.stream)} for r in results]

    @app.post("/v1/retrieve", summary="Captions retrieved for uploaded images (`xmore retrieve --json`)")
    async def retrieve(
        who: Who,
        images: Annotated[list[UploadFile], File()],
        coarse: Annotated[bool, Form()] = False,
        corpora: Annotated[str | None, Form()] = None,
    ) -> list[dict]:
        from ..retrieval import describe

        pil, queries = await read_images(images)
        chosen = [c.strip() for c in corpora.split(",") if c.strip()] if corpora else None

        def work():
            with turn():
                results = index.retrieve(pil, corpora=chosen)
                out = []
                for query, result in zip(queries, results, strict=True):
                    item = {"query": query, "captions": [asdict(h) for h in result.captions]}
                    if coarse:
                        item["coarse"] = [asdict(h) for h in describe(index._workspace.store(), result.coarse)]
                    out.append(item)
                return out

        return await run_in_threadpool(work)

    @app.post("/v1/search", summary="Corpus images nearest to a text (`xmore search --json`)")
    def search(who: Who, request: SearchRequest) -> list[dict]:
        with turn():
            hits = index.search(request.text, n=request.n, offset=request.offset, corpora=request.corpora,
                                dedup=request.dedup)
        return [h.to_dict() for h in hits]

    @app.post("/v1/search/image", summary="Corpus images nearest to an uploaded image (`xmore search --image`)")
    async def search_image(
        who: Who,
        image: Annotated[UploadFile, File(description="The query image.")],
        n: Annotated[int, Form(ge=1, le=10_000)] = 20,
        offset: Annotated[int, Form(ge=0)] = 0,
        corpora: Annotated[str | None, Form(description="Corpus names, comma separated (default: all).")] = None,
        dedup: Annotated[float | None, Form(gt=0, le=1, description="Drop a hit this close (cosine) to a better "
                                                                    "one.")] = None,
    ) -> list[dict]:
        pil, _ = await read_images([image])
        chosen = [c.strip() for c in corpora.split(",") if c.strip()] if corpora else None

        def work():
            with turn():
                return index.search(image=pil[0], n=n, offset=offset, corpora=chosen, dedup=dedup)

        return [h.to_dict() for h in await run_in_threadpool(work)]

    # ---- streams ----------------------------------------------------------------------------------------------

    @app.get("/v1/streams", summary="The caller's streams (`xmore streams list --json`)")
    def list_streams(who: Who) -> list[dict]:
        with lock:
            history = index._workspace.history
            history.check()
            streams = history.streams()
        return [_stream_json(who, st) for st in streams if who.owns(st.name)]

    @app.get("/v1/streams/{name:path}/events", include_in_schema=False)
    def _no_events(name: str):  # keeps `…/events` from reading as a stream name
        raise ApiError(404, "no such route: GET /v1/streams/NAME gives a stream with its recent events")

    @app.post("/v1/streams/{name:path}/reset", summary="Delete a stream's history (admin keys only)")
    def reset_stream(who: Who, name: str) -> dict:
        stored = who.stored(name)
        who.require("admin")
        with lock:
            history = index._workspace.history
            history.check()
            _known_stream(history, name, stored)
            removed = history.reset(stored)
        return {"stream": name, "events_removed": removed}

    @app.get("/v1/streams/{name:path}", summary="A stream's statistics and recent events (`xmore streams show`)")
    def show_stream(who: Who, name: str, last: int = 10) -> dict:
        if last < 0:
            raise ApiError(422, "last: must be 0 or more")
        stored = who.stored(name)
        with lock:
            history = index._workspace.history
            history.check()
            stats = _known_stream(history, name, stored)
            events = history.events(stored, last=last) if last else []
        return _stream_json(who, stats) | {"events": [
            asdict(ev) | {"stream": name, "created_at": ev.created_at.isoformat()} for ev in events]}

    app.include_router(key_routes.router)  # /v1/keys (admin keys only)
    app.include_router(corpora_routes.router(index, lock, settings, ingests))  # /v1/corpora, ingest over HTTP
    app.include_router(labelsets.router(label_sets))  # /v1/labelsets
    from .. import web
    from . import pairs as pair_images

    app.include_router(pair_images.router(index, turn))  # /v1/pairs/{pair}/image: thumbnails
    app.include_router(web.router)  # the HTML pages (/, /classify, /streams, /corpora) and their /static files

    # ---- status and probes ------------------------------------------------------------------------------------

    @app.get("/v1/status", summary="Backends, collection sizes, database revision (`xmore status --json`)")
    def status(who: Who) -> dict:
        from ..config import mask_url_password

        with lock:
            ws = index._workspace
            store = ws.store()
            revision = ws.history.revision()
            streams = [st for st in ws.history.streams() if who.owns(st.name)]
            cache = store.caption_cache()
            return {
                "vector_backend": s.vector_backend, "vector_location": mask_url_password(str(store.location)),
                "collections": store.counts(), "provenance": asdict(store.stored_provenance()),
                "caption_cache": asdict(cache) if cache else None,
                "storage": (store.requested_storage.searched(stored).to_dict()
                            if (stored := store.stored_storage()) else None),
                "database": s.masked()["database_url"], "database_revision": revision, "streams": len(streams),
                "team": who.team, "role": who.role, "admin": who.admin, "keys_required": keys.required,
                "max_batch": settings.max_batch, "max_wait_ms": settings.max_wait_ms, "methods": files.methods(),
            }

    @app.get("/healthz", summary="The process is alive")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="The store and the database are reachable")
    def readyz() -> dict:
        with lock:
            index._workspace.store()
            index._workspace.history.check()
        return {"status": "ready"}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def decode(name: str, data: bytes, max_pixels: int) -> Image.Image:
    """One uploaded image, fully decoded in RGB; ImageError (400) or ApiError 413 over the pixel limit."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ApiError(413, f"image {name} has {width * height:,} pixels, over the limit of {max_pixels:,}")
            image.load()
            return image.convert("RGB")
    except UnidentifiedImageError:
        reason = "not an image format Pillow can read"
    except Image.DecompressionBombError as exc:
        raise ApiError(413, f"image {name} is too large to decode safely ({first_line(exc)})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = f"corrupt or truncated image data ({first_line(exc) or type(exc).__name__})"
    raise ImageError(f"cannot read image {name}: {reason}")


def _preload(index: Index, lock: threading.Lock, files: ServedFiles) -> None:
    """Open the store, load each encoder once and encode the text banks (cached on disk), before the first
    request."""
    from ..coder.bank import load_bank
    from ..coder.encode import workspace_bank

    with lock:
        ws = index._workspace
        ws.store()
        for role in ("coarse", "fine", "classifier"):
            ws.encoder(role)
        for path in files.banks.values():  # in the bank's own class order, which a request's labels often follow
            workspace_bank(ws, path, list(load_bank(path).classes))
