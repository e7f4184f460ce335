"""Image-text corpora on disk: a folder of images with a captions file.

A captions file is CSV (with a header) or JSONL, one row per image, naming the
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

CAPTION_FILE_NAMES = ("captions.csv", "captions.jsonl")
IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filepath", "filename")
CAPTION_COLUMNS = ("caption", "text")


@dataclass(frozen=True)
class CaptionedImage:
    key: str  # path relative to the corpus folder, with '/' separators
    path: Path
    caption: str


def find_captions_file(folder: Path) -> Path:
    for name in CAPTION_FILE_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise CaptionsError(
        f"no captions file in {folder}: expected {' or '.join(CAPTION_FILE_NAMES)}, "
        "or pass --captions FILE"
    )


def read_captioned_folder(folder: str | Path, captions: str | Path | None = None) -> list[CaptionedImage]:
    """All rows of a folder's captions file, checked before anything is ingested.

    Raises CaptionsError for a missing file, a row without image or caption,
    an image listed twice, or an image path that leaves the folder or does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CaptionsError(f"corpus folder {folder} does not exist or is not a folder")
    captions_path = Path(captions) if captions else find_captions_file(folder)
    if not captions_path.is_file():
        raise CaptionsError(f"captions file {captions_path} does not exist")
    rows = list(_read_rows(captions_path))
    if not rows:
        raise CaptionsError(f"captions file {captions_path} has no rows")
    root = folder.resolve()
    items: list[CaptionedImage] = []
    seen: dict[str, int] = {}
    for line, image, caption in rows:
        where = f"{captions_path}:{line}"
        image, caption = (image or "").strip(), (caption or "").strip()
        if not image:
            raise CaptionsError(f"{where}: row has no image path")
        if not caption:
            raise CaptionsError(f"{where}: image {image} has an empty caption")
        path = (folder / image).resolve()
        if not path.is_relative_to(root):
            raise CaptionsError(f"{where}: image path {image} is outside {folder}")
        if not path.is_file():
            raise CaptionsError(f"{where}: image {image} does not exist in {folder}")
        key = path.relative_to(root).as_posix()
        if key in seen:
            raise CaptionsError(f"{where}: image {key} is listed twice (first at line {seen[key]})")
        seen[key] = line
        items.append(CaptionedImage(key=key, path=path, caption=caption))
    return items


def _read_rows(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            yield from _jsonl_rows(path)
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
            except json.JSONDecodeError as exc:
                raise CaptionsError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise CaptionsError(f"{path}:{number}: expected a JSON object per line")
            row = {str(k).lower(): v for k, v in row.items()}
            yield number, _pick(row, IMAGE_COLUMNS), _pick(row, CAPTION_COLUMNS)
