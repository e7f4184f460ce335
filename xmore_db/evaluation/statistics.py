"""Paired bootstrap intervals for accuracy differences: pure numpy, seeded.

A method's outcome on one test image is its correctness, averaged over the
query orders (seeds) when the method depends on the order: a number in [0, 1]
per image. Two methods on the same images are compared image by image (a
paired difference), and the interval comes from resampling the test images
with replacement (percentile bootstrap). It covers the variance of drawing the
test set, not the variance of the query order (the per-seed accuracies show
that) nor of training the models.

Several datasets are resampled each within itself (stratified), and the
statistic is the mean over datasets of the per-dataset mean difference, which
is exactly how the table's Avg column is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A difference (in accuracy, as a fraction) and its percentile bootstrap interval."""

    difference: float
    low: float
    high: float
    level: float = LEVEL
    resamples: int = DEFAULT_RESAMPLES

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def paired_difference(
    outcomes_a: Sequence[np.ndarray], outcomes_b: Sequence[np.ndarray], *,
    resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, level: float = LEVEL,
) -> Interval:
    """mean_d(mean_i a[d][i] − mean_i b[d][i]) over datasets d, with its bootstrap interval.

    outcomes_a, outcomes_b: one (N_d,) array per dataset, per-image outcomes of
    methods a and b on the same images in the same order. Every resample draws
    N_d images with replacement from each dataset (the same draw for a and b:
    paired). The inputs are not modified.
    """
    if len(outcomes_a) != len(outcomes_b) or not outcomes_a:
        raise ValueError("need the same, non-zero number of datasets for both methods")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"resamples must be >= 1 and level in (0, 1), got {resamples}, {level}")
    differences = []
    for a, b in zip(outcomes_a, outcomes_b, strict=True):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape or a.ndim != 1 or not len(a):
            raise ValueError(f"paired outcomes must be two non-empty vectors of one length, got {a.shape}, {b.shape}")
        differences.append(a - b)
    rng = np.random.default_rng(seed)
    observed = float(np.mean([d.mean() for d in differences]))
    totals = np.zeros(resamples)
    for d in differences:
        # One dataset at a time keeps memory at resamples × N_d.
        totals += d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    replicates = totals / len(differences)
    tail = (1 - level) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return Interval(difference=observed, low=float(low), high=float(high), level=level, resamples=resamples)
