"""A small procedural image-caption corpus drawn with Pillow, for the demo and tests.

Coloured shapes on plain backgrounds, with web-like captions of varying detail.
It exercises the whole pipeline offline; it says nothing about accuracy on real data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from .corpus import write_captions

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
BACKGROUNDS = {"white": (245, 245, 245), "black": (15, 15, 15), "grey": (128, 128, 128)}
CAPTION_TEMPLATES = (
    "a {colour} {shape}",
    "a {colour} {shape} on a {background} background",
    "{shape}, {colour}, clip art",
    "photo of a {shape} shape in {colour}",
    "simple {colour} {shape} icon",
    "stock image: {colour} {shape} isolated on {background}",
)


@dataclass(frozen=True)
class Drawing:
    shape: str
    colour: str
    background: str


def draw(item: Drawing, *, size: int = 64, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (size, size), BACKGROUNDS[item.background])
    pen = ImageDraw.Draw(image)
    extent = rng.randint(size // 3, size - 8)
    x0, y0 = rng.randint(2, size - extent - 2), rng.randint(2, size - extent - 2)
    box = (x0, y0, x0 + extent, y0 + extent)
    fill = COLOURS[item.colour]
    if item.shape == "circle":
        pen.ellipse(box, fill=fill)
    elif item.shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(x0 + extent / 2, y0), (x0, y0 + extent), (x0 + extent, y0 + extent)], fill=fill)
    return image


def _random_drawing(rng: random.Random) -> Drawing:
    return Drawing(rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(list(BACKGROUNDS)))


def write_corpus(folder: str | Path, n: int, *, seed: int = 0, fmt: str = "csv", wrong_caption_rate: float = 0.1,
                 ) -> Path:
    """Write n captioned images and captions.csv (or .jsonl) into folder; returns the captions file."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        item = _random_drawing(rng)
        key = f"images/{i:06d}.png"
        draw(item, rng=rng).save(folder / key)
        described = _random_drawing(rng) if rng.random() < wrong_caption_rate else item
        caption = rng.choice(CAPTION_TEMPLATES).format(
            shape=described.shape, colour=described.colour, background=described.background)
        rows.append({"image": key, "caption": caption})
    return write_captions(folder, rows, fmt)


def write_queries(folder: str | Path, n: int, *, seed: int = 1, task: str = "shape") -> tuple[list[Path], list[str]]:
    """Write n query images; returns their paths and their true labels for `task` (shape or colour)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths, truth = [], []
    for i in range(n):
        item = _random_drawing(rng)
        path = folder / f"query-{i:03d}-{item.colour}-{item.shape}.png"
        draw(item, rng=rng).save(path)
        paths.append(path)
        truth.append(item.shape if task == "shape" else item.colour)
    return paths, truth


def write_labels(path: str | Path, task: str = "shape") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = SHAPES if task == "shape" else tuple(COLOURS)
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return path
