"""The evaluation's pure scoring, against numbers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xmore_db import method
from xmore_db.evaluation import scoring
from xmore_db.methods import MethodInputs
from xmore_db.methods.xmore import text_probabilities

LN3 = math.log(3.0)  # softmax([ln 3, 0]) = [0.75, 0.25]
PROMPTS = np.eye(2)


def _inputs(images, slots, captions, prompts=PROMPTS, scale=LN3):
    table = np.asarray(captions, dtype=float)
    return MethodInputs(image_embeddings=np.asarray(images, dtype=float), prompts=prompts, logit_scale=scale,
                        captions=scoring.gather(slots, table.reshape(-1, 2) if table.size else np.zeros((0, 2))))


def test_text_probabilities_average_prefixes_and_mark_missing():
    captions = np.array([[1.0, 0.0], [0.0, 1.0]])  # -> [.75, .25] and [.25, .75]
    slots = np.array([[0, 1, -1], [1, 1, 1], [-1, -1, -1]])
    inputs = _inputs(np.zeros((3, 2)), slots, captions)
    p = np.stack([text_probabilities(inputs, k) for k in (1, 2, 3)])
    assert p.shape == (3, 3, 2)
    assert np.allclose(p[0, 0], [0.75, 0.25]) and np.allclose(p[1, 0], [0.5, 0.5])
    assert np.allclose(p[2, 0], [0.5, 0.5])  # only two captions: k=3 averages those two
    assert np.allclose(p[:, 1], [0.25, 0.75])
    assert np.isnan(p[:, 2]).all()  # no caption: no text modality


def test_text_probabilities_with_no_caption_at_all():
    inputs = _inputs(np.zeros((2, 2)), np.full((2, 4), -1), [])
    assert np.isnan(text_probabilities(inputs, 4)).all()


def _conf(p):
    p = np.asarray(p, dtype=float)
    return 1 + (p * np.log(p)).sum() / math.log(len(p))


P_IMAGE = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
P_TEXT = np.array([[0.2, 0.8], [np.nan, np.nan], [0.7, 0.3]])


def test_replay_minmax_by_hand():
    # Arrival order q2, q0, q1.
    out = scoring.replay(P_IMAGE, P_TEXT, np.array([2, 0, 1]), "minmax")
    # q2 first: both ĉ = 1 by convention -> the plain mean.
    assert out["w_image"][2] == 1 and out["w_text"][2] == 1
    assert np.allclose(out["p"][2], [0.6, 0.4])
    # q0: its image confidence is the new maximum (q2's is 0), its text confidence too.
    assert _conf([0.2, 0.8]) > _conf([0.7, 0.3])
    assert out["w_image"][0] == 1 and out["w_text"][0] == 1
    assert np.allclose(out["p"][0], [0.55, 0.45])
    # q1: no captions -> image alone, ĉ_I = (c - 0) / (c(q0) - 0), ĉ_T NaN.
    assert np.isclose(out["w_image"][1], _conf([0.6, 0.4]) / _conf([0.9, 0.1]))
    assert np.isnan(out["w_text"][1]) and np.allclose(out["p"][1], P_IMAGE[1])


def test_replay_l1_and_none_by_hand():
    out = scoring.replay(P_IMAGE, P_TEXT, np.array([0, 1, 2]), "l1")
    ci = [_conf(p) for p in P_IMAGE]
    assert np.allclose(out["w_image"], [1.0, ci[1] / (ci[0] + ci[1]), 0.0])
    ct0, ct2 = _conf([0.2, 0.8]), _conf([0.7, 0.3])
    assert np.isclose(out["w_text"][2], ct2 / (ct0 + ct2))
    # q2: ĉ_I = 0 -> p_T alone.
    assert np.allclose(out["p"][2], P_TEXT[2])
    none = scoring.replay(P_IMAGE, P_TEXT, np.array([0, 1, 2]), "none")
    assert np.allclose(none["p"][0], (P_IMAGE[0] + P_TEXT[0]) / 2)


def _stats(seen: list[float]):
    from xmore_db.history.records import ModalityStats

    if not seen:
        return ModalityStats(count=0, min=None, max=None, sum=0.0)
    return ModalityStats(count=len(seen), min=min(seen), max=max(seen), sum=sum(seen))


def test_replay_matches_the_per_query_path_of_classify():
    """The vectorised replay equals classify's per-query weighing, one query at a time."""
    from types import SimpleNamespace

    from xmore_db.classify import weigh

    rng = np.random.default_rng(3)
    p_image = rng.dirichlet(np.ones(4), 40)
    p_text = rng.dirichlet(np.ones(4) * 0.5, 40)
    p_text[[3, 17]] = np.nan
    order = scoring.query_order(40, seed=5)
    for mode in method.NORMALIZATIONS:
        out = scoring.replay(p_image, p_text, order, mode)
        seen = {"i": [], "t": []}
        for q in order:
            ci = float(method.confidence(p_image[q]))
            seen["i"].append(ci)
            has_text = not np.isnan(p_text[q]).any()
            ct = float(method.confidence(p_text[q])) if has_text else None
            if has_text:
                seen["t"].append(ct)
            stats = SimpleNamespace(image=_stats(seen["i"]), text=_stats(seen["t"]))
            expected, _, _ = weigh(stats, normalize=mode, p_image=p_image[q], p_text=p_text[q] if has_text else None,
                                   c_image=ci, c_text=ct)
            assert np.allclose(out["p"][q], expected), (mode, q)


def test_replay_rejects_a_non_permutation_and_keeps_inputs():
    before = P_TEXT.copy()
    with pytest.raises(ValueError):
        scoring.replay(P_IMAGE, P_TEXT, np.array([0, 0, 1]), "minmax")
    scoring.replay(P_IMAGE, P_TEXT, np.array([1, 2, 0]), "minmax")
    assert np.array_equal(P_TEXT, before, equal_nan=True)


def test_query_order_is_seeded():
    assert np.array_equal(scoring.query_order(10, 1), scoring.query_order(10, 1))
    assert not np.array_equal(scoring.query_order(10, 1), scoring.query_order(10, 2))
    assert sorted(scoring.query_order(10, 1)) == list(range(10))


def test_confidence_by_case():
    truth = np.array([0, 0, 1])
    # q0: image right, text wrong; q1: no captions (no case); q2: image wrong (argmax 0 on a tie), text wrong.
    cases = scoring.confidence_by_case(P_IMAGE, P_TEXT, np.array([0.8, 0.5, 0.2]), np.array([0.4, np.nan, 0.1]),
                                       truth)
    assert cases["image right, text wrong"] == {"n": 1, "c_image": 0.8, "c_text": 0.4, "ratio": 2.0}
    assert cases["both wrong"]["n"] == 1 and np.isclose(cases["both wrong"]["ratio"], 2.0)
    assert cases["both right"]["n"] == 0 and math.isnan(cases["both right"]["c_image"])


def test_score_dataset_counts_every_query():
    # p_I argmax: q0 0, q1 0, q2 0 (a tie goes to 0); captions: q0 says 1, q1 has none, q2 says 0.
    inputs = _inputs([[1.0, 0.0], [0.5, 0.0], [0.0, 0.0]], np.array([[0, -1], [-1, -1], [1, -1]]),
                     [[0.0, 1.0], [1.0, 0.0]])
    truth = np.array([1, 0, 0])
    methods = ["zeroshot", "captions", "xmore", "xmore-l1", "xmore-none"]
    scores = scoring.score_dataset(inputs, truth, methods=methods, ks=[1, 2], seeds=[0, 1], case_k=2)
    acc = scores["accuracy"]
    assert acc["zeroshot"][1]["mean"] == pytest.approx(2 / 3)
    assert acc["captions"][2]["mean"] == 1.0  # [1, (image) 0, 0]: a query without captions falls back to p_I
    assert set(acc) == set(methods) and len(acc["xmore"][2]["per_seed"]) == 2
    assert len(scores["outcomes"]["xmore"]) == 3 and scores["outcomes"]["captions"] == [1.0, 1.0, 1.0]
    p_image = method.class_probabilities(inputs.image_embeddings, PROMPTS, LN3)
    assert scores["entropy"]["image"] == pytest.approx(np.mean([scoring.entropy(p) for p in p_image]))
    assert sum(c["n"] for c in scores["confidence_by_case"].values()) == 2
    with pytest.raises(ValueError, match="unknown methods"):
        scoring.score_dataset(inputs, truth, methods=["best"], ks=[1], seeds=[0], case_k=1)
