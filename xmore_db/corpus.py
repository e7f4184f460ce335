"""Image-text corpora on disk: a folder of images with a captions file.

A captions file is CSV (with a header), JSONL or parquet, one row per image, naming the
image by its path relative to the folder and giving its caption. The image's
relative path is its key: with the corpus name it determines the pair id, so
re-ingesting the same folder changes nothing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import CaptionsError

CAPTION_FILE_NAMES = ("captions.csv", "captions.jsonl", "captions.parquet")
IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filepath", "filename")
CAPTION_COLUMNS = ("caption", "text")


def find_captions_file(folder: Path) -> Path:
    for name in CAPTION_FILE_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise CaptionsError(
        f"no captions file in {folder}: expected {' or '.join(CAPTION_FILE_NAMES)}, "
        "or pass --captions FILE"
    )


@dataclass(frozen=True)
class CaptionRow:
    """One row of a captions file: usable (problem None) or skipped for `problem`."""

    line: int
    key: str
    path: Path | None
    caption: str
    problem: str | None = None


def read_caption_rows(folder: str | Path, captions: str | Path | None = None) -> tuple[Path, list[CaptionRow]]:
    """The captions file used and its rows, each checked; bad rows carry the reason they are skipped.

    Raises CaptionsError only for what makes the whole file unusable: a missing
    folder or file, no image or caption column, no rows, not UTF-8.
    Row problems: `missing_image` (no path, a path outside the folder, or no such
    file), `duplicate_key` (an image listed again), `malformed_row` (a line that is
    not a JSON object). Empty captions are left to the ingest pipeline's checks.
    """
    from .sources.base import DUPLICATE_KEY, MALFORMED_ROW, MISSING_IMAGE

    folder = Path(folder)
    if not folder.is_dir():
        raise CaptionsError(f"corpus folder {folder} does not exist or is not a folder")
    captions_path = Path(captions) if captions else find_captions_file(folder)
    if not captions_path.is_file():
        raise CaptionsError(f"captions file {captions_path} does not exist")
    root = folder.resolve()
    out: list[CaptionRow] = []
    seen: set[str] = set()
    for line, image, caption in _read_rows(captions_path):
        image, caption = (image or "").strip(), (caption or "").strip()
        if image == _MALFORMED:
            out.append(CaptionRow(line, "", None, "", MALFORMED_ROW))
            continue
        path = (folder / image).resolve() if image else None
        if path is None or not path.is_relative_to(root) or not path.is_file():
            out.append(CaptionRow(line, image, None, caption, MISSING_IMAGE))
            continue
        key = path.relative_to(root).as_posix()
        if key in seen:
            out.append(CaptionRow(line, key, path, caption, DUPLICATE_KEY))
            continue
        seen.add(key)
        out.append(CaptionRow(line, key, path, caption))
    if not out:
        raise CaptionsError(f"captions file {captions_path} has no rows")
    return captions_path, out


_MALFORMED = "\x00malformed"


def _read_rows(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            yield from _jsonl_rows(path)
        elif path.suffix.lower() == ".parquet":
            yield from _parquet_rows(path)
        else:
            yield from _csv_rows(path)
    except UnicodeDecodeError as exc:
        raise CaptionsError(f"captions file {path} is not UTF-8: {exc.reason}") from None
    except OSError as exc:
        raise CaptionsError(f"cannot read captions file {path}: {exc.strerror or exc}") from None


def _pick(row: dict, names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in row and row[name] is not None:
            return str(row[name])
    return None


def _csv_rows(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if not any(h in IMAGE_COLUMNS for h in header) or not any(h in CAPTION_COLUMNS for h in header):
            raise CaptionsError(
                f"captions file {path} needs a header with an image column "
                f"({'/'.join(IMAGE_COLUMNS[:2])}) and a caption column ({'/'.join(CAPTION_COLUMNS)}); "
                f"found {', '.join(header) or 'none'}"
            )
        for row in reader:
            row = {(k or "").strip().lower(): v for k, v in row.items()}
            yield reader.line_num, _pick(row, IMAGE_COLUMNS), _pick(row, CAPTION_COLUMNS)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict):
                yield number, _MALFORMED, None
                continue
            row = {str(k).lower(): v for k, v in row.items()}
            yield number, _pick(row, IMAGE_COLUMNS), _pick(row, CAPTION_COLUMNS)


def _parquet_rows(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own kinds for bad files
        raise CaptionsError(f"cannot read captions file {path}: {exc}") from None
    names = {name.lower(): name for name in parquet.schema_arrow.names}
    image = next((names[c] for c in IMAGE_COLUMNS if c in names), None)
    caption = next((names[c] for c in CAPTION_COLUMNS if c in names), None)
    if image is None or caption is None:
        raise CaptionsError(
            f"captions file {path} needs an image column ({'/'.join(IMAGE_COLUMNS[:2])}) and a caption "
            f"column ({'/'.join(CAPTION_COLUMNS)}); found {', '.join(names.values()) or 'none'}"
        )
    number = 0
    for batch in parquet.iter_batches(columns=[image, caption]):
        for value, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            number += 1
            yield number, None if value is None else str(value), None if text is None else str(text)


def write_captions(folder: Path, rows: list[dict[str, str]], fmt: str = "csv") -> Path:
    """Write `rows` ({"image": relative path, "caption": text}) as the folder's captions file; returns it."""
    if fmt == "jsonl":
        path = folder / "captions.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    path = folder / "captions.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return path
