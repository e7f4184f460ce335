"""Zero-shot CLIP, the caption ensemble and X-MoRe (arXiv 2308.15273), over the shared inputs.

- `zeroshot`: p_I = softmax_c(s · cos(image, prompt_c));
- `captions`: p_T, the mean of the first k captions' class distributions (p_I for a query without captions);
- `xmore`, `xmore-l1`, `xmore-none`: p_I and p_T combined by the confidence ensemble with min-max, L1 or
  no adjustment over the stream;
- `xmore-indirect`: `xmore` with the captions of the first k coarse neighbours in coarse order (Table 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import method
from .base import CAPTIONS, INDIRECT_CAPTIONS, MethodInputs, Modalities, require


def image_probabilities(inputs: MethodInputs) -> np.ndarray:
    """(N, C) p_I."""
    return inputs.cached("p_image", lambda: method.class_probabilities(
        inputs.image_embeddings, inputs.prompts, inputs.logit_scale))


def per_caption_probabilities(captions: np.ndarray, prompts: np.ndarray, logit_scale: float) -> np.ndarray:
    """(N, M, C) each caption's class distribution; NaN where the caption row is NaN (padding)."""
    captions = np.asarray(captions, dtype=np.float64)
    present = ~np.isnan(captions).any(axis=-1)
    p = method.class_probabilities(np.where(present[..., None], captions, 0.0), prompts, logit_scale)
    return np.where(present[..., None], p, np.nan)


def prefix_mean(per_caption: np.ndarray, k: int) -> np.ndarray:
    """(N, C) the mean over each query's first k present rows; NaN rows where it has none."""
    head = per_caption[:, :k]
    present = ~np.isnan(head).any(axis=-1)
    counts = present.sum(axis=1)
    total = np.where(present[..., None], head, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts[:, None] > 0, total / np.maximum(counts, 1)[:, None], np.nan)


def text_probabilities(inputs: MethodInputs, k: int, source: str = CAPTIONS) -> np.ndarray:
    """(N, C) p_T from the first k captions of `source`; NaN rows for queries without one."""
    per_caption = inputs.cached(f"per_caption:{source}", lambda: per_caption_probabilities(
        require(inputs, source, "captions"), inputs.prompts, inputs.logit_scale))
    return prefix_mean(per_caption, k)


@dataclass(frozen=True)
class ZeroShot:
    name: str = "zeroshot"
    title: str = "CLIP zero-shot (image only)"
    needs: frozenset = frozenset()
    normalize: str | None = None
    uses_k: bool = False

    def modalities(self, inputs: MethodInputs, k: int) -> Modalities:
        return Modalities(image_probabilities(inputs))


@dataclass(frozen=True)
class CaptionEnsemble:
    name: str = "captions"
    title: str = "Caption ensemble (text only)"
    needs: frozenset = frozenset({CAPTIONS})
    normalize: str | None = None
    uses_k: bool = True

    def modalities(self, inputs: MethodInputs, k: int) -> Modalities:
        p_text = text_probabilities(inputs, k)
        missing = np.isnan(p_text).any(axis=-1)
        return Modalities(np.where(missing[:, None], image_probabilities(inputs), p_text))


@dataclass(frozen=True)
class XMoRe:
    name: str = "xmore"
    title: str = "X-MoRe (minmax)"
    normalize: str | None = "minmax"
    source: str = CAPTIONS
    needs: frozenset = frozenset({CAPTIONS})
    uses_k: bool = True

    def modalities(self, inputs: MethodInputs, k: int) -> Modalities:
        return Modalities(image_probabilities(inputs), text_probabilities(inputs, k, self.source))


METHODS = (
    ZeroShot(),
    CaptionEnsemble(),
    XMoRe(),
    XMoRe(name="xmore-l1", title="X-MoRe (l1, the released code)", normalize="l1"),
    XMoRe(name="xmore-none", title="X-MoRe (none: equal confidence)", normalize="none"),
    XMoRe(name="xmore-indirect", title="X-MoRe, indirect retrieval (coarse order)", source=INDIRECT_CAPTIONS,
          needs=frozenset({INDIRECT_CAPTIONS})),
)
