"""RECO's fusion layers (torch) and their file: safetensors with the training record in its metadata.

One `torch.nn.TransformerEncoderLayer` per side (image, text) over the sequence [query; k retrieved]
(d = the classifier's embedding size, pre-norm, GELU, feed-forward 2·d, no dropout); the refined
embedding is the output at the query's position, L2-normalised. Retrieved rows that are NaN (fewer
than k came back) are masked out of attention. The two sublayers' output projections start at zero, so
an untrained layer returns the query itself: training starts from the frozen CLIP's zero-shot.

Whether the paper shares weights between the sides is not known to us; we keep one layer per side
(the text side only where the corpus' images are in the classifier's space).

This module imports torch; nothing imports it until a fusion layer is built or loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import BadInputError, first_line
from ..files import write_atomically
from .record import FORMAT, KIND, METADATA_KEY, check_classifier, read_record, record_path

FF_MULT = 2
INFERENCE_CHUNK = 4096


def heads_for(dim: int) -> int:
    """Attention heads: the most of 8, 4, 2 that divide `dim` into heads of at least 8, else 1."""
    return next((h for h in (8, 4, 2) if dim % h == 0 and dim // h >= 8), 1)


class FusionLayer(nn.Module):
    """[query; retrieved] → the refined query, unit length. Starts as the identity on the query."""

    def __init__(self, dim: int):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(dim, heads_for(dim), dim_feedforward=FF_MULT * dim, dropout=0.0,
                                                activation="gelu", batch_first=True, norm_first=True)
        for linear in (self.layer.self_attn.out_proj, self.layer.linear2):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, query: torch.Tensor, retrieved: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """query (B, D), retrieved (B, k, D) (rows where not `present` are ignored), present (B, k) bool."""
        items = torch.where(present[..., None], retrieved, torch.zeros_like(retrieved))
        sequence = torch.cat([query[:, None], items], dim=1)
        ignore = torch.cat([torch.zeros_like(present[:, :1]), ~present], dim=1)
        out = self.layer(sequence, src_key_padding_mask=ignore)[:, 0]
        return nn.functional.normalize(out, dim=-1)


@dataclass
class FusionLayers:
    """The image-side layer, the text-side one (or None), RECO's k, and the record they were trained with."""

    image: FusionLayer
    text: FusionLayer | None
    k: int
    record: dict = field(default_factory=dict)
    device: str = "cpu"

    @property
    def has_text(self) -> bool:
        return self.text is not None

    def modules(self) -> dict[str, FusionLayer]:
        return {"image": self.image, **({"text": self.text} if self.text is not None else {})}

    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.modules().values() for p in m.parameters()]

    def refine_images(self, queries: np.ndarray, retrieved: np.ndarray) -> np.ndarray:
        return _apply(self.image, queries, retrieved, self.device)

    def refine_prompts(self, queries: np.ndarray, retrieved: np.ndarray) -> np.ndarray:
        if self.text is None:
            raise ValueError("this fusion layer has no text side")
        return _apply(self.text, queries, retrieved, self.device)


def as_tensors(queries: np.ndarray, retrieved: np.ndarray, device: str) -> tuple[torch.Tensor, ...]:
    """Float tensors (B, D), (B, k, D) with NaN rows zeroed, and the (B, k) mask of present rows."""
    r = np.asarray(retrieved, dtype=np.float32)
    present = ~np.isnan(r).any(axis=-1)
    return (torch.as_tensor(np.array(queries, dtype=np.float32), device=device),
            torch.as_tensor(np.where(present[..., None], r, 0.0), device=device),
            torch.as_tensor(present, device=device))


def _apply(layer: FusionLayer, queries: np.ndarray, retrieved: np.ndarray, device: str) -> np.ndarray:
    layer.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(queries), INFERENCE_CHUNK):
            stop = start + INFERENCE_CHUNK
            out.append(layer(*as_tensors(queries[start:stop], retrieved[start:stop], device)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, np.asarray(queries).shape[-1]), dtype=np.float32)


def build_layers(dim: int, *, k: int, text: bool, seed: int, device: str = "cpu") -> FusionLayers:
    """Fresh layers, their initial weights drawn from `seed`."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        image = FusionLayer(dim).to(device)
        text_layer = FusionLayer(dim).to(device) if text else None
    finally:
        torch.random.set_rng_state(generator_state)
    return FusionLayers(image=image, text=text_layer, k=k, device=device)


def save_fusion(path: Path, layers: FusionLayers, record: dict) -> None:
    """Write the layers' weights and `record` (in the safetensors metadata) atomically, and the record as
    JSON beside it (`FILE.json`) for people."""
    from safetensors.torch import save

    tensors = {f"{side}.{name}": t.detach().cpu().contiguous()
               for side, module in layers.modules().items() for name, t in module.state_dict().items()}
    record = {**record, "format": FORMAT, "kind": KIND, "k": layers.k, "text_side": layers.has_text}
    data = save(tensors, metadata={METADATA_KEY: json.dumps(record, sort_keys=True)})
    write_atomically(path, lambda handle: handle.write(data), durable=True)
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    write_atomically(record_path(path), lambda handle: handle.write(text.encode("utf-8")))


def read_fusion(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(record, tensors) of a fusion file; BadInputError, one line, for a missing, corrupt or foreign file."""
    from safetensors import safe_open

    record = read_record(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - not a dict
    except Exception as error:  # noqa: BLE001 - safetensors raises its own types and OSError
        raise BadInputError(f"the fusion layer {path} cannot be read ({first_line(error, 120)}): "
                            "train it again with `xmore reco train`") from None
    return record, tensors


def load_fusion(path: Path, *, classifier: str, fingerprint: str, dim: int, device: str = "cpu") -> FusionLayers:
    """The fusion layers in `path`, refused (BadInputError) unless trained for this classifier."""
    record, tensors = read_fusion(path)
    check_classifier(record, path, classifier=classifier, fingerprint=fingerprint, dim=dim)
    try:
        layers = build_layers(dim, k=int(record["k"]), text=bool(record.get("text_side")), seed=0, device=device)
        for side, module in layers.modules().items():
            prefix = f"{side}."
            module.load_state_dict({n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)})
    except (KeyError, RuntimeError, ValueError) as error:
        raise BadInputError(f"the fusion layer {path} does not hold the layers its record describes "
                            f"({first_line(error, 120)}): train it again with `xmore reco train`") from None
    layers.record = record
    return layers
