"""What every corpus source hands to the ingest pipeline, and the row checks they share.

A source names its work units (stable names: an npy partition, a tar shard, a
slice of a captions file) and reads one unit as batches of rows. A row carries
its key and caption, what it keeps to be found again (url, path, chosen columns:
see `payload`), and either precomputed vectors or an image still to be decoded.
Rows a source cannot use are dropped while reading and counted in the batch
under a reason (`SKIP_REASONS`); the pipeline drops and counts the rest (empty
captions, NaN vectors, undecodable images) the same way.

A unit whose files cannot be read raises `UnitReadError`: that unit fails, alone.
A source names each unit's files (`files`), whose sizes and modification times
the ledger records, so a file changed after its unit was done is read again.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import ImageError, UnitReadError

# Why a row was skipped; the keys of a unit's `skip_reasons`.
UNDECODABLE_IMAGE = "undecodable_image"
MISSING_IMAGE = "missing_image"
EMPTY_CAPTION = "empty_caption"
CAPTION_TOO_LONG = "caption_too_long"
NAN_EMBEDDING = "nan_embedding"
ZERO_NORM_EMBEDDING = "zero_norm_embedding"
WRONG_SIZE_EMBEDDING = "wrong_size_embedding"
ROW_COUNT_MISMATCH = "row_count_mismatch"
DUPLICATE_KEY = "duplicate_key"
MALFORMED_ROW = "malformed_row"
# img2dataset's statuses of samples it could not fetch (rows of its parquet, absent from its output).
FAILED_TO_DOWNLOAD = "failed_to_download"
FAILED_TO_RESIZE = "failed_to_resize"
SKIP_REASONS = (
    UNDECODABLE_IMAGE, MISSING_IMAGE, EMPTY_CAPTION, CAPTION_TOO_LONG, NAN_EMBEDDING,
    ZERO_NORM_EMBEDDING, WRONG_SIZE_EMBEDDING, ROW_COUNT_MISMATCH, DUPLICATE_KEY, MALFORMED_ROW,
    FAILED_TO_DOWNLOAD, FAILED_TO_RESIZE,
)

# Why every row of a unit would be skipped for one reason: the message of the unit's failure.
LIKELY_CAUSES = {
    UNDECODABLE_IMAGE: "its images are not in a format Pillow reads, or are damaged",
    MISSING_IMAGE: "its rows name no image that exists",
    EMPTY_CAPTION: "its rows have no caption",
    CAPTION_TOO_LONG: "every caption is longer than --max-caption-chars",
    NAN_EMBEDDING: "its embeddings hold NaN or infinite values: make them again",
    ZERO_NORM_EMBEDDING: "its embeddings are zero vectors: make them again",
    WRONG_SIZE_EMBEDDING: "its vectors were made by another model than the configured ones "
                          "(XMORE_COARSE_MODEL, XMORE_FINE_MODEL)",
    ROW_COUNT_MISMATCH: "one of its files has no rows",
    MALFORMED_ROW: "its lines are not JSON objects, or its captions are not UTF-8",
    FAILED_TO_DOWNLOAD: "img2dataset could not download any of its images (see error_message in its parquet)",
    FAILED_TO_RESIZE: "img2dataset could not resize any of its images (see error_message in its parquet)",
}

# Below this L2 norm a vector has no usable direction (float16 data included).
MIN_NORM = 1e-6


@dataclass(frozen=True)
class ImageRef:
    """An image still to be decoded: a file, or bytes read from an archive."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def decode(self):
        """The image in RGB, fully decoded; ImageError if it cannot be."""
        from ..images import load_image

        if self.path is not None:
            return load_image(self.path)
        from PIL import Image

        try:
            with Image.open(BytesIO(self.data or b"")) as image:
                image.load()
                return image.convert("RGB")
        except Exception as error:  # noqa: BLE001 - Pillow raises many kinds for bad data
            raise ImageError(f"cannot read image {self.name}: {type(error).__name__}") from None


@dataclass
class RowBatch:
    """Rows of one unit; row i of each present field belongs to keys[i].

    `rows` counts what the unit held for this batch, kept and skipped; `skipped`
    the rows already dropped while reading, by reason.
    """

    keys: list[str]
    captions: list[str]
    image_vectors: np.ndarray | None = None  # (n, coarse_dim) float32, precomputed
    text_vectors: np.ndarray | None = None  # (n, fine_dim) float32, precomputed
    images: list[ImageRef] | None = None  # to decode and encode
    extras: list[dict] | None = None  # payload fields besides the caption: url, path, metadata (`payload`)
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    already_present: int = 0  # rows left out because both their points are stored already
    rewritten: int = 0  # rows kept although stored already (their source changed): not new pairs
    partial: bool = False  # the unit was taken incomplete (--allow-partial); `note` says how
    note: str | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def keep(self, mask: np.ndarray | list[bool], reasons: list[str | None] | None = None) -> RowBatch:
        """The rows where mask is true; the others counted under their reason (if given and not None)."""
        mask = np.asarray(mask, dtype=bool)
        if reasons is not None:
            for reason, kept in zip(reasons, mask, strict=True):
                if not kept and reason is not None:
                    self.skipped[reason] += 1
        if mask.all():
            return self
        index = np.flatnonzero(mask)
        pick = index.tolist()
        return RowBatch(
            keys=[self.keys[i] for i in pick],
            captions=[self.captions[i] for i in pick],
            image_vectors=None if self.image_vectors is None else self.image_vectors[index],
            text_vectors=None if self.text_vectors is None else self.text_vectors[index],
            images=None if self.images is None else [self.images[i] for i in pick],
            extras=None if self.extras is None else [self.extras[i] for i in pick],
            rows=self.rows,
            skipped=self.skipped,
            already_present=self.already_present,
            rewritten=self.rewritten,
            partial=self.partial,
            note=self.note,
        )


@runtime_checkable
class Source(Protocol):
    kind: str  # "embeddings" | "webdataset" | "files" | "folder"
    root: Path
    computes_images: bool  # image embeddings are computed (images decoded) rather than read
    computes_texts: bool  # caption embeddings are computed with the fine model

    def units(self) -> list[str]:
        """Unit names in natural order (`natural_key`), stable across runs for the same files."""
        ...

    def files(self, unit: str) -> list[Path]:
        """The files the unit is read from: their sizes and modification times tell a changed unit."""
        ...

    def likely_cause(self, reason: str) -> str:
        """Why every row of a unit would be skipped for `reason`, for the unit's error."""
        ...

    def estimate_rows(self, unit: str) -> int | None:
        """Rows in the unit if cheaply known (progress bar), else None."""
        ...

    def check(self, coarse_dim: int, fine_dim: int) -> None:
        """Whole-source problems (BadInputError) found before anything is written."""
        ...

    def read(self, unit: str, batch_rows: int) -> Iterator[RowBatch]:
        """The unit's rows in batches of at most `batch_rows`; UnitReadError if unreadable."""
        ...


def natural_key(name: str) -> tuple:
    """Sort key putting 2 before 10: digit runs compare as numbers."""
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


def fingerprint(paths: list[Path]) -> tuple[int, float]:
    """(total size in bytes, latest modification time) of the files that exist among `paths`."""
    size, mtime = 0, 0.0
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        size += stat.st_size
        mtime = max(mtime, stat.st_mtime_ns / 1e9)
    return size, mtime


def caption_problems(captions: list[str], max_chars: int) -> list[str | None]:
    out: list[str | None] = []
    for caption in captions:
        if not caption or not caption.strip():
            out.append(EMPTY_CAPTION)
        elif len(caption) > max_chars:
            out.append(CAPTION_TOO_LONG)
        else:
            out.append(None)
    return out


def vector_problems(vectors: np.ndarray) -> list[str | None]:
    """Per row: NaN/infinite values, or (almost) no length; None when usable."""
    squares = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)  # NaN/inf propagate; no overflow
    finite = np.isfinite(squares)
    if finite.all() and (squares >= MIN_NORM ** 2).all():
        return [None] * len(vectors)  # the usual batch: no row to look at in Python
    finite = np.isfinite(vectors).all(axis=1)  # a square can overflow where the values are finite
    return [
        NAN_EMBEDDING if not ok else (ZERO_NORM_EMBEDDING if square < MIN_NORM ** 2 else None)
        for ok, square in zip(finite.tolist(), squares.tolist(), strict=True)
    ]


def unit_error(unit: str, what: str, error: BaseException | str) -> UnitReadError:
    from ..store.base import short

    reason = error if isinstance(error, str) else short(error)
    return UnitReadError(f"unit {unit}: {what}: {reason}")
