"""`xmore --server URL …`: which commands send their work to `xmore serve`, and the client they use.

A remote command prints what it prints locally (the same renderers, the same --json),
without importing torch or opening the store: its branch comes before any import of
the local machinery.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

try:  # typer 0.22+ carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on click itself
    from click.exceptions import ClickException

if TYPE_CHECKING:
    from ..client import Client

# The top-level commands with a remote branch; every other one runs locally only.
REMOTE_COMMANDS = ("classify", "retrieve", "search", "status", "streams")
_META = "xmore.remote"


class RemoteUsageError(ClickException):
    """--server with a local-only command or option: a usage error (exit 2), one line without a usage hint."""

    exit_code = 2


@dataclass(frozen=True)
class Remote:
    url: str
    api_key: str | None = field(default=None, repr=False)


def remember(ctx: typer.Context, server: str | None, api_key: str | None) -> None:
    """The root callback's part: keep --server and --api-key for the command, or refuse a local-only command."""
    if not server:
        return
    command = ctx.invoked_subcommand
    if command is not None and command not in REMOTE_COMMANDS and "--help" not in ctx.meta.get("xmore.args", ()):
        given = "XMORE_SERVER" if _source(ctx, "server") == "ENVIRONMENT" else "--server"
        raise RemoteUsageError(f"xmore {command} runs locally: {given} is not supported here")
    ctx.meta[_META] = Remote(server, api_key or None)


def remote(ctx: typer.Context) -> Remote | None:
    """The server this invocation talks to, or None to run locally."""
    return ctx.meta.get(_META)


def api_key_of(ctx: typer.Context) -> list[str]:
    """The API key as a secret to mask in any output ([] without one)."""
    found = remote(ctx)
    return [found.api_key] if found and found.api_key else []


def refuse_local_options(ctx: typer.Context, **options: str) -> None:
    """A usage error (exit 2) for an option given on the command line that only a local run uses.

    `options` maps parameter names to their flags. Values from XMORE_* variables are
    ignored instead: they configure local runs, and the server has its own settings.
    """
    for name, flag in options.items():
        if _source(ctx, name) == "COMMANDLINE":
            raise RemoteUsageError(f"{flag} is the server's setting here: it cannot be given with --server")


@contextmanager
def server(ctx: typer.Context) -> Iterator[Client]:
    """A client for this invocation's server; a missing key's 401 names the options that give one."""
    from ..client import Client
    from ..errors import ServerAuthError

    found = remote(ctx)
    try:
        with Client(found.url, api_key=found.api_key) as client:
            yield client
    except ServerAuthError as exc:
        if exc.status == 401 and found.api_key is None:
            raise ServerAuthError(f"{exc} (give one with --api-key KEY or XMORE_API_KEY)", status=401) from None
        raise


def _source(ctx: typer.Context, name: str) -> str | None:
    source = ctx.get_parameter_source(name)
    return source.name if source is not None else None
