"""`xmore serve`: the HTTP service over one index (see xmore_db.service)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from .base import settings_from

INSTALL = "xmore serve needs FastAPI and uvicorn: pip install 'xmore-db[serve]'"


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind; loopback by default. Bind another only "
                                                     "with --keys.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    keys: Annotated[Path | None, typer.Option(
        "--keys", envvar="XMORE_SERVE_KEYS",
        help="API keys file (JSON, or TOML by its .toml suffix): {KEY: {team: NAME, admin: BOOL}}. "
             "Without it, one open team and no keys.")] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, envvar="XMORE_SERVE_MAX_BATCH",
                                           help="Images gathered into one encoder batch.")] = 64,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0, envvar="XMORE_SERVE_MAX_WAIT_MS",
                                               help="How long a classify request waits for others to "
                                                    "batch with.")] = 5.0,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, envvar="XMORE_SERVE_MAX_UPLOAD_MB",
                                                 help="Largest request body, in MiB (413 above).")] = 32.0,
    max_images: Annotated[int, typer.Option("--max-images", min=1, envvar="XMORE_SERVE_MAX_IMAGES",
                                            help="Images per classify or retrieve request (413 above).")] = 64,
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
    from ..service import create_app
    from ..service.auth import Keys
    from ..service.settings import ServiceSettings

    loaded = Keys.from_file(keys) if keys is not None else Keys.open()
    if not loaded.required and host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"refusing to serve {host} without keys: anyone who can reach it could reset streams; "
                          "give --keys FILE, or bind 127.0.0.1")
    limits = ServiceSettings(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_images=max_images,
                             max_batch=max_batch, max_wait_ms=max_wait_ms)
    with Index(settings_from(ctx)) as index:
        app = create_app(index, keys=loaded, settings=limits, preload=True)
        typer.echo(f"xmore serve on http://{host}:{port} ({'keys required' if loaded.required else 'open, no keys'})",
                   err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")
