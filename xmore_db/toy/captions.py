"""Web-like captions for toy items: noisy, of varying detail, some of them wrong.

A caption names a random subset of the item's attributes (at least one), in
one of many phrasings, with web noise (stock-site words, file names, tags).
A fraction describe another item (wrong), and a fraction are junk with no
attribute at all, like much alt-text on the web.
"""

from __future__ import annotations

import random

from .render import ATTRIBUTES, Item

_NOISE_BEFORE = ("", "", "", "stock image: ", "free vector ", "new! ", "hq ", "royalty free ", "printable ")
_NOISE_AFTER = ("", "", "", " - download now", " #art #design", " | shop", " clipart png", " 1024x768",
                " (transparent)", " wallpaper")
_JUNK = ("IMG_{n}.JPG", "click here for more designs", "untitled-{n}", "product photo {n}",
         "see our catalogue", "image {n} of 12", "thumbnail", "DSC{n}")
_SKETCH_WORDS = ("sketch of a", "hand drawn", "doodle of a", "pencil drawing of a", "line drawing:", "outline of a")
_TEXTURE_WORDS = {"solid": ("solid", "plain", "flat"), "striped": ("striped", "stripes", "stripy"),
                  "dotted": ("dotted", "polka dot", "spotted"), "checkered": ("checkered", "checkerboard", "chequered")}


def _words(item: Item, names: list[str], rng: random.Random) -> dict[str, str]:
    words = {}
    for name in names:
        value = item.attribute(name)
        if name == "texture":
            value = rng.choice(_TEXTURE_WORDS[value])
        words[name] = value
    return words


def caption_for(item: Item, rng: random.Random, *, wrong_rate: float = 0.12, junk_rate: float = 0.05) -> str:
    """One caption for `item`. With probability `wrong_rate` it describes another random item."""
    if rng.random() < junk_rate:
        return rng.choice(_JUNK).format(n=rng.randint(100, 9999))
    if rng.random() < wrong_rate:
        name = rng.choice(["shape", "colour", "texture"])
        other = rng.choice([v for v in ATTRIBUTES[name] if v != item.attribute(name)])
        item = Item(**{**item.__dict__, name: other})
    names = ["shape", "colour", "size", "background"]
    if item.style == "render":
        names.append("texture")
    chosen = [n for n in names if rng.random() < {"shape": 0.75, "colour": 0.65, "texture": 0.6,
                                                     "size": 0.3, "background": 0.25}[n]]
    if not chosen:
        chosen = [rng.choice(["shape", "colour"] + (["texture"] if item.style == "render" else []))]
    w = _words(item, chosen, rng)
    adjectives = " ".join(w[n] for n in ("size", "colour", "texture") if n in w)
    noun = w.get("shape", rng.choice(("shape", "icon", "symbol", "pattern", "thing")))
    phrase = f"{adjectives} {noun}".strip()
    if item.style == "sketch":
        phrase = f"{rng.choice(_SKETCH_WORDS)} {phrase}"
    elif rng.random() < 0.5:
        phrase = rng.choice(("a ", "a photo of a ", "the ", "picture of a ", "")) + phrase
    if "background" in w:
        phrase += rng.choice((f" on a {w['background']} background", f" on {w['background']}",
                              f", {w['background']} backdrop"))
    return f"{rng.choice(_NOISE_BEFORE)}{phrase}{rng.choice(_NOISE_AFTER)}"
