"""A folder of images with a captions file (captions.* or Hugging Face's metadata.*: csv, jsonl, parquet).

Units are consecutive slices of the captions file's rows (`rows-START-STOP`,
UNIT_ROWS rows each), so a grown file adds units and a rerun resumes by slice.
The image's path relative to the folder is its key, and its payload `path`; a
`url` column and the --keep-columns columns are kept too. Both embeddings are computed.
A unit's files are the images of its slice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ..corpus import CaptionRow, Columns, read_caption_rows
from .base import EMPTY_CAPTION, LIKELY_CAUSES, MISSING_IMAGE, ImageRef, RowBatch

KIND = "folder"
UNIT_ROWS = 10_000


def looks_like(path: Path) -> bool:
    from ..corpus import CAPTION_FILE_NAMES

    return path.is_dir() and any((path / name).is_file() for name in CAPTION_FILE_NAMES)


class ImageFolder:
    kind = KIND
    computes_images = True
    computes_texts = True

    def __init__(self, root: str | Path, *, captions: str | Path | None = None, columns: Columns = Columns(),
                 unit_rows: int = UNIT_ROWS):
        self.root = Path(root)
        # The whole file is checked now: a missing or malformed captions file fails before any write.
        self.captions = read_caption_rows(self.root, captions, columns)
        self.captions_path, self._rows = self.captions.path, self.captions.rows
        self.unit_rows = unit_rows

    def units(self) -> list[str]:
        n = len(self._rows)
        return [f"rows-{start:08d}-{min(start + self.unit_rows, n):08d}" for start in range(0, n, self.unit_rows)]

    def _slice(self, unit: str) -> list[CaptionRow]:
        _, start, stop = unit.split("-")
        return self._rows[int(start):int(stop)]

    def estimate_rows(self, unit: str) -> int | None:
        return len(self._slice(unit))

    def files(self, unit: str) -> list[Path]:
        return [row.path for row in self._slice(unit) if row.path is not None]

    def likely_cause(self, reason: str) -> str:
        if reason == MISSING_IMAGE:
            return (f"its column {self.captions.image_column!r} names no image under {self.root}: the paths must "
                    "be relative to that folder (or name the right column with --image-column)")
        if reason == EMPTY_CAPTION:
            return (f"its column {self.captions.caption_column!r} is empty in every row "
                    "(name the right column with --caption-column)")
        return LIKELY_CAUSES.get(reason, "")

    def check(self, coarse_dim: int, fine_dim: int) -> None:
        """Nothing to check: both embeddings are computed by the configured models."""

    def read(self, unit: str, batch_rows: int) -> Iterator[RowBatch]:
        rows = self._slice(unit)
        for start in range(0, len(rows), batch_rows):
            chunk = rows[start:start + batch_rows]
            batch = RowBatch(keys=[], captions=[], images=[], extras=[], rows=len(chunk), skipped=Counter())
            for row in chunk:
                if row.problem is not None:
                    batch.skipped[row.problem] += 1
                    continue
                batch.keys.append(row.key)
                batch.captions.append(row.caption)
                batch.images.append(ImageRef(name=str(row.path), path=row.path))
                batch.extras.append(row.extras or {})
            yield batch
