"""Drawing one toy item: a textured shape on a background, or a sketch of it.

Two styles: "render" (a filled, textured shape) and "sketch" (a jittery
outline in pen colour on paper, with grain): the shifted domain.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle", "star", "cross")
COLOURS = {
    "red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 215),
    "yellow": (235, 205, 30), "purple": (140, 50, 170), "orange": (240, 130, 20),
}
TEXTURES = ("solid", "striped", "dotted", "checkered")
SIZES = {"small": (0.30, 0.45), "medium": (0.48, 0.65), "large": (0.68, 0.92)}
BACKGROUNDS = {"white": (245, 245, 245), "black": (20, 20, 20), "grey": (128, 128, 128),
               "beige": (225, 210, 180)}
ATTRIBUTES = {"shape": SHAPES, "colour": tuple(COLOURS), "texture": TEXTURES, "size": tuple(SIZES),
              "background": tuple(BACKGROUNDS)}


@dataclass(frozen=True)
class Item:
    shape: str
    colour: str
    texture: str
    size: str
    background: str
    style: str = "render"

    def attribute(self, name: str) -> str:
        return getattr(self, name)


def random_item(rng: random.Random, style: str = "render") -> Item:
    return Item(rng.choice(SHAPES), rng.choice(tuple(COLOURS)), rng.choice(TEXTURES),
                rng.choice(tuple(SIZES)), rng.choice(tuple(BACKGROUNDS)), style)


def outline(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """The shape's polygon, centred at (cx, cy) with radius r, rotated by `angle` radians."""
    if shape == "circle":
        points = [(math.cos(2 * math.pi * i / 40), math.sin(2 * math.pi * i / 40)) for i in range(40)]
    elif shape == "square":
        points = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    elif shape == "triangle":
        points = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "star":
        points = [((1.0 if i % 2 == 0 else 0.42) * math.cos(-math.pi / 2 + math.pi * i / 5),
                   (1.0 if i % 2 == 0 else 0.42) * math.sin(-math.pi / 2 + math.pi * i / 5)) for i in range(10)]
    elif shape == "cross":
        a, b = 0.3, 0.9
        points = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a),
                  (-b, -a), (-a, -a)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in points]


def _texture(item: Item, size: int, rng: random.Random) -> Image.Image:
    colour = COLOURS[item.colour]
    pale = tuple(int(0.35 * c + 0.65 * 255) for c in colour)
    fill = Image.new("RGB", (size, size), colour if item.texture == "solid" else pale)
    pen = ImageDraw.Draw(fill)
    step = max(4, size // 8)
    offset = rng.randrange(step)
    if item.texture == "striped":
        vertical = rng.random() < 0.5
        for s in range(-size, 2 * size, step):
            band = [(s + offset, -1), (s + offset + step // 2, -1), (s + offset + step // 2, size), (s + offset, size)]
            if not vertical:
                band = [(y, x) for x, y in band]
            pen.polygon(band, fill=colour)
    elif item.texture == "dotted":
        radius = max(1, step // 4)
        for y in range(offset - step, size + step, step):
            for x in range(offset - step, size + step, step):
                pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    elif item.texture == "checkered":
        for y in range(-step, size + step, step):
            for x in range(-step, size + step, step):
                if ((x + y) // step) % 2 == 0:
                    pen.rectangle((x + offset, y + offset, x + offset + step - 1, y + offset + step - 1), fill=colour)
    return fill


def _geometry(item: Item, size: int, rng: random.Random) -> tuple[float, float, float, float]:
    low, high = SIZES[item.size]
    r = size * rng.uniform(low, high) / 2
    margin = r + 1
    cx, cy = rng.uniform(margin, size - margin), rng.uniform(margin, size - margin)
    angle = rng.uniform(-0.3, 0.3)
    return cx, cy, r, angle


def draw(item: Item, *, size: int = 64, rng: random.Random) -> Image.Image:
    """The item as an RGB image of size × size pixels; all randomness from `rng`."""
    cx, cy, r, angle = _geometry(item, size, rng)
    points = outline(item.shape, cx, cy, r, angle)
    if item.style == "sketch":
        return _sketch(item, points, size, rng)
    image = Image.new("RGB", (size, size), BACKGROUNDS[item.background])
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon(points, fill=255)
    image.paste(_texture(item, size, rng), (0, 0), mask)
    return image


def _sketch(item: Item, points: list[tuple[float, float]], size: int, rng: random.Random) -> Image.Image:
    """A hand-drawn-looking outline: jittered strokes, pen in the item's colour or pencil grey, grainy paper."""
    paper = rng.randint(215, 250)
    image = Image.new("RGB", (size, size), (paper, paper, paper - rng.randint(0, 15)))
    pen = ImageDraw.Draw(image)
    ink = COLOURS[item.colour] if rng.random() < 0.5 else (60, 60, 60)
    jitter = size / 40
    for _ in range(rng.choice((1, 2))):  # one or two passes, like a quick doodle
        wobbly = [(x + rng.gauss(0, jitter), y + rng.gauss(0, jitter)) for x, y in points]
        pen.line(wobbly + wobbly[:1], fill=ink, width=rng.choice((1, 2, 2, 3)))
    if rng.random() < 0.5:  # a stray scribble
        x, y = rng.uniform(0, size), rng.uniform(0, size)
        pen.line([(x, y), (x + rng.uniform(-size / 4, size / 4), y + rng.uniform(-size / 4, size / 4))],
                 fill=(120, 120, 120), width=1)
    image = image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.0, 0.6)))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 12, (size, size, 1))
    pixels = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")
