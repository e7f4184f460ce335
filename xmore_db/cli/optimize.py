"""`xmore optimize`: build the vector index, finishing one that a kill interrupted."""

from __future__ import annotations

import time
from dataclasses import asdict

import typer

from ..workspace import Workspace
from . import options as opt
from .base import settings_from
from .render import echo_json


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)


def optimize(ctx: typer.Context, json: opt.Json = False):
    """Build the HNSW graph of the images collection and show each collection's index.

    `xmore ingest` builds it at its end, and a rerun finishes a build that a kill
    interrupted; this builds it on demand (when `xmore status` warns, say). Safe to
    rerun: with nothing to build it returns at once. A Qdrant server builds in the
    background: this turns indexing back on and returns.

    Once the graph is built it measures the coarse search's beam for --recall-target
    (a few seconds; not again while the store is unchanged): see `xmore status`.
    """
    with Workspace(settings_from(ctx)) as ws:
        store = ws.store()  # checked against the configured models: this writes
        before = store.index_state()
        started = time.perf_counter()
        store.optimize()
        seconds = time.perf_counter() - started
        after = store.index_state()
        result = {
            "vector_backend": store.backend, "vector_location": store.location,
            "was_needed": any(state.needs_build for state in before.values()), "seconds": round(seconds, 3),
            "index": {name: asdict(state) for name, state in after.items()},
            "search_beam": _beam(store),
        }
    if json:
        echo_json(result)
        return
    finished = "finished an interrupted or deferred build" if result["was_needed"] else "nothing was pending"
    typer.echo(f"Optimized {store.backend} at {store.location} in {seconds:.1f} s ({finished})")
    for name, state in after.items():
        typer.echo(f"  {name + ':':<8} {describe_index(state)}")
    calibration = result["search_beam"]
    if calibration:
        curve = ", ".join(f"{beam}: {recall:.3f}" for beam, recall in calibration["recall"].items())
        typer.echo(f"  search beam: recall@{calibration['limit']} by hnsw_ef over {calibration['probes']} probes: "
                   f"{curve}")


def _beam(store) -> dict | None:
    """The recorded beam calibration (store/beam.py), None where there is none."""
    calibration = store.beam_calibration()
    return calibration.to_record() if calibration else None


def describe_index(state) -> str:
    """One collection's index in words, for `optimize` and `status`."""
    if not state.graph:
        text = f"{state.points} points, no graph (searched under an id filter)"
    elif state.indexed is None:
        text = f"{state.points} points, no index (qdrant-client local mode)"
    else:
        text = f"{state.indexed}/{state.points} indexed"
        if state.indexed < state.points and not state.needs_build:
            text += " (segments under the indexing threshold are searched exactly)"
    return text + (": build needed, run `xmore optimize`" if state.needs_build else "")
