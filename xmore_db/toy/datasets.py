"""Toy data on disk: an external corpus to ingest, and labelled test sets.

Test sets come in the two layouts `xmore eval` reads: ImageFolder (one
sub-folder per class) and the CoOp split file (`split_zhou_<name>.json` with
{"test": [[relpath, label_index, classname], ...]} next to an images folder).
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from ..corpus import write_captions
from .captions import caption_for
from .render import ATTRIBUTES, Item, draw, random_item


@dataclass(frozen=True)
class Task:
    """Classify `attribute` of items drawn in `style`."""

    name: str
    attribute: str
    style: str = "render"

    @property
    def labels(self) -> tuple[str, ...]:
        return ATTRIBUTES[self.attribute]


ATTRIBUTES_FILE = "attributes.csv"

TASKS = {
    "shape": Task("shape", "shape"),
    "colour": Task("colour", "colour"),
    "texture": Task("texture", "texture"),
    "shape-sketch": Task("shape-sketch", "shape", "sketch"),
}


def corpus_items(n: int, *, seed: int, sketch_fraction: float) -> list[Item]:
    rng = random.Random(seed)
    return [random_item(rng, "sketch" if rng.random() < sketch_fraction else "render") for _ in range(n)]


def write_corpus(folder: str | Path, n: int, *, seed: int = 0, sketch_fraction: float = 0.25,
                 wrong_rate: float = 0.12, junk_rate: float = 0.05, size: int = 64) -> Path:
    """n captioned images and captions.csv (header image,caption) in `folder`; returns the captions file.

    Also writes attributes.csv: each pair's key (its image path, as ingest keys a
    folder) and the drawn item's attributes, the ground truth a real corpus lacks
    (`xmore eval --corpus-attributes` reads it to diagnose retrieval). A sketch
    has no texture: its texture is left empty.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed + 1_000_003)
    rows, truth = [], []
    for i, item in enumerate(corpus_items(n, seed=seed, sketch_fraction=sketch_fraction)):
        key = f"images/{i:06d}.png"
        draw(item, size=size, rng=rng).save(folder / key)
        rows.append({"image": key, "caption": caption_for(item, rng, wrong_rate=wrong_rate, junk_rate=junk_rate)})
        attributes = {name: item.attribute(name) for name in ATTRIBUTES}
        if item.style == "sketch":
            attributes["texture"] = ""
        truth.append({"key": key, **attributes, "style": item.style})
    with (folder / ATTRIBUTES_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["key", *ATTRIBUTES, "style"])
        writer.writeheader()
        writer.writerows(truth)
    return write_captions(folder, rows)


def write_test_set(folder: str | Path, task: Task | str, n: int, *, seed: int, layout: str = "imagefolder",
                   size: int = 64) -> Path:
    """n labelled images of `task`, classes balanced, plus labels.txt; returns the dataset path.

    layout "imagefolder": folder/<class>/<i>.png, returns folder.
    layout "coop": folder/images/<class>/<i>.png and folder/split_zhou_<task>.json, returns the json.
    """
    task = TASKS[task] if isinstance(task, str) else task
    if layout not in ("imagefolder", "coop"):
        raise ValueError(f"unknown layout {layout!r}")
    folder = Path(folder)
    root = folder / "images" if layout == "coop" else folder
    rng = random.Random(seed)
    split = []
    for i in range(n):
        label_index = i % len(task.labels)
        item = random_item(rng, task.style)
        item = Item(**{**item.__dict__, task.attribute: task.labels[label_index]})
        rel = f"{task.labels[label_index]}/{i:05d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        draw(item, size=size, rng=rng).save(root / rel)
        split.append([rel, label_index, task.labels[label_index]])
    (folder / "labels.txt").write_text("\n".join(task.labels) + "\n", encoding="utf-8")
    if layout == "coop":
        path = folder / f"split_zhou_{task.name}.json"
        path.write_text(json.dumps({"train": [], "val": [], "test": split}), encoding="utf-8")
        return path
    return folder


def write_queries(folder: str | Path, n: int, *, seed: int = 1, task: Task | str = "shape",
                  size: int = 64) -> tuple[list[Path], list[str]]:
    """n query images of `task`'s style in one flat folder; returns their paths and true labels."""
    task = TASKS[task] if isinstance(task, str) else task
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths, truth = [], []
    for i in range(n):
        item = random_item(rng, task.style)
        label = item.attribute(task.attribute)
        path = folder / f"query-{i:03d}-{label}.png"
        draw(item, size=size, rng=rng).save(path)
        paths.append(path)
        truth.append(label)
    return paths, truth


def write_labels(path: str | Path, task: Task | str = "shape") -> Path:
    """`task`'s class names, one per line."""
    task = TASKS[task] if isinstance(task, str) else task
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(task.labels) + "\n", encoding="utf-8")
    return path
