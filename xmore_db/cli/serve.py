"""`xmore serve`: the HTTP service over one index (see xmore_db.service)."""

from __future__ import annotations

import signal
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError, XmoreError
from . import options as opt
from .base import masked, settings_from

INSTALL = "xmore serve needs FastAPI and uvicorn: pip install 'xmore-db[serve]'"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind; loopback by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="TCP port; 0: a free one, named on stderr.")] = 8000,
    open_: Annotated[bool, typer.Option(
        "--open", help="Serve without API keys: one open team, every caller an admin, stream names as the CLI's. "
                       "Loopback hosts only. Without it, requests need a key made by `xmore keys create`.")] = False,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, envvar="XMORE_SERVE_MAX_BATCH",
                                           help="Images gathered into one encoder batch.")] = 64,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0, envvar="XMORE_SERVE_MAX_WAIT_MS",
                                               help="How long a classify request waits for others to "
                                                    "batch with.")] = 5.0,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, envvar="XMORE_SERVE_MAX_UPLOAD_MB",
                                                 help="Largest request body, in MiB (413 above).")] = 32.0,
    max_images: Annotated[int, typer.Option("--max-images", min=1, envvar="XMORE_SERVE_MAX_IMAGES",
                                            help="Images per classify or retrieve request (413 above).")] = 64,
    max_queue: Annotated[int, typer.Option("--max-queue", min=1, envvar="XMORE_SERVE_MAX_QUEUE",
                                           help="Images waiting for the micro-batcher; a classify request that "
                                                "would pass it gets 429 with Retry-After, nothing recorded.")] = 256,
    request_timeout: Annotated[float, typer.Option(
        "--request-timeout", min=0.001, envvar="XMORE_SERVE_REQUEST_TIMEOUT",
        help="Seconds a request may wait for its turn (classify: in the queue); past it, 503 and nothing "
             "recorded. A classify request already started is finished and answered.")] = 60.0,
    textbank: Annotated[list[Path] | None, typer.Option(
        "--textbank", help="A CODER text bank (JSON) for the CODER methods; repeat for several. A request gets "
                           "the bank holding exactly its labels.")] = None,
    fusion: opt.Fusion = None,
    ingest_root: Annotated[list[Path] | None, typer.Option(
        "--ingest-root", envvar="XMORE_SERVE_INGEST_ROOT",
        help="A directory on this machine that ingest over HTTP (POST /v1/corpora/NAME/ingest) may read from; "
             "repeat for several (in the variable: separated by ':'). Without it, ingest over HTTP is off.")] = None,
):
    """Serve the index over HTTP: classify, retrieve, search, streams, status, /healthz, /readyz, /metrics.

    One process opens the store and the history once and loads each encoder once;
    concurrent classify requests are gathered into one batch. The OpenAPI page is at /docs.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise ConfigError(INSTALL) from None
    from ..api import Index
    from ..history.keys import KeyStore
    from ..service import create_app
    from ..service.auth import Keys
    from ..service.settings import ServiceSettings

    if open_ and host not in LOOPBACK:
        raise ConfigError(f"refusing to serve {host} with --open: anyone who can reach it could reset streams; "
                          "drop --open and give each client a key (`xmore keys create`), or bind 127.0.0.1")
    from ..service.corpora import check_ingest_roots
    from ..service.method_files import ServedFiles

    limits = ServiceSettings(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_images=max_images,
                             max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue,
                             request_timeout=request_timeout, ingest_roots=check_ingest_roots(ingest_root or []))
    listener = _listen(host, port)  # before the models load: a port in use fails at once
    with listener, _sigterm_exits(), Index(settings_from(ctx)) as index:
        files = ServedFiles.check(index._workspace, textbanks=textbank or [], fusion=fusion)
        keys = Keys.open() if open_ else Keys(KeyStore(index._workspace.database))
        if keys.store is not None:
            _hint_without_keys(ctx, keys.store)
        app = create_app(index, keys=keys, settings=limits, preload=True, files=files)
        port = listener.getsockname()[1]  # the one the system chose for --port 0
        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"xmore serve on http://{shown}:{port} "
                   f"({'API keys required' if keys.required else 'open, no keys'})", err=True)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (0: any free port); ConfigError, one line, when it cannot be."""
    try:
        family, kind, proto, *_ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only for sockets made with it;
        # without, a kept-alive Python client waits ~40 ms per request on delayed ACKs (measured).
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


@contextmanager
def _sigterm_exits():
    """While the block runs, SIGTERM ends `xmore serve` with exit 0 after the index is closed.

    uvicorn stops on SIGTERM (no new requests; those in flight, the batcher's queue included, are
    answered), then raises the signal again for the handler it found; the default one would kill the
    process before `with Index` releases the store and the database. This one unwinds instead.
    """
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(_signum, _frame) -> None:
    raise SystemExit(0)


def _hint_without_keys(ctx: typer.Context, store) -> None:
    """One line on stderr when no request could pass yet. The service still starts: keys can be made while it runs,
    and a database not reachable yet is what /readyz reports."""
    try:
        active = store.active_count()
    except XmoreError as exc:
        typer.echo(masked(ctx, f"Warning: cannot count the API keys: {exc}"), err=True)
        return
    if not active:
        typer.echo("No API key yet, so every request gets 401: `xmore keys create --team T --role admin` makes "
                   "the first.", err=True)
