"""The paired bootstrap and the retrieval diagnosis, on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from xmore_db.evaluation import diagnosis
from xmore_db.evaluation.statistics import paired_difference
from xmore_db.store import pair_id


def test_bootstrap_known_difference_and_interval_width():
    # 100 images: a is right on 10 images where b is wrong, equal elsewhere: difference 0.10 exactly.
    b = np.r_[np.ones(50), np.zeros(50)]
    a = b.copy()
    a[50:60] = 1
    interval = paired_difference([a], [b], resamples=2000, seed=0)
    assert interval.difference == pytest.approx(0.10)
    # The per-image differences are Bernoulli(0.1): standard error sqrt(0.1 * 0.9 / 100) = 0.03,
    # so a 95 % interval is about 2 × 1.96 × 0.03 = 0.118 wide.
    assert 0.08 < interval.high - interval.low < 0.16
    assert interval.low < 0.10 < interval.high and interval.excludes_zero
    assert (interval.level, interval.resamples) == (0.95, 2000)
    # Inputs untouched.
    assert a.sum() == 60 and b.sum() == 50


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(1)
    a, b = rng.random(40) < 0.6, rng.random(40) < 0.5
    first = paired_difference([a], [b], seed=7)
    assert paired_difference([a], [b], seed=7) == first
    assert paired_difference([a], [b], seed=8) != first


def test_bootstrap_of_identical_methods_is_zero_and_includes_zero():
    a = np.array([1, 0, 1, 1, 0], dtype=float)
    interval = paired_difference([a], [a.copy()])
    assert (interval.difference, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not interval.excludes_zero


def test_bootstrap_average_is_the_mean_of_the_datasets():
    # Dataset 1: +0.5 on every image (no variance); dataset 2: 0 on every image: Avg +0.25, exactly.
    interval = paired_difference([np.ones(4), np.zeros(6)], [np.full(4, 0.5), np.zeros(6)])
    assert interval.difference == pytest.approx(0.25)
    assert interval.low == pytest.approx(0.25) and interval.high == pytest.approx(0.25)


def test_bootstrap_rejects_unpaired_outcomes():
    with pytest.raises(ValueError):
        paired_difference([np.ones(3)], [np.ones(4)])
    with pytest.raises(ValueError):
        paired_difference([], [])


LABELS = ["circle", "square"]
PROMPTS = np.eye(2)


def test_diagnosis_by_hand():
    ids = [pair_id("toy", k) for k in ("a", "b", "c", "d")]
    attributes = {"colour": {ids[0]: "red", ids[1]: "red"},
                  "shape": {ids[0]: "circle", ids[1]: "square", ids[2]: "star"}}  # d unknown
    assert diagnosis.matching_column(["Circle", "square"], attributes) == "shape"
    assert diagnosis.matching_column(["blue"], attributes) is None
    # Two queries, truth circle and square. Coarse pairs: rows of `ids`.
    coarse = np.array([[0, 1, 2, 3], [1, 1, 3, -1]])
    fine = np.array([[0, 2], [1, -1]])
    # Caption embeddings: row 0 reads as circle, row 1 as square; query 0's captions are rows 0, 1.
    slots = np.array([[0, 1], [1, -1]])
    captions = np.array([[1.0, 0.0], [0.0, 1.0]])
    out = diagnosis.diagnose(slots=slots, fine_pairs=fine, coarse_pairs=coarse, pair_ids=ids,
                             caption_embeddings=captions, prompts=PROMPTS, logit_scale=10.0,
                             truth=np.array([0, 1]), labels=LABELS, k=2, attributes=attributes)
    assert out["attribute"] == "shape" and out["captions"] == 3
    # Coarse, known pairs only: query 0 has a(circle) b(square) c(star): 1 of 3; query 1: b, b: 2 of 2.
    assert out["coarse_same_class"] == pytest.approx(3 / 5)
    # Fine: query 0 a(circle) c(star): 1 of 2; query 1 b(square): 1 of 1.
    assert out["fine_same_class"] == pytest.approx(2 / 3)
    # The classifier reads captions 0 -> circle, 1 -> square: query 0 (circle) right on 1 of 2, query 1 right.
    assert out["caption_accuracy"] == pytest.approx(2 / 3)
    # Captions of a known class (a: circle read circle; b: square read square); c is a star: not a class.
    assert out["captions_read_right"] == pytest.approx(1.0)


def test_diagnosis_without_attributes_reports_only_what_it_knows():
    out = diagnosis.diagnose(slots=np.array([[0]]), fine_pairs=np.array([[0]]), coarse_pairs=np.array([[0]]),
                             pair_ids=["x"], caption_embeddings=np.array([[1.0, 0.0]]), prompts=PROMPTS,
                             logit_scale=10.0, truth=np.array([1]), labels=LABELS, k=1, attributes=None)
    assert out["attribute"] is None and "coarse_same_class" not in out
    assert out["caption_accuracy"] == 0.0
