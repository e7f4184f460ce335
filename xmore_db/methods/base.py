"""What every classification method answers, and what the shared stages hand it.

A method turns the shared stages' arrays for N queries (embeddings, retrieved
captions, a text bank, a fusion layer: `MethodInputs`) into one or two class
distributions per query (`Modalities`). When it gives two, the image's and the
text's, they are combined per query by the confidence ensemble over the stream
(method.adjust + method.ensemble, replayed offline by eval); with one, that is
the prediction. Methods are pure: arrays in, arrays out, no I/O.

Shapes: N queries, C classes, D the classifier's embedding size, M retrieved
captions per query (the largest k of a sweep; NaN rows pad a query with fewer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# The inputs a method may declare in `needs`; the shared stages compute only what is needed.
CAPTIONS = "captions"  # fine-ranked captions' classifier embeddings
INDIRECT_CAPTIONS = "indirect_captions"  # captions of the first coarse neighbours, in coarse order
TEXTBANK = "textbank"  # a CODER text bank, encoded by the classifier
FUSION = "fusion"  # a RECO fusion layer
PROMPT_NEIGHBOURS = "prompt_neighbours"  # per class prompt, the image embeddings of its nearest captions' pairs
INPUTS = (CAPTIONS, INDIRECT_CAPTIONS, TEXTBANK, FUSION, PROMPT_NEIGHBOURS)


@dataclass(frozen=True)
class MethodInputs:
    """The shared stages' arrays for N queries; a field a method does not need may be None.

    image_embeddings (N, D) and prompts (C, D) are L2-normalised classifier embeddings;
    captions and indirect_captions (N, M, D), NaN rows where fewer than M came back;
    prompt_neighbours (C, k, D) NaN-padded; textbank and fusion are the methods' own objects.
    """

    image_embeddings: np.ndarray
    prompts: np.ndarray
    logit_scale: float
    captions: np.ndarray | None = None
    indirect_captions: np.ndarray | None = None
    textbank: Any = None
    fusion: Any = None
    prompt_neighbours: np.ndarray | None = None
    # Memo for work shared by several methods over one batch (e.g. per-caption distributions).
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    def cached(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    @property
    def n(self) -> int:
        return len(self.image_embeddings)


@dataclass(frozen=True)
class Modalities:
    """p_image (N, C); p_text (N, C) with NaN rows for queries without captions, or None for one modality."""

    p_image: np.ndarray
    p_text: np.ndarray | None = None


class Method(Protocol):
    name: str  # as given to --method / --methods
    title: str  # as the tables print it
    needs: frozenset[str]  # of INPUTS
    # The stream adjustment for the two-modality ensemble (method.NORMALIZATIONS), None for one modality.
    normalize: str | None
    uses_k: bool  # whether the result depends on the number k of captions

    def modalities(self, inputs: MethodInputs, k: int) -> Modalities: ...


def pad_rows(flat: np.ndarray, counts: list[int], k: int, dim: int) -> np.ndarray:
    """(N, k, dim): query i's `counts[i]` consecutive rows of `flat`, NaN rows after them (MethodInputs' padding)."""
    out = np.full((len(counts), k, dim), np.nan, dtype=np.float32)
    start = 0
    for i, count in enumerate(counts):
        out[i, :count] = flat[start:start + count]
        start += count
    return out


def require(inputs: MethodInputs, name: str, method: str) -> Any:
    value = getattr(inputs, name)
    if value is None:
        raise ValueError(f"method {method!r} needs {name!r}, which the caller did not compute")
    return value
