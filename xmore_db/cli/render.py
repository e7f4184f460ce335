"""Output: data on stdout, talk and progress on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import typer


def _default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def echo_json(value) -> None:
    typer.echo(json.dumps(value, indent=2, default=_default, ensure_ascii=False))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


class _Bar:
    def __init__(self, description: str, unit: str):
        self.description, self.unit, self._bar = description, unit, None

    def start(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=self.description, unit=self.unit, file=sys.stderr,
                         dynamic_ncols=True, disable=total == 0)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextmanager
def progress_bar(description: str, *, unit: str):
    """A tqdm bar on stderr, created once the total is known (pairs/s and ETA included)."""
    bar = _Bar(description, unit)
    try:
        yield bar
    finally:
        bar.close()
