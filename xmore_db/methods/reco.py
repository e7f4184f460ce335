"""RECO (arXiv 2306.07196): embeddings refined with cross-modal items retrieved from the memory.

Uni-modal search, cross-modal fusion, over the two collections:
- image side: the query image's k nearest corpus images (the coarse search), their captions' classifier
  embeddings (`indirect_captions`, in coarse order), fused into the classifier's image embedding;
- text side: each class prompt's k nearest captions (a search of the caption cache), their pairs' image
  embeddings (`prompt_neighbours`), fused into the prompt embedding. Only when the corpus' image space is the
  classifier's (coarse model = classifier); otherwise `prompt_neighbours` is None and the prompts stay as they are.

Two fusions, then zero-shot between the refined image and the refined prompts:
- `reco-mean`, training-free: q' = normalise(q + alpha · Σ_j w_j r_j), w = softmax_j(s · cos(q, r_j)) over the
  retrieved items present (s the classifier's logit scale); a query with none keeps q;
- `reco`: a trained transformer encoder layer per side over [q; r_1..r_k], the output at q's position,
  L2-normalised (xmore_db.reco.layers; trained by `xmore reco train`);
- `xmore+reco`: `reco`'s refined p_I with X-MoRe's caption p_T, combined by the min-max confidence ensemble.

RECO's k is its own (`RecoFusion.k`: XMORE_RECO_K for reco-mean, the trained k for reco), not the sweep's k
(uses_k False for p_I). Each query uses the first k of the items retrieved for it; where the caller retrieved
fewer (classify -k, eval's largest k), it uses those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import method
from .base import CAPTIONS, FUSION, INDIRECT_CAPTIONS, PROMPT_NEIGHBOURS, MethodInputs, Modalities, require
from .xmore import text_probabilities

DEFAULT_ALPHA = 1.0
DEFAULT_K = 10


@dataclass(frozen=True)
class RecoFusion:
    """What fuses: the training-free weight `alpha` and RECO's `k`, and the trained layers, if given.

    `layers`, when present, has `k`, `has_text`, and `refine_images(q, r)`, `refine_prompts(q, r)`:
    (N, D), (N, k, D) NaN-padded → (N, D) unit rows (xmore_db.reco.layers.FusionLayers).
    """

    alpha: float = DEFAULT_ALPHA
    k: int = DEFAULT_K
    layers: Any = None


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def reco_mean(queries: np.ndarray, retrieved: np.ndarray, *, alpha: float, logit_scale: float) -> np.ndarray:
    """(N, D) normalise(q + alpha · Σ_j w_j r_j) with w = softmax over the present j of s · cos(q, r_j).

    queries (N, D), retrieved (N, k, D) with NaN rows where fewer than k came back (ignored);
    a query with no retrieved item, or alpha 0, keeps its (normalised) embedding. Inputs are not modified.
    """
    q = _unit(np.asarray(queries, dtype=np.float64))
    r = np.asarray(retrieved, dtype=np.float64)
    if r.ndim != 3 or r.shape[0] != q.shape[0] or (r.shape[1] and r.shape[2] != q.shape[1]):
        raise ValueError(f"retrieved must be (N, k, D) for queries {q.shape}, got {r.shape}")
    present = ~np.isnan(r).any(axis=-1)
    r = _unit(np.where(present[..., None], r, 0.0))
    logits = np.where(present, logit_scale * np.einsum("nd,nkd->nk", q, r), -np.inf)
    top = np.max(logits, axis=1, keepdims=True, initial=-np.inf)
    with np.errstate(invalid="ignore"):
        weights = np.where(present, np.exp(logits - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = weights / np.where(total > 0, total, 1.0)
    mixed = np.einsum("nk,nkd->nd", weights, r)
    return _unit(q + alpha * mixed).astype(np.float32)


def _params(inputs: MethodInputs) -> RecoFusion:
    return inputs.fusion if isinstance(inputs.fusion, RecoFusion) else RecoFusion()


def _head(array: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(array)[:, :k]


def refined_mean(inputs: MethodInputs) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) images and (C, D) prompts refined by reco-mean."""
    params = _params(inputs)

    def compute() -> tuple[np.ndarray, np.ndarray]:
        indirect = require(inputs, INDIRECT_CAPTIONS, "reco-mean")
        images = reco_mean(inputs.image_embeddings, _head(indirect, params.k), alpha=params.alpha,
                           logit_scale=inputs.logit_scale)
        prompts = inputs.prompts
        if inputs.prompt_neighbours is not None:
            prompts = reco_mean(prompts, _head(inputs.prompt_neighbours, params.k), alpha=params.alpha,
                                logit_scale=inputs.logit_scale)
        return images, prompts

    return inputs.cached("reco-mean:refined", compute)


def refined_trained(inputs: MethodInputs, method_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) images and (C, D) prompts refined by the trained fusion layers."""
    layers = _params(inputs).layers
    if layers is None:
        raise ValueError(f"method {method_name!r} needs a trained fusion layer (--fusion), "
                         "which the caller did not load")

    def compute() -> tuple[np.ndarray, np.ndarray]:
        indirect = require(inputs, INDIRECT_CAPTIONS, method_name)
        images = layers.refine_images(inputs.image_embeddings, _head(indirect, layers.k))
        prompts = inputs.prompts
        if inputs.prompt_neighbours is not None and layers.has_text:
            prompts = layers.refine_prompts(prompts, _head(inputs.prompt_neighbours, layers.k))
        return images, prompts

    return inputs.cached("reco:refined", compute)


@dataclass(frozen=True)
class RecoMean:
    name: str = "reco-mean"
    title: str = "RECO, training-free mean fusion"
    needs: frozenset = frozenset({INDIRECT_CAPTIONS, PROMPT_NEIGHBOURS})
    normalize: str | None = None
    uses_k: bool = False

    def modalities(self, inputs: MethodInputs, k: int) -> Modalities:
        images, prompts = refined_mean(inputs)
        return Modalities(method.class_probabilities(images, prompts, inputs.logit_scale))


@dataclass(frozen=True)
class Reco:
    name: str = "reco"
    title: str = "RECO, trained fusion layer"
    needs: frozenset = frozenset({INDIRECT_CAPTIONS, PROMPT_NEIGHBOURS, FUSION})
    normalize: str | None = None
    uses_k: bool = False

    def modalities(self, inputs: MethodInputs, k: int) -> Modalities:
        images, prompts = refined_trained(inputs, self.name)
        return Modalities(method.class_probabilities(images, prompts, inputs.logit_scale))


@dataclass(frozen=True)
class XMoReReco:
    """p_I from RECO's refined image against the refined prompts; p_T X-MoRe's (first k captions, plain prompts)."""

    name: str = "xmore+reco"
    title: str = "X-MoRe with RECO's image (minmax)"
    needs: frozenset = frozenset({CAPTIONS, INDIRECT_CAPTIONS, PROMPT_NEIGHBOURS, FUSION})
    normalize: str | None = "minmax"
    uses_k: bool = True

    def modalities(self, inputs: MethodInputs, k: int) -> Modalities:
        images, prompts = refined_trained(inputs, self.name)
        p_image = inputs.cached("reco:p_image", lambda: method.class_probabilities(
            images, prompts, inputs.logit_scale))
        return Modalities(p_image, text_probabilities(inputs, k))


METHODS = (RecoMean(), Reco(), XMoReReco())
