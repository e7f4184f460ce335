"""The proof domain: procedural images with web-like captions, drawn with Pillow.

`render` draws an `Item` (shape, colour, texture, size, background, style);
`captions` writes noisy captions for it; `datasets` writes corpora and labelled
test sets to disk. Everything is a pure function of a seed.
"""

from __future__ import annotations

from .captions import caption_for
from .datasets import TASKS, Task, write_corpus, write_test_set
from .render import ATTRIBUTES, Item, draw, random_item

__all__ = ["ATTRIBUTES", "TASKS", "Item", "Task", "caption_for", "draw", "random_item", "write_corpus",
           "write_test_set"]
