"""Training RECO's fusion layers: symmetric InfoNCE on a corpus' pairs, the CLIP frozen.

Stages: `memory.build_memory` (every pair's retrievals, own pair excluded, cached), then `Trainer`
(the loop), with a checkpoint every `save_every` steps: the fusion file (weights and record) and,
beside it, the optimiser's state (`FILE.state.safetensors`). A rerun with the same file continues from
its last checkpoint, exactly: step t's batch is drawn from (seed, t) alone.

The loss, per batch of B pairs (logits scaled by the classifier's logit scale s):
- text side on: L = [NCE(î, t̂) + NCE(î, t) + NCE(i, t̂)] / 3, the refined image î against the refined caption t̂
  and each refined embedding against the other modality's original (RECO trains for both alignments);
- text side off: L = NCE(î, t), the refined image against the original caption (the prompts stay as
  they are at inference, so this is the alignment used there);
where NCE(a, b) = [CE(s·a·bᵀ, diag) + CE(s·b·aᵀ, diag)] / 2. A fixed share of the pairs (`holdout`) is never a
training query; its loss is recorded beside the training loss at every checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import BadInputError
from ..files import write_atomically
from .layers import FusionLayers, as_tensors, build_layers
from .memory import TrainingMemory


@dataclass(frozen=True)
class TrainOptions:
    steps: int = 600
    batch: int = 256
    lr: float = 1e-4
    weight_decay: float = 0.01
    seed: int = 0
    holdout: float = 0.05
    save_every: int = 100


def info_nce(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """Symmetric InfoNCE of matching rows of a and b (B, D)."""
    logits = scale * a @ b.T
    target = torch.arange(len(a), device=a.device)
    return (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2


def reco_loss(layers: FusionLayers, batch: dict[str, np.ndarray], scale: float) -> torch.Tensor:
    """The loss of one batch (`TrainingMemory.batch`)."""
    images, items, present = as_tensors(batch["image_queries"], batch["image_items"], layers.device)
    captions = torch.as_tensor(batch["captions"], device=layers.device)
    refined_images = layers.image(images, items, present)
    if layers.text is None or "text_items" not in batch:
        return info_nce(refined_images, captions, scale)
    _, text_items, text_present = as_tensors(batch["captions"], batch["text_items"], layers.device)
    refined_captions = layers.text(captions, text_items, text_present)
    return (info_nce(refined_images, refined_captions, scale) + info_nce(refined_images, captions, scale)
            + info_nce(images, refined_captions, scale)) / 3


def split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): a seeded share `holdout` held out (none if that leaves fewer than 2)."""
    order = np.random.default_rng([seed, 1]).permutation(n)
    held = int(round(n * holdout))
    if held < 2 or n - held < 2:
        return np.sort(order), np.zeros(0, dtype=int)
    return np.sort(order[held:]), np.sort(order[:held])


class Trainer:
    """The loop over one memory; the layers and optimiser may come from a checkpoint."""

    def __init__(self, layers: FusionLayers, memory: TrainingMemory, options: TrainOptions, *, scale: float):
        self.layers, self.memory, self.options, self.scale = layers, memory, options, float(scale)
        self.train_rows, self.held_rows = split(len(memory), options.holdout, options.seed)
        self.optimizer = torch.optim.AdamW(layers.parameters(), lr=options.lr, weight_decay=options.weight_decay)

    def rows(self, step: int) -> np.ndarray:
        """Step `step`'s batch, drawn from (seed, step) alone, so a resumed run draws what the first would have."""
        size = min(self.options.batch, len(self.train_rows))
        pick = np.random.default_rng([self.options.seed, 2, step]).choice(len(self.train_rows), size, replace=False)
        return self.train_rows[pick]

    def step(self, step: int) -> float:
        for module in self.layers.modules().values():
            module.train()
        loss = reco_loss(self.layers, self.memory.batch(self.rows(step)), self.scale)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def holdout_loss(self) -> float | None:
        """The mean loss over the held-out pairs, in batches of the training size; None without any."""
        if len(self.held_rows) < 2:
            return None
        for module in self.layers.modules().values():
            module.eval()
        size, losses, weights = self.options.batch, [], []
        with torch.no_grad():
            for start in range(0, len(self.held_rows), size):
                rows = self.held_rows[start:start + size]
                if len(rows) < 2:
                    continue
                losses.append(float(reco_loss(self.layers, self.memory.batch(rows), self.scale)))
                weights.append(len(rows))
        return float(np.average(losses, weights=weights))

    def save_state(self, path: Path, step: int) -> None:
        """The optimiser's state at `step`, for an exact resume."""
        from safetensors.torch import save

        state = self.optimizer.state_dict()
        tensors = {f"{index}.{name}": value.detach().cpu().contiguous()
                   for index, entry in state["state"].items() for name, value in entry.items()}
        data = save(tensors, metadata={"step": str(step)})
        write_atomically(path, lambda handle: handle.write(data))

    def load_state(self, path: Path, step: int) -> bool:
        """Restore the optimiser's state if `path` holds the one saved at `step`; False otherwise."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                if (handle.metadata() or {}).get("step") != str(step):
                    return False
                state: dict[int, dict[str, torch.Tensor]] = {}
                for name in handle.keys():  # noqa: SIM118 - not a dict
                    index, key = name.split(".", 1)
                    state.setdefault(int(index), {})[key] = handle.get_tensor(name)
        except Exception:  # noqa: BLE001 - a missing or damaged state restarts the optimiser's moments
            return False
        current = self.optimizer.state_dict()
        self.optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})
        return True


def state_path(out: Path) -> Path:
    return Path(out).with_suffix(".state.safetensors")


def run_training(trainer: Trainer, *, start: int, out: Path, record: dict,
                 on_step: Callable[[int, float], None] = lambda step, loss: None) -> dict:
    """Train from step `start` to `options.steps`, checkpointing; returns the final record."""
    from .layers import save_fusion

    options = trainer.options
    curve = list(record.get("loss_curve", []))
    seconds = float(record.get("train_seconds", 0.0))
    window: list[float] = []
    began = time.perf_counter()
    mark = began
    for step in range(start, options.steps):
        loss = trainer.step(step)
        window.append(loss)
        on_step(step + 1, loss)
        done = step + 1
        if done % options.save_every == 0 or done == options.steps:
            now = time.perf_counter()
            seconds += now - mark
            curve.append({"step": done, "loss": round(float(np.mean(window)), 5),
                          "holdout_loss": _rounded(trainer.holdout_loss())})
            window = []
            record = {**record, "steps": done, "loss_curve": curve, "train_seconds": round(seconds, 3)}
            trainer.save_state(state_path(out), done)
            save_fusion(out, trainer.layers, record)
            mark = time.perf_counter()
    ran = options.steps - start
    elapsed = time.perf_counter() - began
    if ran > 0:
        record = {**record, "pairs_per_second": round(ran * min(options.batch, len(trainer.train_rows)) / elapsed, 1)}
        save_fusion(out, trainer.layers, record)
    return record


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 5)


def check_resumable(record: dict, out: Path, *, corpus: str, k: int, options: TrainOptions) -> None:
    """BadInputError, one line, if `out` holds a fusion layer trained otherwise than asked."""
    wanted = {"corpus": corpus, "k": k, **{name: value for name, value in asdict(options).items()
                                           if name not in ("steps", "save_every")}}
    differs = [f"{name} {record.get(name)!r} (asked: {value!r})" for name, value in wanted.items()
               if record.get(name) != value]
    if differs:
        raise BadInputError(f"{out} holds a fusion layer trained with other settings: {'; '.join(differs)}: "
                            "pass another --out, or the same settings to continue it")


def new_trainer(memory: TrainingMemory, options: TrainOptions, *, dim: int, scale: float, device: str,
                resume_from: Path | None = None, classifier: str = "", fingerprint: str = "") -> Trainer:
    """A trainer with fresh layers, or the layers of `resume_from` (checked by the caller)."""
    if resume_from is None:
        layers = build_layers(dim, k=memory.k, text=memory.has_text, seed=options.seed, device=device)
    else:
        from .layers import load_fusion

        layers = load_fusion(resume_from, classifier=classifier, fingerprint=fingerprint, dim=dim, device=device)
    return Trainer(layers, memory, options, scale=scale)
