"""The pieces every command group shares: error mapping, app factory, settings."""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

try:  # typer 0.22+ carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on click itself
    from click import exceptions as click_errors

from ..config import Settings, mask_secrets, secret_values
from ..errors import XmoreError, first_line


class XmoreGroup(TyperGroup):
    """Maps every expected failure to one line on stderr and exit 1.

    XMORE_DEBUG=1 lets the traceback through instead.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Usage errors as one `Error: …` line and exit 2, like every other error (click prints a usage block)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as exc:  # `xmore streams` alone: the help, as asked
            typer.echo(exc.ctx.get_help())
            sys.exit(0)
        except click_errors.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            typer.echo(f"Error: {' '.join(exc.format_message().split())}{where}", err=True)
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            typer.echo(f"Error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault("xmore.args", list(args))  # the whole command line: `--server` lets `--help` through
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, click_errors.ClickException):
            raise
        except BrokenPipeError:
            # The reader went away (`xmore config | head -1`): stop quietly, as Unix tools do.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None
        except XmoreError as exc:
            if os.environ.get("XMORE_DEBUG"):
                raise
            echo_error(ctx, str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:  # an unexpected failure still gets one line, not a traceback
            if os.environ.get("XMORE_DEBUG"):
                raise
            echo_error(ctx, f"unexpected {type(exc).__name__}: {first_line(exc)} "
                            "(set XMORE_DEBUG=1 for the traceback)")
            raise typer.Exit(1) from None


def secrets_of(ctx: typer.Context) -> list[str]:
    """The credential values this invocation was given, by option or XMORE_* variable."""
    given = dict(ctx.find_root().obj or {})
    env = Settings.ENV

    def value(name: str) -> str | None:
        return given.get(name) or os.environ.get(env[name]) or None

    from .remote import api_key_of

    return secret_values(database_url=value("database_url"), qdrant_url=value("qdrant_url"),
                         qdrant_api_key=value("qdrant_api_key")) + api_key_of(ctx)


def masked(ctx: typer.Context, text: str) -> str:
    """`text` with every credential masked: URL passwords, secret query values, the API key."""
    return mask_secrets(text, secrets_of(ctx))


def echo_error(ctx: typer.Context, message: str) -> None:
    """The one `Error: …` line on stderr, credentials masked."""
    typer.echo(f"Error: {masked(ctx, message)}", err=True)


def make_app(help: str) -> typer.Typer:
    # Plain help (rich_markup_mode None): readable at 80 columns, no <bool> placeholders on flags.
    return typer.Typer(cls=XmoreGroup, help=help, no_args_is_help=True, rich_markup_mode=None,
                       pretty_exceptions_enable=False, add_completion=False)


def settings_from(ctx: typer.Context, **command_overrides) -> Settings:
    overrides = dict(ctx.find_root().obj or {})
    overrides.update(command_overrides)
    return Settings.from_env(**overrides)


BUSY = "held by another process, e.g. a running ingest"


def store_state(busy: bool) -> dict:
    """The `store` entry of `status` and `corpora`: busy while another process holds the embedded store
    (Qdrant Edge allows one), when point counts are unknown and the SQL part is still shown."""
    return {"busy": busy, "message": f"{BUSY}: point counts unknown until it exits" if busy else None}
