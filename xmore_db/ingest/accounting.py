"""What a unit's rows count as, so that a corpus' `ingested` always equals its points.

A key that another unit holds already (stored, or handed on by a unit still in
flight in this run) is skipped as `duplicate_key` by a unit's first attempt.
A later attempt (after a kill or a failure) finds its own rows stored: they
are already present, not encoded again. A done unit whose files changed (size
or modification time) is read again and its rows written again under the same
ids (counted as already present, not as new). A unit whose rows were all
skipped for one reason fails, naming the likely cause.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..history.units import DONE
from ..sources.base import DUPLICATE_KEY, RowBatch, fingerprint

if TYPE_CHECKING:
    from ..history.units import UnitRecord
    from ..sources import Source

CHANGED_NOTE = "its files changed since it was done: read again under the same ids"


def same_files(recorded: tuple[int, float], now: tuple[int, float]) -> bool:
    return recorded[0] == now[0] and abs(recorded[1] - now[1]) < 1e-6


def changed_units(source: Source, units: list[str],
                  known: dict[str, UnitRecord]) -> tuple[list[str], dict[str, tuple[int, float]]]:
    """Done units whose files changed since; and the files of done units that have none on record."""
    changed, unrecorded = [], {}
    for unit in units:
        record = known.get(unit)
        if record is None or record.status != DONE:
            continue
        now = fingerprint(source.files(unit))
        if record.source_size is None:
            unrecorded[unit] = now
        elif not same_files((record.source_size, record.source_mtime or 0.0), now):
            changed.append(unit)
    return changed, unrecorded


@dataclass(frozen=True)
class Attempt:
    """How one attempt at a unit counts the rows it finds stored."""

    unit: str
    first: bool  # no earlier attempt can have written its rows: stored keys are other units'
    rewrite: bool  # its files changed since it was done: stored rows are written again

    @classmethod
    def of(cls, unit: str, attempts: int, recorded: tuple[int, float] | None, files: tuple[int, float]) -> Attempt:
        rewrite = recorded is not None and not same_files(recorded, files)
        return cls(unit, first=attempts == 1 and not rewrite, rewrite=rewrite)


class InFlight:
    """The pair ids each unit of this run has handed on, until the unit is durable (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._units: dict[str, set[str]] = {}

    def start(self, unit: str) -> None:
        with self._lock:
            self._units[unit] = set()

    def finish(self, unit: str) -> None:
        with self._lock:
            self._units.pop(unit, None)

    def take(self, unit: str, ids: list[str]) -> list[bool]:
        """Per id, whether another unit in flight holds it; the others become this unit's."""
        with self._lock:
            others = [held for name, held in self._units.items() if name != unit]
            elsewhere = [any(i in held for held in others) for i in ids]
            self._units[unit].update(i for i, e in zip(ids, elsewhere, strict=True) if not e)
        return elsewhere


def counted(batch: RowBatch, attempt: Attempt, ids: list[str], elsewhere: list[bool], stored: set[str]) -> RowBatch:
    """The batch less its duplicates (counted) and the rows an earlier attempt stored (already present)."""
    if not stored and not any(elsewhere):
        return batch
    keep, reasons, present, rewritten = [], [], 0, 0
    for i, other in zip(ids, elsewhere, strict=True):
        if other or (i in stored and attempt.first):
            keep.append(False)
            reasons.append(DUPLICATE_KEY)
        elif i in stored and not attempt.rewrite:
            keep.append(False)
            reasons.append(None)
            present += 1
        else:
            keep.append(True)
            reasons.append(None)
            rewritten += i in stored
    batch = batch.keep(keep, reasons)
    batch.already_present += present
    batch.rewritten += rewritten
    return batch


def all_skipped(source: Source, unit: str, rows: int, held: int, reasons: Counter) -> str | None:
    """The unit's error when every row was skipped for one reason (other than being another unit's key)."""
    if not rows or held or len(reasons) != 1:
        return None
    [(reason, count)] = reasons.items()
    if reason == DUPLICATE_KEY or count != rows:
        return None
    cause = source.likely_cause(reason)
    return f"unit {unit}: all {rows} rows skipped as {reason}" + (f": likely, {cause}" if cause else "")
