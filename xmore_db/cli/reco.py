"""`xmore reco`: RECO's trained fusion layers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..workspace import Workspace
from . import options as opt
from .base import make_app, settings_from
from .render import echo_json, progress_bar

app = make_app("RECO (retrieval-enhanced CLIP embeddings): train the fusion layers that `xmore classify --method reco` "
               "and `xmore eval --methods reco` read with --fusion.")


@app.command("train")
def train(
    ctx: typer.Context,
    corpus: Annotated[str, typer.Option("--corpus", "-c", help="The corpus whose pairs train the layers.")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps in all (a rerun continues up to "
                                       "this many).")] = 600,
    k: Annotated[int | None, typer.Option("--k", min=1, help="Items retrieved per query (default: --reco-k, "
                                          "XMORE_RECO_K, 10).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The fusion file (safetensors; its record is "
                                             "written beside it as .json). Default: "
                                             "XMORE_HOME/reco/<corpus>-<classifier arch>-k<k>.safetensors.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the layers' initialisation, the held-out pairs and "
                                      "every batch.")] = 0,
    batch: Annotated[int, typer.Option("--batch", min=2, help="Pairs per step (the contrastive batch).")] = 256,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="AdamW learning rate.")] = 1e-4,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0.0, help="AdamW weight decay.")] = 0.01,
    holdout: Annotated[float, typer.Option("--holdout", min=0.0, max=0.5, help="Share of the pairs never used as "
                                           "training queries; their loss is recorded at each checkpoint.")] = 0.05,
    save_every: Annotated[int, typer.Option("--save-every", min=1, help="Checkpoint every this many steps.")] = 100,
    device: opt.Device = None,
    json: opt.Json = False,
):
    """Train RECO's fusion layers on a corpus' pairs, the classifier frozen (symmetric InfoNCE).

    Each pair's memory comes through the same store code as classification, its own pair left out: its
    image's k nearest corpus images (coarse search) and their captions' classifier embeddings (the caption
    cache; `xmore cache-captions` fills it). The text side (class prompts: their nearest captions' images)
    is trained only when the coarse model is the classifier, so that the corpus' image embeddings are the
    classifier's; otherwise only the image side is, and the training images are re-encoded by the
    classifier from a folder corpus' files. Retrievals are cached; the file is checkpointed every
    --save-every steps and a rerun with the same --out continues it. Reports the training rate (pairs/s).
    """
    from ..reco.run import Progress, train_fusion
    from ..reco.train import TrainOptions

    settings = settings_from(ctx, device=device)
    k = k if k is not None else settings.reco_k
    options = TrainOptions(steps=steps, batch=batch, lr=lr, weight_decay=weight_decay, seed=seed, holdout=holdout,
                           save_every=save_every)
    command = (f"xmore reco train --corpus {corpus} --k {k} --steps {steps} --seed {seed} --batch {batch} "
               f"--lr {lr} --weight-decay {weight_decay} --holdout {holdout}")
    with Workspace(settings) as ws, progress_bar("retrieving", unit="pair") as fetch, \
            progress_bar("training", unit="step") as bar:
        record = train_fusion(ws, corpus, k=k, out=out, options=options, command=command, progress=Progress(
            retrieval_start=fetch.start, retrieval_advance=fetch.advance,
            train_start=lambda total: (fetch.close(), bar.start(total)),
            train_step=lambda step, loss: bar.advance(1)))
    if json:
        echo_json(record)
        return
    curve = record.get("loss_curve") or [{}]
    last = curve[-1]
    held = f", held-out {last['holdout_loss']:.4f}" if last.get("holdout_loss") is not None else ""
    rate = f"; {record['pairs_per_second']:.0f} pairs/s" if record.get("pairs_per_second") else ""
    side = "image and text sides" if record.get("text_side") else "image side only (text side off)"
    resumed = f", continued from step {record['resumed_from']}" if record.get("resumed_from") else ""
    typer.echo(f"Trained RECO fusion ({side}) for {record['classifier']} on corpus {record['corpus']!r}: "
               f"{record['steps']} steps{resumed}, k = {record['k']}, loss {last.get('loss', float('nan')):.4f}{held}"
               f"{rate}; wrote {record['out']}")
