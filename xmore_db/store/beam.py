"""The coarse search's beam width (HNSW `ef`), chosen from a recall target instead of one constant.

A wider beam finds more of the exact top-K and costs more time. How wide is wide
enough depends on the collection: its size, how clustered it is, the graph's m and
ef_construct, the quantization. On the clustered benchmark data the engine's
default beam (about K) finds 0.99 of the exact top-128 at 100,000 pairs and 0.87
at 1,000,000, where 1,024 is needed for 0.95: a constant is either several times
too slow on a small store or short on a large one.

So optimize() measures it once the graph is built (VectorStore.calibrate_beam):
PROBES stored image vectors, taken in id order from a fixed id (pair ids are hashes,
so that is a random sample), serve as queries; the engine's exact search gives each
one's true top-K (its own point left out), and the graph search at each rung of a
ladder of beams (K, 1.5K, 2K, 3K, ... up to MAX_BEAM) gives the share of it found.
The curve is recorded with the collections; a search takes the smallest rung whose
recall reaches the target (XMORE_RECALL_TARGET, 0.95 by default), so a new target
needs no new measurement. The probes are stored points, which the graph finds more
easily than new queries: a rung reaches the target when the probes miss at most
PROBE_MISS_SHARE of the neighbours the target lets a query miss. A target the graph
never reaches gets the rung where the curve flattens (within PLATEAU of its best): a wider beam would cost time and find
nothing more, and `xmore status` says the target is out of reach.

XMORE_HNSW_EF, when set, overrides the choice. A store optimize() has not measured
(made before calibration existed, or on a server whose background build was still
running) searches at UNCALIBRATED_BEAM, the former default.

Pure functions and records only: the engine calls are the store's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..config import DEFAULT_RECALL_TARGET

# The key of the calibration in the `images` record (Edge: xmore-store.json; a server: the collection's metadata).
BEAM_KEY = "search_beam"
# Stored vectors used as probe queries: recall over 200 × 128 neighbours is known to about ±0.003.
PROBES = 200
# Multiples of K tried, narrowest first; the ladder stops at the first rung with ENOUGH_RECALL.
LADDER_FACTORS = (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32)
MAX_BEAM = 4096
ENOUGH_RECALL = 0.999
PLATEAU = 0.002
# A stored probe sits in the graph, linked to its neighbours; a new query does not. On the 1M-pair stores of
# benchmarks/scale.py, 1,000 new queries (benchmarks/recall.py) missed 1.08 times the share of their exact
# top-128 that the 200 probes missed at the same beam (1.075 to 1.086 over four beams, exact and compact;
# 1.01 to 1.03 for binary quantization): the probes may miss at most 0.9 of what the target allows.
PROBE_MISS_SHARE = 0.9
UNCALIBRATED_BEAM = 2048
# Where the probes' id-ordered walk starts: any id would do, a fixed one makes the sample repeatable.
PROBE_START = "80000000-0000-5000-8000-000000000000"


def probe_recall_needed(target: float) -> float:
    """The probes' recall that stands for `target` on new queries: they may miss PROBE_MISS_SHARE of 1 - target."""
    return 1 - PROBE_MISS_SHARE * (1 - target)


def ladder(limit: int) -> list[int]:
    """The beams tried for a search of `limit` hits: limit × LADDER_FACTORS up to max(MAX_BEAM, limit)."""
    top = max(MAX_BEAM, limit)
    return sorted({min(top, max(limit, round(limit * factor))) for factor in LADDER_FACTORS})


def mean_recall(found: Sequence[Sequence[str]], exact: Sequence[Sequence[str]]) -> float:
    """The mean, over queries, of the share of exact[i] that found[i] holds (1 where exact[i] is empty)."""
    if len(found) != len(exact):
        raise ValueError(f"{len(found)} result lists for {len(exact)} queries")
    shares = [len(set(got) & set(want)) / len(want) if want else 1.0 for got, want in zip(found, exact, strict=True)]
    return sum(shares) / len(shares) if shares else 1.0


def without_own(ids: Sequence[str], own: str, limit: int) -> list[str]:
    """The first `limit` of `ids` other than the probe's own point (a stored vector finds itself first)."""
    return [pid for pid in ids if pid != own][:limit]


@dataclass(frozen=True)
class BeamTarget:
    """What the settings ask of the coarse search: the share of the exact top-`limit` it should find."""

    recall: float = DEFAULT_RECALL_TARGET  # XMORE_RECALL_TARGET
    limit: int = 128  # XMORE_COARSE_K: the K the calibration measures recall at

    def __post_init__(self) -> None:
        if not 0 < self.recall <= 1:
            raise ValueError(f"the recall target must be above 0 and at most 1, got {self.recall!r}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"the calibration's limit must be a positive integer, got {self.limit!r}")


@dataclass(frozen=True)
class BeamChoice:
    """The beam a search uses and why."""

    hnsw_ef: int
    source: str  # "calibrated" | "setting" (XMORE_HNSW_EF) | "uncalibrated"
    recall: float | None = None  # the recall measured at this beam (calibrated only)
    reached: bool | None = None  # whether that recall reaches the target (calibrated only)


@dataclass(frozen=True)
class BeamCalibration:
    """A measured curve: mean coarse recall@`limit` at each beam tried, over `probes` stored vectors."""

    limit: int
    probes: int
    points: int  # in `images` when measured
    oversampling: float | None  # the quantized search's, as measured (None: no quantization)
    recall: dict[int, float]  # beam -> mean recall, the beams in ascending order
    seconds: float

    def choose(self, target: float) -> BeamChoice:
        """The smallest beam whose probes' recall stands for `target` (probe_recall_needed); else where the
        curve flattens."""
        needed = probe_recall_needed(target)
        for beam, recall in sorted(self.recall.items()):
            if recall >= needed - 1e-12:
                return BeamChoice(hnsw_ef=beam, source="calibrated", recall=recall, reached=True)
        best = max(self.recall.values())
        beam = min(b for b, recall in self.recall.items() if recall >= best - PLATEAU)
        return BeamChoice(hnsw_ef=beam, source="calibrated", recall=self.recall[beam], reached=False)

    def to_record(self) -> dict[str, object]:
        return {"limit": self.limit, "probes": self.probes, "points": self.points, "oversampling": self.oversampling,
                "recall": {str(beam): round(recall, 5) for beam, recall in sorted(self.recall.items())},
                "seconds": round(self.seconds, 3)}

    @classmethod
    def from_record(cls, record: object) -> BeamCalibration | None:
        """The recorded calibration; None where there is none or it is not one of ours (searches then use
        UNCALIBRATED_BEAM, and the next optimize() measures again)."""
        if not isinstance(record, dict):
            return None
        try:
            curve = {int(beam): float(recall) for beam, recall in dict(record["recall"]).items()}
            oversampling = record.get("oversampling")
            calibration = cls(limit=int(record["limit"]), probes=int(record["probes"]), points=int(record["points"]),
                              oversampling=None if oversampling is None else float(oversampling),
                              recall=dict(sorted(curve.items())), seconds=float(record.get("seconds", 0.0)))
        except (KeyError, TypeError, ValueError):
            return None
        return calibration if calibration.recall else None


def describe_beam(choice: BeamChoice, target: BeamTarget, calibration: BeamCalibration | None) -> str:
    """One line for `xmore status`: the beam a coarse search of K uses, and where it comes from."""
    if choice.source == "setting":
        return f"hnsw_ef {choice.hnsw_ef} (XMORE_HNSW_EF)"
    if calibration is None:
        return (f"hnsw_ef {choice.hnsw_ef}, not calibrated (`xmore optimize` measures the beam once the graph is "
                "built; qdrant-client's local mode scans exactly, whatever the beam)")
    measured = (f"{calibration.probes} probes at {calibration.points} points, recall@{calibration.limit} "
                f"{calibration.recall[min(calibration.recall)]:.3f} at hnsw_ef {min(calibration.recall)}")
    if choice.reached:
        return (f"hnsw_ef {choice.hnsw_ef} for coarse recall@{calibration.limit} >= {target.recall:g} "
                f"(measured {choice.recall:.3f} on stored probes, where {probe_recall_needed(target.recall):.4g} "
                f"is asked of them; {measured})")
    remedy = ("a larger --oversampling, then `xmore optimize` to measure again, or a new store with a larger "
              "--hnsw-m or --hnsw-ef-construct" if calibration.oversampling else
              "a new store with a larger --hnsw-m or --hnsw-ef-construct")
    return (f"hnsw_ef {choice.hnsw_ef}: coarse recall@{calibration.limit} {choice.recall:.3f} on stored probes, the "
            f"most this store reaches, is below the {probe_recall_needed(target.recall):.4g} that stands for the "
            f"target {target.recall:g} (try {remedy}; {measured})")
