"""`xmore streams`: the per-stream confidence histories."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import typer

from ..config import check_stream_name
from ..workspace import Workspace
from . import options as opt
from .base import make_app, settings_from
from .remote import remote, server
from .render import echo_json, echo_table

app = make_app("List, inspect and reset the confidence history of query streams.")

StreamName = Annotated[str, typer.Argument(help="Stream name.")]


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _stream_json(stats) -> dict:
    """A stream's statistics for --json: its name under `stream`, as classify and reset print it."""
    out = asdict(stats)
    return {"stream": out.pop("name")} | out


@app.command("list")
def list_streams(ctx: typer.Context, json: opt.Json = False):
    """List streams with their event counts and confidence ranges."""
    if remote(ctx):
        with server(ctx) as client:
            streams = client.streams()
    else:
        with Workspace(settings_from(ctx)) as ws:
            ws.history.check()
            streams = [_stream_json(s) for s in ws.history.streams()]
    if json:
        echo_json(streams)
        return
    if not streams:
        typer.echo("No streams yet: `xmore classify … --stream NAME` creates one.", err=True)
        return
    echo_table(["stream", "method", "events", "c_I min", "c_I max", "with captions", "c_T min", "c_T max"],
               [[s["stream"], s["method"], s["n_events"], _fmt(s["image"]["min"]), _fmt(s["image"]["max"]),
                 s["text"]["count"], _fmt(s["text"]["min"]), _fmt(s["text"]["max"])] for s in streams])


@app.command()
def show(
    ctx: typer.Context,
    name: StreamName,
    last: Annotated[int, typer.Option("--last", "-n", min=0, help="How many recent events to show.")] = 10,
    json: opt.Json = False,
):
    """Show a stream's running statistics and its most recent events."""
    check_stream_name(name)
    if remote(ctx):
        with server(ctx) as client:
            shown = client.stream(name, last=last)
    else:
        with Workspace(settings_from(ctx)) as ws:
            ws.history.check()
            stats = ws.history.stream(name)
            events = ws.history.events(name, last=last) if last else []
        shown = _stream_json(stats) | {"events": [asdict(e) for e in events]}
    if json:
        echo_json(shown)
        return
    typer.echo(f"stream {shown['stream']} ({shown['method']}): {shown['n_events']} events since "
               f"{_when(shown['created_at']):%Y-%m-%d %H:%M:%S}")
    for label in ("image", "text"):
        m = shown[label]
        mean = m["sum"] / m["count"] if m["count"] else None
        typer.echo(f"  {label:5} confidence: n={m['count']} min={_fmt(m['min'])} max={_fmt(m['max'])} "
                   f"mean={_fmt(mean)}")
    if shown["events"]:
        typer.echo("")
        echo_table(["seq", "query", "c_I", "c_T", "ĉ_I", "ĉ_T", "normalize", "prediction"],
                   [[e["seq"], e["query"] or "", _fmt(e["c_image"]), _fmt(e["c_text"]), _fmt(e["w_image"]),
                     _fmt(e["w_text"]), e["normalize"], e["prediction"]] for e in shown["events"]])


def _when(value: datetime | str) -> datetime:
    """A time from the history (a datetime) or from a server's JSON (ISO 8601)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


@app.command()
def reset(ctx: typer.Context, name: StreamName, yes: opt.Yes = False, json: opt.Json = False):
    """Delete a stream's history; its next query starts a fresh normalisation."""
    check_stream_name(name)
    if remote(ctx):
        with server(ctx) as client:
            if not yes:
                n_events = client.stream(name, last=0)["n_events"]
                typer.confirm(f"Delete stream {name!r} and its {n_events} events?", abort=True, err=True)
            removed = client.reset(name)["events_removed"]
    else:
        with Workspace(settings_from(ctx)) as ws:
            ws.history.check()
            stats = ws.history.stream(name)
            if not yes:
                typer.confirm(f"Delete stream {name!r} and its {stats.n_events} events?", abort=True, err=True)
            removed = ws.history.reset(name)
    if json:
        echo_json({"stream": name, "events_removed": removed})
        return
    typer.echo(f"Reset stream {name!r}: removed {removed} events")
