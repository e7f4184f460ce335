"""Scoring every method over cached arrays: pure functions, no I/O.

Shapes: N queries, C classes, D the classifier's embedding size, M the
captions kept per query (the largest k of a sweep). A caption slot holds an
index into a table of caption embeddings, -1 where fewer than M came back;
valid slots come first, best-ranked first.

The methods are those of `xmore_db.methods` (zero-shot, the caption ensemble,
X-MoRe and its variants, CODER, RECO), all over the same retrievals; a method
with two modalities is replayed as a stream for each seeded query order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import method
from ..methods import MethodInputs, registry

METHODS = tuple(registry())
METHOD_NAMES = {name: m.title for name, m in registry().items()}
# The methods every other one is compared with, image by image (statistics.paired_difference).
BASELINES = ("zeroshot", "captions")
DEFAULT_KS = (1, 2, 4, 8, 16, 32, 64)


def confidences(probabilities: np.ndarray) -> np.ndarray:
    """method.confidence along the last axis; NaN rows (no modality) stay NaN."""
    p = np.asarray(probabilities, dtype=np.float64)
    missing = np.isnan(p).any(axis=-1)
    c = method.confidence(np.where(missing[..., None], 1.0 / p.shape[-1], p))
    return np.where(missing, np.nan, c)


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """H(p) in nats along the last axis; NaN rows stay NaN."""
    p = np.asarray(probabilities, dtype=np.float64)
    safe = np.where(p > 0, p, 1.0)
    return -(p * np.log(safe)).sum(axis=-1)


def query_order(n: int, seed: int) -> np.ndarray:
    """The stream order of n queries for `seed`: a permutation of range(n)."""
    return np.random.default_rng(seed).permutation(n)


def replay(p_image: np.ndarray, p_text: np.ndarray, order: np.ndarray, mode: str) -> dict[str, np.ndarray]:
    """The X-MoRe ensemble of every query, as if the queries arrived in `order`.

    p_image (N, C); p_text (N, C) with NaN rows for queries without captions;
    order a permutation of range(N). Returns arrays indexed by query (not by
    arrival): "p" (N, C) final probabilities, "w_image" and "w_text" (N,) the
    adjusted confidences ĉ_I, ĉ_T (w_text NaN without captions). The same
    arithmetic as the SQL history, one stream at a time (method.running_adjust).
    """
    p_image = np.asarray(p_image, dtype=np.float64)
    p_text = np.asarray(p_text, dtype=np.float64)
    order = np.asarray(order)
    if sorted(order.tolist()) != list(range(len(p_image))):
        raise ValueError("order must be a permutation of the queries")
    w_image, w_text = np.empty(len(order)), np.empty(len(order))
    w_image[order] = method.running_adjust(confidences(p_image)[order], mode)
    w_text[order] = method.running_adjust(confidences(p_text)[order], mode)
    has_text = ~np.isnan(w_text)
    wi, wt = w_image[:, None], np.where(has_text, w_text, 0.0)[:, None]
    total = wi + wt
    mixed = np.where(total > 0, (wi * p_image + wt * np.nan_to_num(p_text)) / np.where(total > 0, total, 1.0),
                     0.5 * (p_image + np.nan_to_num(p_text)))
    p = np.where(has_text[:, None], mixed, p_image)
    return {"p": p, "w_image": w_image, "w_text": w_text}


def accuracy(predictions: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(truth))) if len(truth) else float("nan")


CASES = ("both right", "image right, text wrong", "text right, image wrong", "both wrong")


def confidence_by_case(p_image: np.ndarray, p_text: np.ndarray, w_image: np.ndarray, w_text: np.ndarray,
                       truth: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean ĉ_I and ĉ_T over the queries of each case (the paper's Table 8).

    Cases by whether argmax p_I and argmax p_T are right; queries without
    captions are in no case. Each case: {"n", "c_image", "c_text", "ratio"}
    where ratio is the mean of ĉ_I / ĉ_T over queries with ĉ_T > 0 (> 1: the
    ensemble leans on the image).
    """
    has_text = ~np.isnan(p_text).any(axis=-1)
    image_right = np.argmax(p_image, axis=-1) == truth
    text_right = np.argmax(np.nan_to_num(p_text), axis=-1) == truth
    masks = {CASES[0]: image_right & text_right, CASES[1]: image_right & ~text_right,
             CASES[2]: ~image_right & text_right, CASES[3]: ~image_right & ~text_right}
    out = {}
    for case, mask in masks.items():
        mask = mask & has_text
        positive = mask & (w_text > 0)
        out[case] = {
            "n": int(mask.sum()),
            "c_image": float(w_image[mask].mean()) if mask.any() else float("nan"),
            "c_text": float(w_text[mask].mean()) if mask.any() else float("nan"),
            "ratio": float((w_image[positive] / w_text[positive]).mean()) if positive.any() else float("nan"),
        }
    return out


def gather(slots: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(N, M, D) rows of `table` (U, D) at `slots` (N, M), NaN rows where a slot is -1."""
    slots = np.asarray(slots)
    table = np.asarray(table, dtype=np.float32)
    out = np.full((*slots.shape, table.shape[1] if table.ndim == 2 else 0), np.nan, dtype=np.float32)
    valid = slots >= 0
    if valid.any():
        out[valid] = table[slots[valid]]
    return out


def score_dataset(
    inputs: MethodInputs, truth: np.ndarray, *, methods: Sequence[str], ks: Sequence[int], seeds: Sequence[int],
    case_k: int,
) -> dict:
    """Every method's accuracy at every k and seed, with the Table 6 and Table 8 statistics.

    Returns plain Python values: {"accuracy": {method: {k: {"mean", "per_seed"}}},
    "entropy": {"image", "text": {k}}, "confidence_by_case": {case: ...}} (cases
    of X-MoRe minmax at case_k, averaged over seeds), and "outcomes": {method:
    [N floats]}, each image's correctness at case_k averaged over the seeds (what
    the paired bootstrap resamples). A method that does not use k gets the same
    numbers at every k.
    """
    known = registry()
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: choose from {', '.join(known)}")
    ks = [int(k) for k in ks]
    truth = np.asarray(truth)
    acc: dict[str, dict[int, dict]] = {m: {} for m in methods}
    outcomes: dict[str, list[float]] = {}
    for name in methods:
        m = known[name]
        for k in ks:
            if not m.uses_k and k != ks[0]:
                acc[name][k] = acc[name][ks[0]]
                continue
            mod = m.modalities(inputs, k)
            if mod.p_text is None or m.normalize is None:
                correct = [np.argmax(mod.p_image, axis=-1) == truth] * len(seeds)
            else:
                correct = [np.argmax(replay(mod.p_image, mod.p_text, query_order(len(truth), seed),
                                            m.normalize)["p"], axis=-1) == truth for seed in seeds]
            per_seed = [float(c.mean()) if len(truth) else float("nan") for c in correct]
            acc[name][k] = {"mean": float(np.mean(per_seed)), "per_seed": per_seed}
            if k == case_k or (not m.uses_k and name not in outcomes):
                outcomes[name] = np.mean(correct, axis=0).astype(float).tolist()
    xmore = known["xmore"]
    cases_per_seed = []
    at_case = xmore.modalities(inputs, case_k)
    for seed in seeds:
        result = replay(at_case.p_image, at_case.p_text, query_order(len(truth), seed), "minmax")
        cases_per_seed.append(confidence_by_case(at_case.p_image, at_case.p_text, result["w_image"],
                                                 result["w_text"], truth))
    cases = {case: {key: float(np.nanmean([c[case][key] for c in cases_per_seed]))
                    if any(not np.isnan(c[case][key]) for c in cases_per_seed) else float("nan")
                    for key in ("c_image", "c_text", "ratio")} | {"n": cases_per_seed[0][case]["n"]}
             for case in CASES}
    text_entropy = {}
    for k in ks:
        h = entropy(xmore.modalities(inputs, k).p_text)
        text_entropy[k] = float(np.nanmean(h)) if (~np.isnan(h)).any() else float("nan")
    return {
        "accuracy": acc,
        "entropy": {"image": float(entropy(at_case.p_image).mean()), "text": text_entropy},
        "confidence_by_case": cases,
        "outcomes": outcomes,
    }
