"""`xmore search`: the corpus' images nearest to a text or an image, as clip-retrieval searches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..workspace import Workspace
from . import options as opt
from .render import echo_json, echo_table


def search(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="What to look for, in words (or give --image).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Search with an image instead of a text.")] = None,
    n: Annotated[int, typer.Option("-n", help="How many hits.")] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many hits first (paging).")] = 0,
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", help="Only this corpus (repeat for several); a payload filter, indexed.")] = None,
    dedup: Annotated[float | None, typer.Option(
        "--dedup", help="Drop a hit whose stored image has at least this cosine similarity to a better hit "
        "(e.g. 0.95), as clip-retrieval's deduplicate does.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the hits to FILE.parquet or FILE.jsonl (e.g. thousands, to build a "
        "subset) instead of printing them.")] = None,
    json: opt.Json = False,
):
    """Search the corpus' images by a text or an image.

    The text goes through the coarse model's text tower (an image through its image
    tower) and is compared with the stored image embeddings (collection `images`),
    as clip-retrieval queries its image index. Captions themselves are not
    searched: `texts` has no graph by design (it is only scanned under an id
    filter). Each hit: rank, score, corpus, key, caption, url.
    """
    from ..search import SearchHit, write_hits
    from ..search import search as run_search
    from .base import settings_from
    from .remote import remote, server

    if (text is None) == (image is None):
        raise typer.BadParameter("give a TEXT or --image IMAGE (one of the two)")
    if remote(ctx):
        with server(ctx) as client:
            found = client.search(text, image=image, n=n, offset=offset, corpora=corpus or None, dedup=dedup)
        fields = SearchHit.__dataclass_fields__  # a newer server's extra fields are not this client's
        hits = [SearchHit(**{k: v for k, v in hit.items() if k in fields}) for hit in found]
    else:
        with Workspace(settings_from(ctx)) as ws:
            hits = run_search(ws, text=text, image=image, n=n, offset=offset, corpora=corpus or None,
                              dedup=dedup)
    if output is not None:
        write_hits(hits, output)
        typer.echo(f"Wrote {len(hits)} hits to {output}", err=True)
        return
    if json:
        echo_json([h.to_dict() for h in hits])
        return
    if not hits:
        typer.echo("No hits: the store is empty, or no pair is in the corpora asked for.", err=True)
        return
    echo_table(["rank", "score", "corpus", "key", "caption", "url"],
               [[h.rank, f"{h.score:.3f}", h.corpus, h.key, h.caption, h.url or ""] for h in hits])


def register(app: typer.Typer) -> None:
    app.command(name="search")(search)
