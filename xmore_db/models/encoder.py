"""A loaded CLIP model behind two calls: images to vectors, texts to vectors.

Vectors are float32 rows of unit length, so a dot product is a cosine.
torch is imported inside the methods: importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ModelSpec
from ..errors import ConfigError

if TYPE_CHECKING:
    from PIL import Image


class ClipEncoder:
    """One open_clip model in eval mode, with its own preprocess transform and tokenizer.

    Built by `load_encoder`; the attributes are what callers may rely on:
    `spec`, `dim` (embedding size), `logit_scale` (exp of the model's learned
    temperature, 100 for the released CLIP models), `fingerprint` (stable
    across processes, names the weights), `device` and `batch_size`.
    """

    def __init__(
        self,
        *,
        spec: ModelSpec,
        model: Any,
        preprocess: Any,
        tokenizer: Any,
        dim: int,
        fingerprint: str,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.spec = spec
        self.dim = int(dim)
        self.fingerprint = fingerprint
        self.device = device
        self.batch_size = batch_size
        self._model = model
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        self.logit_scale = float(model.logit_scale.detach().exp().float().cpu().item())

    def __repr__(self) -> str:
        return f"ClipEncoder({self.spec}, dim={self.dim}, device={self.device!r})"

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, dim) float32, rows L2-normalised; N = len(images), 0 gives (0, dim)."""
        if hasattr(images, "convert"):
            raise TypeError("encode_images takes a sequence of images, not one image")
        images = list(images)
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                pixels = torch.stack([self._preprocess(image) for image in chunk])
                out.append(_unit_rows(self._model.encode_image(pixels.to(self.device))))
        return np.concatenate(out)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, rows L2-normalised; N = len(texts), 0 gives (0, dim).

        Texts longer than the model's context (77 tokens for CLIP) are truncated.
        """
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a sequence of strings, not one string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self._tokenizer(texts[start:start + self.batch_size])
                out.append(_unit_rows(self._model.encode_text(tokens.to(self.device))))
        return np.concatenate(out)


def _unit_rows(features: Any) -> np.ndarray:
    import torch.nn.functional as F

    return F.normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)
