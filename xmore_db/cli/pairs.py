"""`xmore show`: everything stored for one pair."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated

import typer

from ..workspace import Workspace
from . import options as opt
from .render import echo_json

_FIRST = ("caption", "corpus", "key", "url", "path", "metadata")


def show(
    ctx: typer.Context,
    pair: Annotated[str, typer.Argument(
        help="A pair id (the UUID in hits' pair_id) or CORPUS:KEY (split at the first colon).")],
    json: opt.Json = False,
):
    """Show everything stored for a pair: both collections' payloads, their vectors, the caption cache.

    The payload of `texts` holds caption, corpus and key, and where the source had
    them url, path (the image's place in the source) and metadata (--keep-columns);
    `images` holds corpus and key. Needs no model.
    """
    from ..pairs import show_pair
    from .base import settings_from

    with Workspace(settings_from(ctx)) as ws:
        stored = show_pair(ws.raw_store(), pair)
    if json:
        echo_json(stored.to_dict())
        return
    typer.echo(f"pair {stored.pair_id}: corpus {stored.corpus}, key {stored.key}")
    for name, point in (("texts", stored.texts), ("images", stored.images)):
        if point is None:
            typer.echo(f"{name}: no point")
            continue
        typer.echo(f"{name}:")
        payload = point.payload
        for field in [*(f for f in _FIRST if f in payload), *sorted(set(payload) - set(_FIRST))]:
            value = payload[field]
            text = jsonlib.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
            typer.echo(f"  {field}: {text}")
        typer.echo("  vectors: " + (", ".join(f"{n} ({d}-d)" for n, d in point.vectors.items()) or "none"))
    cache = stored.caption_cache
    typer.echo("caption cache: " + ("none in this store" if cache is None else
                                    f"{cache['model']}, {'cached' if cache['cached'] else 'not cached'}"))


def register(app: typer.Typer) -> None:
    app.command()(show)
