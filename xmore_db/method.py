"""X-MoRe's arithmetic, as pure functions over numpy arrays.

Nothing here reads a file, a model or a database, and no function modifies
its inputs. Shapes: B queries, C classes, D embedding size, k captions.
Embeddings are expected L2-normalised, so a dot product is a cosine.
The formulas, and where we choose what the paper leaves open, are in docs/method.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import NORMALIZATIONS


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along `axis`."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def class_probabilities(
    embeddings: np.ndarray, class_embeddings: np.ndarray, logit_scale: float
) -> np.ndarray:
    """softmax_c(s · cos(e, g(prompt_c))) for each row e.

    embeddings: (..., D); class_embeddings: (C, D). Returns (..., C).
    This is p_I for image embeddings, and the per-caption distribution for
    caption embeddings.
    """
    logits = logit_scale * (np.asarray(embeddings, dtype=np.float64) @ np.asarray(
        class_embeddings, dtype=np.float64
    ).T)
    return softmax(logits, axis=-1)


def text_probabilities(
    caption_embeddings: np.ndarray, class_embeddings: np.ndarray, logit_scale: float
) -> np.ndarray | None:
    """p_T: the mean of the per-caption class distributions.

    caption_embeddings: (k, D). Returns (C,), or None when k == 0: a query with
    no retrieved caption has no text modality, and is classified by the image alone.
    """
    caption_embeddings = np.asarray(caption_embeddings)
    if caption_embeddings.shape[0] == 0:
        return None
    return class_probabilities(caption_embeddings, class_embeddings, logit_scale).mean(axis=0)


def confidence(probabilities: np.ndarray) -> np.ndarray:
    """c = 1 − H(p) / log C along the last axis, in [0, 1].

    1 for a one-hot distribution, 0 for the uniform one. Needs C >= 2.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    n_classes = p.shape[-1]
    if n_classes < 2:
        raise ValueError("confidence needs at least 2 classes")
    # 0 · log 0 = 0: mask zeros rather than adding an epsilon that biases H.
    safe = np.where(p > 0, p, 1.0)
    entropy = -(p * np.log(safe)).sum(axis=-1)
    return np.clip(1.0 - entropy / np.log(n_classes), 0.0, 1.0)


def adjust_minmax(c: float, seen_min: float, seen_max: float) -> float:
    """(c − min) / (max − min) over the stream so far, current query included.

    While max == min (the first query of a stream, or identical confidences)
    the paper leaves ĉ open; we return 1, treating the query as the most
    confident seen so far.
    """
    span = seen_max - seen_min
    if span <= 0:
        return 1.0
    return float(np.clip((c - seen_min) / span, 0.0, 1.0))


def adjust_l1(c: float, seen_sum: float) -> float:
    """c_t / Σ_{s≤t} c_s: the authors' released code (an L1 normalisation of the history).

    With a zero sum every confidence so far was 0 (uniform predictions), so the
    modality gets weight 0.
    """
    if seen_sum <= 0:
        return 0.0
    return float(c / seen_sum)


def adjust(
    mode: str, c: float, *, seen_min: float, seen_max: float, seen_sum: float
) -> float:
    """The adjusted confidence ĉ of one modality under normalisation `mode`.

    seen_min/seen_max/seen_sum are over the stream including the current query.
    `none` gives every query weight 1 (the paper's Table 5 ablation).
    """
    if mode == "minmax":
        return adjust_minmax(c, seen_min, seen_max)
    if mode == "l1":
        return adjust_l1(c, seen_sum)
    if mode == "none":
        return 1.0
    raise ValueError(f"unknown normalisation {mode!r}: choose one of {', '.join(NORMALIZATIONS)}")


def ensemble(
    p_image: np.ndarray, p_text: np.ndarray | None, w_image: float, w_text: float
) -> np.ndarray:
    """p = (ĉ_I·p_I + ĉ_T·p_T) / (ĉ_I + ĉ_T).

    Equal weights when both are 0; p_I alone when there is no text modality.
    """
    p_image = np.asarray(p_image, dtype=np.float64)
    if p_text is None:
        return p_image.copy()
    p_text = np.asarray(p_text, dtype=np.float64)
    total = w_image + w_text
    if total <= 0:
        return 0.5 * (p_image + p_text)
    return (w_image * p_image + w_text * p_text) / total


def running_adjust(confidences: Sequence[float | None] | np.ndarray, mode: str) -> np.ndarray:
    """ĉ_t for a whole stream at once, queries in arrival order.

    NaN (or None) marks a query without this modality: it gets NaN and does not
    enter the running statistics. This is what the SQL history computes one
    query at a time; evaluation replays streams with it.
    """
    c = np.array([np.nan if v is None else v for v in confidences], dtype=np.float64)
    out = np.full_like(c, np.nan)
    seen_min, seen_max, seen_sum = np.inf, -np.inf, 0.0
    for t, value in enumerate(c):
        if np.isnan(value):
            continue
        seen_min, seen_max, seen_sum = min(seen_min, value), max(seen_max, value), seen_sum + value
        out[t] = adjust(mode, value, seen_min=seen_min, seen_max=seen_max, seen_sum=seen_sum)
    return out
