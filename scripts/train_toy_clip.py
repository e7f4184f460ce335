"""Train a toy CLIP on the proof domain's image-caption pairs, on the CPU, with a fixed seed.

    python scripts/train_toy_clip.py --arch xmore-toy-strong --steps 4000 --pool 32000 --sketch-fraction 0.25 \
        --data-seed 300 --check-every 500
    (the README lists the commands of every committed checkpoint)

--resume continues training the committed checkpoint of --arch (a second stage with a
fresh warmup and cosine schedule, on a fresh pool when --data-seed differs); the
metadata keeps the first stage's under "resumed_from", so the recipe is the chain.

Writes xmore_db/models/checkpoints/<arch>.safetensors (fp16) and <arch>.json
(architecture config, seeds, steps, loss, wall time, a quick zero-shot check),
loadable offline as the model spec `<arch>:toy`.

The pairs come from the same generator as the demo corpus (other seeds): a
pool of pre-rendered images, each with several web-like captions, one drawn
per step. The pretraining data is as noisy as the corpus: wrong and junk
captions included, as in LAION.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xmore_db.models import ensure_registered
from xmore_db.models.registry import CONFIG_DIR
from xmore_db.toy import TASKS, caption_for, draw
from xmore_db.toy.datasets import corpus_items

CHECKPOINTS = Path(__file__).resolve().parent.parent / "xmore_db" / "models" / "checkpoints"
CAPTIONS_PER_IMAGE = 4


def build_pool(n: int, seed: int, sketch_fraction: float, preprocess, tokenizer):
    rng = random.Random(seed + 7)
    items = corpus_items(n, seed=seed, sketch_fraction=sketch_fraction)
    images = torch.stack([preprocess(draw(item, rng=rng)) for item in items])
    captions = [caption_for(item, rng) for item in items for _ in range(CAPTIONS_PER_IMAGE)]
    tokens = tokenizer(captions).view(n, CAPTIONS_PER_IMAGE, -1)
    return images, tokens


@torch.no_grad()
def zero_shot_check(model, preprocess, tokenizer, n: int = 200, seed: int = 12345) -> dict[str, float]:
    """Accuracy of 'a photo of a {label}.' zero-shot on a small fresh sample of each task."""
    from xmore_db.toy.render import Item, random_item

    model.eval()
    out = {}
    for name, task in TASKS.items():
        rng = random.Random(seed)
        truth, pixels = [], []
        for i in range(n):
            label = i % len(task.labels)
            item = random_item(rng, task.style)
            item = Item(**{**item.__dict__, task.attribute: task.labels[label]})
            pixels.append(preprocess(draw(item, rng=rng)))
            truth.append(label)
        image = F.normalize(model.encode_image(torch.stack(pixels)), dim=-1)
        text = F.normalize(model.encode_text(tokenizer([f"a photo of a {c}." for c in task.labels])), dim=-1)
        out[name] = float(((image @ text.T).argmax(1).numpy() == np.array(truth)).mean())
    model.train()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", required=True,
                        help="one of our architectures (configs in xmore_db/models/configs), e.g. xmore-toy-strong")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0, help="torch seed (initialisation, batch order)")
    parser.add_argument("--data-seed", type=int, default=100, help="generator seed of the training pool")
    parser.add_argument("--pool", type=int, default=16000, help="pre-rendered training images")
    parser.add_argument("--sketch-fraction", type=float, default=0.1, help="share of sketch renderings in the pool")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a shared, contended CPU)")
    parser.add_argument("--check-every", type=int, default=0,
                        help="run the held-out zero-shot check every N steps and log it (0: only at the end); "
                             "the check's images come from their own seed, never from the training pool")
    parser.add_argument("--out", type=Path, default=CHECKPOINTS)
    parser.add_argument("--resume", action="store_true",
                        help="start from the committed <out>/<arch>.safetensors (a second stage of training: "
                             "fresh warmup and cosine schedule over --steps, its metadata kept under 'resumed_from')")
    args = parser.parse_args()

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ensure_registered()
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(args.arch)
    previous = None
    if args.resume:
        from safetensors.torch import load_file

        model.load_state_dict({k: v.float() for k, v in load_file(str(args.out / f"{args.arch}.safetensors")).items()})
        previous = json.loads((args.out / f"{args.arch}.json").read_text())
        previous.pop("config", None)
    tokenizer = open_clip.get_tokenizer(args.arch)
    images, tokens = build_pool(args.pool, args.data_seed, args.sketch_fraction, preprocess, tokenizer)
    print(f"pool of {args.pool} images built in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))

    generator = torch.Generator().manual_seed(args.seed)
    losses = []
    checks = []
    model.train()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        index = torch.randint(0, args.pool, (args.batch_size,), generator=generator)
        which = torch.randint(0, CAPTIONS_PER_IMAGE, (args.batch_size,), generator=generator)
        image_features = F.normalize(model.encode_image(images[index]), dim=-1)
        text_features = F.normalize(model.encode_text(tokens[index, which]), dim=-1)
        logits = model.logit_scale.exp() * image_features @ text_features.T
        target = torch.arange(args.batch_size)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {np.mean(losses[-100:]):.3f}  "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        if args.check_every and (step + 1) % args.check_every == 0 and step + 1 < args.steps:
            # The check draws its own random numbers from its own seed: the training stream is untouched.
            accuracy = zero_shot_check(model, preprocess, tokenizer)
            checks.append({"step": step + 1, "loss": round(float(np.mean(losses[-100:])), 4), **accuracy})
            print(f"check at step {step + 1}: {accuracy}", file=sys.stderr)

    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out / f"{args.arch}.safetensors"))
    model.load_state_dict({k: v.float() for k, v in state.items()})  # check what was saved, fp16 included
    accuracy = zero_shot_check(model, preprocess, tokenizer)
    wall = time.perf_counter() - started
    meta = {
        "arch": args.arch, "config": json.loads((CONFIG_DIR / f"{args.arch}.json").read_text()),
        "seed": args.seed, "data_seed": args.data_seed, "steps": args.steps, "batch_size": args.batch_size,
        "lr": args.lr, "pool": args.pool, "captions_per_image": CAPTIONS_PER_IMAGE,
        "sketch_fraction": args.sketch_fraction, "checks": checks,
        "final_train_loss": round(float(np.mean(losses[-100:])), 4),
        "logit_scale": round(float(model.logit_scale.exp().item()), 3), "zero_shot_check": accuracy,
        "wall_seconds": round(wall, 1), "threads": args.threads, "dtype_saved": "float16",
        "torch": torch.__version__, "open_clip": open_clip.__version__, "python": platform.python_version(),
        "command": " ".join(["python", "scripts/train_toy_clip.py", *sys.argv[1:]]),
    }
    if previous is not None:
        meta["resumed_from"] = previous
        meta["total_steps"] = args.steps + previous.get("total_steps", previous["steps"])
        meta["total_wall_seconds"] = round(wall + previous.get("total_wall_seconds", previous["wall_seconds"]), 1)
    (args.out / f"{args.arch}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: meta[k] for k in ("arch", "final_train_loss", "zero_shot_check", "wall_seconds")}))


if __name__ == "__main__":
    main()
