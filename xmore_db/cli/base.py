"""The pieces every command group shares: error mapping, app factory, settings."""

from __future__ import annotations

import os

import typer
from typer.core import TyperGroup

from ..config import Settings
from ..errors import XmoreError


class XmoreGroup(TyperGroup):
    """Maps every expected failure to one line on stderr and exit 1.

    XMORE_DEBUG=1 lets the traceback through instead.
    """

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except XmoreError as exc:
            if os.environ.get("XMORE_DEBUG"):
                raise
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:  # an unexpected failure still gets one line, not a traceback
            if os.environ.get("XMORE_DEBUG"):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            typer.echo(f"Error: unexpected {type(exc).__name__}: {first} "
                       "(set XMORE_DEBUG=1 for the traceback)", err=True)
            raise typer.Exit(1) from None


def make_app(help: str) -> typer.Typer:
    return typer.Typer(cls=XmoreGroup, help=help, no_args_is_help=True,
                       pretty_exceptions_enable=False, add_completion=False)


def settings_from(ctx: typer.Context, **command_overrides) -> Settings:
    overrides = dict(ctx.find_root().obj or {})
    overrides.update(command_overrides)
    return Settings.from_env(**overrides)
