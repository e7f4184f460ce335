"""CODER text banks for the proof domain, from the toy generator's own vocabulary.

The toy CLIPs learned only the words of the generated captions (captions.py, render.py), so a bank's
texts are made of those words, in the captions' word order (size, colour, texture, noun):
- synonyms: the captions' other words for a class (textures: "stripy", "polka dot", "chequered", …);
- attributes: the other drawn attributes a class is seen with ("a red circle", "a stripy circle"), the
  phrase placed by the template as the captions place it;
- analogies: classes that look alike (a star and a cross both have points; dotted and checkered are
  both patterns of small cells; orange sits between red and yellow);
- one-vs-one texts for (a, b): a caption-like phrase naming a and denying b ("a small circle, not a
  square", "a red shape, not a blue shape"): the vocabulary has no word that tells two shapes apart
  other than their names, and "not" is the one word here the captions never use (the toy models read
  these texts backwards: README, *CODER on the proof domain*).
Shape and shape-sketch share the shape bank. Nothing here was tuned on the test sets.
"""

from __future__ import annotations

from pathlib import Path

from ..coder.bank import ClassTexts, TextBank, save_bank
from .captions import _TEXTURE_WORDS
from .datasets import TASKS
from .render import COLOURS, SHAPES, SIZES

_TEXTURE_PHRASES = tuple(word for words in _TEXTURE_WORDS.values() for word in words)
_NOUNS = ("shape", "icon", "symbol", "pattern")  # what captions call an item whose shape they leave out

ANALOGIES = {
    "shape": {"circle": ("dot",), "square": ("checkerboard",), "triangle": ("star",), "star": ("cross", "triangle"),
              "cross": ("star",)},
    "colour": {"red": ("orange",), "green": ("blue",), "blue": ("purple",), "yellow": ("orange",),
               "purple": ("blue",), "orange": ("red", "yellow")},
    "texture": {"solid": (), "striped": ("checkered",), "dotted": ("checkered",), "checkered": ("striped", "dotted")},
}

# Per task attribute: the templates (the captions' word order) and each class' attribute phrases.
TEMPLATES = {
    "shape": {"name": "a photo of a {c}.", "attribute": "a {attribute} {c}", "analogy": "a {c} similar to a {other}",
              "ovo": "a {phrase} {a}, not a {b}"},
    "colour": {"name": "a photo of a {c}.", "attribute": "a {c} {attribute}", "analogy": "a {c} similar to {other}",
               "ovo": "a {a} {phrase}, not a {b} {phrase}"},
    "texture": {"name": "a photo of a {c}.", "attribute": "a {c} {attribute}", "analogy": "a {c} similar to {other}",
                "ovo": "a {a} {phrase}, not a {b} {phrase}"},
}
# The one-vs-one phrases, the same for every pair: sizes before a shape, the captions' nouns after an adjective.
OVO_PHRASES = {"shape": tuple(SIZES), "colour": _NOUNS, "texture": _NOUNS}


def _attributes(attribute: str) -> tuple[str, ...]:
    if attribute == "shape":  # "a red circle", "a stripy circle", "a small circle"
        return (*COLOURS, *_TEXTURE_PHRASES, *SIZES)
    if attribute == "colour":  # "a red circle", "a red striped shape"
        return (*SHAPES, *(f"{t} {n}" for t in _TEXTURE_PHRASES for n in _NOUNS[:1]), *_NOUNS)
    return (*SHAPES, *_NOUNS)  # texture: "a striped circle", "a striped pattern"


def _synonyms(attribute: str, label: str) -> tuple[str, ...]:
    return tuple(w for w in _TEXTURE_WORDS[label] if w != label) if attribute == "texture" else ()


def toy_bank(task: str) -> TextBank:
    """The text bank of a toy task (shape, colour, texture, shape-sketch), classes in label order."""
    attribute = TASKS[task].attribute
    labels = TASKS[task].labels
    classes = {label: ClassTexts(synonyms=_synonyms(attribute, label), attributes=_attributes(attribute),
                                 analogies=ANALOGIES[attribute][label]) for label in labels}
    ovo = {a: {b: OVO_PHRASES[attribute] for b in labels if b != a} for a in labels}
    templates = {kind: (template,) for kind, template in TEMPLATES[attribute].items()}
    return TextBank(classes=classes, ovo=ovo, templates=templates, source=f"toy:{task}")


def write_toy_banks(folder: str | Path) -> dict[str, Path]:
    """One bank per toy task as `<folder>/<task>.json`; returns {task: path}."""
    out = {}
    for task in TASKS:
        path = Path(folder) / f"{task}.json"
        save_bank(toy_bank(task), path)
        out[task] = path
    return out
