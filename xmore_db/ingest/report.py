"""What an ingest run reports: one `UnitOutcome` per unit it processed, and the run's `IngestReport`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..history.units import DONE, FAILED, UnitRecord


@dataclass(frozen=True)
class UnitOutcome:
    unit: str
    status: str  # done | failed
    rows: int
    ingested: int
    already_present: int
    skipped: int
    skip_reasons: dict[str, int]
    error: str | None
    seconds: float
    worker: str
    partial: bool = False  # an incomplete shard taken with --allow-partial
    note: str | None = None

    @property
    def pairs_per_second(self) -> float:
        return self.ingested / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class IngestReport:
    corpus: str
    kind: str
    source: str
    units: int
    units_done: int
    units_failed: int
    units_pending: int
    processed: list[UnitOutcome]
    rows: int
    ingested: int
    already_present: int
    skipped: int
    skip_reasons: dict[str, int]
    seconds: float
    optimize_seconds: float
    collections: dict[str, int]
    failures: dict[str, str] = field(default_factory=dict)
    caption_cache: str = "off"  # "filled with MODEL", "off", or why it was not filled
    changed: list[str] = field(default_factory=list)  # done units whose files changed: read again
    partial: list[str] = field(default_factory=list)  # incomplete shards taken with --allow-partial
    notes: dict[str, str] = field(default_factory=dict)  # unit -> what to know about how it was read

    @property
    def pairs_per_second(self) -> float:
        return self.ingested / self.seconds if self.seconds > 0 else 0.0


def summarize(
    *,
    corpus: str,
    kind: str,
    source: str,
    processed: list[UnitOutcome],
    after: list[UnitRecord],
    present_before: int,
    seconds: float,
    optimize_seconds: float,
    collections: dict[str, int],
    caption_cache: str,
    changed: list[str],
) -> IngestReport:
    """The run's report: the units it processed, and the corpus' units as the ledger has them after it.

    `present_before` counts the pairs of units done before this run (they are
    reported as already present).
    """
    reasons: Counter = Counter()
    for outcome in processed:
        reasons.update(outcome.skip_reasons)
    statuses = Counter(record.status for record in after)
    return IngestReport(
        corpus=corpus, kind=kind, source=source, units=len(after),
        units_done=statuses[DONE], units_failed=statuses[FAILED],
        units_pending=len(after) - statuses[DONE] - statuses[FAILED], processed=processed,
        rows=sum(o.rows for o in processed), ingested=sum(o.ingested for o in processed),
        already_present=present_before + sum(o.already_present for o in processed),
        skipped=sum(reasons.values()), skip_reasons=dict(sorted(reasons.items())),
        seconds=seconds, optimize_seconds=optimize_seconds, collections=collections,
        failures={o.unit: o.error for o in processed if o.error}, caption_cache=caption_cache,
        changed=list(changed), partial=[o.unit for o in processed if o.partial],
        notes={o.unit: o.note for o in processed if o.note},
    )
