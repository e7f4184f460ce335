"""`xmore reco train`'s core: checks, the memory, the training loop and its checkpoints, wired in that order.

Nothing is written before every check has passed (the corpus, k, the caption cache, the classifier's
image space, an existing output's provenance and settings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import text_side
from .memory import build_memory, check_training
from .train import TrainOptions, _rounded, check_resumable, new_trainer, run_training, state_path

if TYPE_CHECKING:
    from ..workspace import Workspace


@dataclass(frozen=True)
class Progress:
    """Callbacks: retrieval (total pairs, then pairs done), training (total steps, then each step's loss)."""

    retrieval_start: Callable[[int], None] = lambda total: None
    retrieval_advance: Callable[[int], None] = lambda n: None
    train_start: Callable[[int], None] = lambda total: None
    train_step: Callable[[int, float], None] = lambda step, loss: None


def default_out(workspace: Workspace, corpus: str, k: int) -> Path:
    arch = workspace.settings.classifier.arch
    return workspace.settings.home / "reco" / f"{corpus}-{arch}-k{k}.safetensors"


def train_fusion(workspace: Workspace, corpus: str, *, k: int, out: Path | None, options: TrainOptions,
                 command: str = "", progress: Progress | None = None) -> dict:
    """Train (or continue training) the fusion layers for the configured classifier on `corpus`; returns
    the record written with them (see layers.save_fusion), plus "out", "resumed_from" and "memory"."""
    from ..models import embed_dim, resolve_weights
    from .record import check_classifier, read_record

    progress = progress or Progress()
    settings = workspace.settings
    spec = settings.classifier
    dim = embed_dim(spec)
    fingerprint = resolve_weights(spec, cache_dir=settings.model_cache_dir, role="classifier").fingerprint
    size = check_training(workspace, corpus, k)
    out = Path(out) if out is not None else default_out(workspace, corpus, k)
    start, record = 0, None
    if out.exists():
        record = read_record(out)
        check_classifier(record, out, classifier=str(spec), fingerprint=fingerprint, dim=dim)
        check_resumable(record, out, corpus=corpus, k=k, options=options)
        start = min(int(record.get("steps", 0)), options.steps)
        if start == options.steps:  # trained that far already
            return {**record, "out": str(out), "resumed_from": start, "optimizer_restored": True,
                    "memory_cache": None}
    memory, memory_info = build_memory(workspace, corpus, k, on_start=progress.retrieval_start,
                                       on_progress=progress.retrieval_advance)
    scale = workspace.encoder("classifier").logit_scale
    trainer = new_trainer(memory, options, dim=dim, scale=scale, device=settings.device,
                          resume_from=out if record is not None else None, classifier=str(spec),
                          fingerprint=fingerprint)
    exact = record is None or trainer.load_state(state_path(out), start)
    store = workspace.store()
    cache = store.caption_cache()
    record = record or {
        "classifier": str(spec), "classifier_fingerprint": fingerprint, "dim": dim, "corpus": corpus, "k": k,
        "pairs": size, "holdout_pairs": len(trainer.held_rows), "logit_scale": round(float(scale), 4),
        **{name: value for name, value in asdict(options).items() if name not in ("steps", "save_every")},
        "text_side": memory.has_text, "text_side_reason": text_side(settings)[1],
        "memory": {"store": store.backend, "location": store.location, "coarse_model": str(settings.coarse),
                   "caption_cache": cache.model if cache else None, "rows": int(len(memory.captions)),
                   "hnsw_ef": store.search_beam(k + 1, settings.hnsw_ef)},
        "steps": 0, "loss_curve": [{"step": 0, "loss": None, "holdout_loss": _rounded(trainer.holdout_loss())}],
        "train_seconds": 0.0,
    }
    record = {**record, "command": command or record.get("command", "")}
    progress.train_start(options.steps - start)
    record = run_training(trainer, start=start, out=out, record=record, on_step=progress.train_step)
    return {**record, "out": str(out), "resumed_from": start, "optimizer_restored": bool(exact),
            "memory_cache": memory_info}
