"""Scoring every method over cached arrays: pure functions, no I/O.

Shapes: N queries, C classes, D the classifier's embedding size, M the
captions kept per query (the largest k of a sweep). A caption slot holds an
index into a table of caption embeddings, -1 where fewer than M came back;
valid slots come first, best-ranked first.

Methods (all over the same retrievals):

- `zeroshot`: argmax p_I;
- `captions`: argmax p_T (the caption ensemble, text only); p_I when the
  query has no caption;
- `xmore`, `xmore-l1`, `xmore-none`: the confidence ensemble with min-max, L1
  or no adjustment, replayed over a seeded query order;
- `xmore-indirect`: `xmore` with the captions of the coarse image neighbours
  in coarse order instead of the fine text ranking (the paper's Table 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import method

METHODS = ("zeroshot", "captions", "xmore", "xmore-l1", "xmore-none", "xmore-indirect")
METHOD_NAMES = {
    "zeroshot": "CLIP zero-shot (image only)",
    "captions": "Caption ensemble (text only)",
    "xmore": "X-MoRe (minmax)",
    "xmore-l1": "X-MoRe (l1, the released code)",
    "xmore-none": "X-MoRe (none: equal confidence)",
    "xmore-indirect": "X-MoRe, indirect retrieval (coarse order)",
}
# The methods every other one is compared with, image by image (statistics.paired_difference).
BASELINES = ("zeroshot", "captions")
ENSEMBLES = {"xmore": ("minmax", "fine"), "xmore-l1": ("l1", "fine"), "xmore-none": ("none", "fine"),
             "xmore-indirect": ("minmax", "indirect")}
DEFAULT_KS = (1, 2, 4, 8, 16, 32, 64)


def text_probabilities_by_k(
    slots: np.ndarray, caption_embeddings: np.ndarray, prompts: np.ndarray, logit_scale: float,
    ks: Sequence[int], *, chunk: int = 1024,
) -> np.ndarray:
    """p_T of every query for every k: (len(ks), N, C), NaN rows where a query has no caption.

    slots: (N, M) int indices into caption_embeddings (U, D), -1 for none;
    p_T at k is the mean of the per-caption class distributions of the first
    min(k, available) captions (method.text_probabilities on each prefix).
    """
    slots = np.asarray(slots)
    n, m = slots.shape
    ks = [int(k) for k in ks]
    if any(k < 1 or k > m for k in ks):
        raise ValueError(f"every k must be in 1..{m}, got {ks}")
    out = np.full((len(ks), n, prompts.shape[0]), np.nan)
    if len(caption_embeddings) == 0:
        return out
    for start in range(0, n, chunk):
        block = slots[start:start + chunk]
        valid = block >= 0
        per_caption = method.class_probabilities(
            np.asarray(caption_embeddings)[np.where(valid, block, 0)], prompts, logit_scale)  # (b, M, C)
        per_caption = np.where(valid[..., None], per_caption, 0.0)
        cumulative = np.cumsum(per_caption, axis=1)
        counts = np.cumsum(valid, axis=1)
        for j, k in enumerate(ks):
            with np.errstate(invalid="ignore", divide="ignore"):
                out[j, start:start + len(block)] = cumulative[:, k - 1] / counts[:, k - 1, None]
    return out


def caption_counts(slots: np.ndarray, k: int) -> np.ndarray:
    """(N,) the number of captions each query uses at k."""
    return np.minimum((np.asarray(slots) >= 0).sum(axis=1), k)


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


def text_predictions(p_image: np.ndarray, p_text: np.ndarray) -> np.ndarray:
    """argmax p_T, or argmax p_I for a query without captions."""
    missing = np.isnan(p_text).any(axis=-1)
    return np.where(missing, np.argmax(p_image, axis=-1), np.argmax(np.nan_to_num(p_text), axis=-1))


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


def score_dataset(
    p_image: np.ndarray, p_text: dict[str, np.ndarray], truth: np.ndarray, *, methods: Sequence[str],
    ks: Sequence[int], seeds: Sequence[int], case_k: int,
) -> dict:
    """Every method's accuracy at every k and seed, with the Table 6 and Table 8 statistics.

    p_text: {"fine": (len(ks), N, C), "indirect": (len(ks), N, C)} from
    text_probabilities_by_k. Returns plain Python values:
    {"accuracy": {method: {k: {"mean", "per_seed"}}}, "entropy": {"image", "text": {k}},
    "confidence_by_case": {case: ...}} (cases at case_k, averaged over seeds), and
    "outcomes": {method: [N floats]}, each image's correctness at case_k averaged
    over the seeds (what the paired bootstrap resamples).
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: choose from {', '.join(METHODS)}")
    ks = [int(k) for k in ks]
    truth = np.asarray(truth)
    acc: dict[str, dict[int, dict]] = {m: {} for m in methods}
    outcomes: dict[str, list[float]] = {}
    cases_per_seed = []
    for j, k in enumerate(ks):
        for name in methods:
            if name == "zeroshot":
                correct = [np.argmax(p_image, axis=-1) == truth] * len(seeds)
            elif name == "captions":
                correct = [text_predictions(p_image, p_text["fine"][j]) == truth] * len(seeds)
            else:
                mode, source = ENSEMBLES[name]
                correct = []
                for seed in seeds:
                    result = replay(p_image, p_text[source][j], query_order(len(truth), seed), mode)
                    correct.append(np.argmax(result["p"], axis=-1) == truth)
                    if name == "xmore" and k == case_k:
                        cases_per_seed.append(confidence_by_case(p_image, p_text["fine"][j], result["w_image"],
                                                                 result["w_text"], truth))
            per_seed = [float(c.mean()) if len(truth) else float("nan") for c in correct]
            acc[name][k] = {"mean": float(np.mean(per_seed)), "per_seed": per_seed}
            if k == case_k:
                outcomes[name] = np.mean(correct, axis=0).astype(float).tolist()
    if not cases_per_seed and len(ks):  # xmore not among the methods: the cases still describe it
        j = ks.index(case_k)
        for seed in seeds:
            result = replay(p_image, p_text["fine"][j], query_order(len(truth), seed), "minmax")
            cases_per_seed.append(confidence_by_case(p_image, p_text["fine"][j], result["w_image"],
                                                     result["w_text"], truth))
    cases = {case: {key: float(np.nanmean([c[case][key] for c in cases_per_seed]))
                    if any(not np.isnan(c[case][key]) for c in cases_per_seed) else float("nan")
                    for key in ("c_image", "c_text", "ratio")} | {"n": cases_per_seed[0][case]["n"]}
             for case in CASES}
    text_entropy = {}
    for j, k in enumerate(ks):
        h = entropy(p_text["fine"][j])
        text_entropy[k] = float(np.nanmean(h)) if (~np.isnan(h)).any() else float("nan")
    return {
        "accuracy": acc,
        "entropy": {"image": float(entropy(p_image).mean()), "text": text_entropy},
        "confidence_by_case": cases,
        "outcomes": outcomes,
    }
