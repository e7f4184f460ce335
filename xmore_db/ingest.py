"""Ingesting an image folder with captions into the two collections.

Every image is decoded and every row checked before the first write, so bad
input leaves the store as it was. Pairs already stored (same corpus and key)
are skipped without being encoded: re-ingesting changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .corpus import CaptionedImage, read_captioned_folder
from .images import load_image
from .store import PairBatch, pair_id

if TYPE_CHECKING:
    from .workspace import Workspace

Progress = Callable[[int], None]


@dataclass(frozen=True)
class IngestReport:
    corpus: str
    rows: int
    ingested: int
    already_present: int
    seconds: float
    collections: dict[str, int]

    @property
    def pairs_per_second(self) -> float:
        return self.ingested / self.seconds if self.seconds > 0 else 0.0


def ingest_folder(
    workspace: Workspace,
    folder: str | Path,
    *,
    corpus: str,
    captions: str | Path | None = None,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Progress = lambda n: None,
) -> IngestReport:
    if not corpus.strip():
        from .errors import BadInputError

        raise BadInputError("corpus name is empty: pass --corpus NAME")
    started = time.perf_counter()
    rows = read_captioned_folder(folder, captions)
    store = workspace.store()
    present = store.existing_ids([pair_id(corpus, row.key) for row in rows])
    todo = [row for row in rows if pair_id(corpus, row.key) not in present]
    # Decode everything first: a corrupt image must fail before the first write.
    for row in todo:
        load_image(row.path).close()

    on_start(len(todo))
    batch_size = workspace.settings.batch_size
    if todo:
        coarse, fine = workspace.encoder("coarse"), workspace.encoder("fine")
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            _ingest_chunk(store, corpus, chunk, coarse, fine)
            on_progress(len(chunk))
        store.optimize()
    return IngestReport(
        corpus=corpus, rows=len(rows), ingested=len(todo), already_present=len(rows) - len(todo),
        seconds=time.perf_counter() - started, collections=store.counts(),
    )


def _ingest_chunk(store, corpus: str, chunk: list[CaptionedImage], coarse, fine) -> None:
    images = [load_image(row.path) for row in chunk]
    try:
        image_vectors = coarse.encode_images(images)
    finally:
        for image in images:
            image.close()
    text_vectors = fine.encode_texts([row.caption for row in chunk])
    store.upsert_pairs(PairBatch(
        corpus=corpus, keys=[row.key for row in chunk], captions=[row.caption for row in chunk],
        image_vectors=image_vectors, text_vectors=text_vectors,
    ))
