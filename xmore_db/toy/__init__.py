"""Every generated data set of the project: the proof domain and the formats users bring.

`render` draws an `Item` (shape, colour, texture, size, background, style);
`captions` writes noisy captions for it; `datasets` writes corpora, query
images and labelled test sets to disk; `formats` writes corpora in the layouts
users bring (clip-retrieval embedding folders with random vectors, webdataset
shards) for tests and benchmarks. Everything is a pure function of a seed.
"""

from __future__ import annotations

from .captions import caption_for
from .datasets import TASKS, Task, write_corpus, write_labels, write_queries, write_test_set
from .render import ATTRIBUTES, Item, draw, random_item

__all__ = ["ATTRIBUTES", "TASKS", "Item", "Task", "caption_for", "draw", "random_item", "write_corpus",
           "write_labels", "write_queries", "write_test_set"]
