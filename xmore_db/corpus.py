"""Image-text corpora on disk: a folder of images with a captions file.

A captions file is CSV (with a header), JSONL or parquet, one row per image, naming the
image by its path relative to the folder and giving its caption. The image's
relative path is its key: with the corpus name it determines the pair id, so
re-ingesting the same folder changes nothing.

The columns are found by name (`IMAGE_COLUMNS`, `CAPTION_COLUMNS`: the names of
Hugging Face imagefolder, open_clip and clip-retrieval among them) or named by
the user (`Columns`); a file without them is refused before anything is read
further. CSV is read as UTF-8 with or without a byte-order mark; its separator
is the one under which the header has both columns (comma, tab, semicolon, |),
unless given.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from .errors import CaptionsError

# Looked for in this order: xmore's own, then Hugging Face imagefolder's.
CAPTION_FILE_NAMES = ("captions.csv", "captions.jsonl", "captions.parquet",
                      "metadata.csv", "metadata.jsonl", "metadata.parquet")
# Hugging Face `file_name`, open_clip `filepath`, clip-retrieval `image_path`; matched case-insensitively.
IMAGE_COLUMNS = ("image", "image_path", "file_name", "filepath", "filename", "file", "path", "img")
# open_clip `title`, Hugging Face and LAION `text`, webdataset `txt`.
CAPTION_COLUMNS = ("caption", "text", "title", "txt", "description")
SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


@dataclass(frozen=True)
class Columns:
    """The user's choices for a captions file: column names and CSV separator (None: found)."""

    image: str | None = None
    caption: str | None = None
    separator: str | None = None
    keep: tuple[str, ...] = ()  # --keep-columns: kept in each pair's payload as `metadata` (see sources.payload)


def parse_separator(value: str | None) -> str | None:
    """`--separator`: one character, or a name (comma, tab, semicolon, \\t)."""
    if value is None:
        return None
    named = {"comma": ",", "tab": "\t", "\\t": "\t", "semicolon": ";", "pipe": "|"}
    separator = named.get(value.lower(), value)
    if len(separator) != 1:
        raise CaptionsError(f"--separator must be one character or one of {', '.join(named)}, got {value!r}")
    return separator


def find_captions_file(folder: Path) -> Path:
    for name in CAPTION_FILE_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise CaptionsError(
        f"no captions file in {folder}: expected {', '.join(CAPTION_FILE_NAMES)}, or pass --captions FILE"
    )


@dataclass(frozen=True)
class CaptionRow:
    """One row of a captions file: usable (problem None) or skipped for `problem`."""

    line: int
    key: str
    path: Path | None
    caption: str
    problem: str | None = None
    extras: dict | None = None  # payload fields: url, path, metadata (see sources.payload)


@dataclass(frozen=True)
class CaptionsFile:
    """A captions file read whole: its path, the columns used, and its rows."""

    path: Path
    image_column: str
    caption_column: str
    rows: list[CaptionRow]


def read_caption_rows(folder: str | Path, captions: str | Path | None = None,
                      columns: Columns = Columns()) -> CaptionsFile:
    """The captions file used, its columns and its rows, each checked; bad rows carry the reason they are skipped.

    Raises CaptionsError only for what makes the whole file unusable: a missing
    folder or file, no image or caption column, no rows, not UTF-8.
    Row problems: `missing_image` (no path, a path outside the folder, or no such
    file), `duplicate_key` (an image listed again), `malformed_row` (a line that is
    not a JSON object). Empty captions are left to the ingest pipeline's checks.
    """
    from .sources.base import DUPLICATE_KEY, MALFORMED_ROW, MISSING_IMAGE
    from .sources.payload import extras

    folder = Path(folder)
    if not folder.is_dir():
        raise CaptionsError(f"corpus folder {folder} does not exist or is not a folder")
    captions_path = Path(captions) if captions else find_captions_file(folder)
    if not captions_path.is_file():
        raise CaptionsError(f"captions file {captions_path} does not exist")
    root = folder.resolve()
    out: list[CaptionRow] = []
    seen: set[str] = set()
    reader = _reader(captions_path, columns)
    for line, image, caption, values in reader.rows():
        image, caption = (image or "").strip(), (caption or "").strip()
        if image == _MALFORMED:
            out.append(CaptionRow(line, "", None, "", MALFORMED_ROW, None))
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
        out.append(CaptionRow(line, key, path, caption, extras=extras(values, columns.keep, path=key)))
    if not out:
        raise CaptionsError(f"captions file {captions_path} has no rows")
    return CaptionsFile(captions_path, reader.image or "", reader.caption or "", out)


_MALFORMED = "\x00malformed"


def _reader(path: Path, columns: Columns):
    suffix = path.suffix.lower()
    if columns.separator is not None and suffix in (".jsonl", ".ndjson", ".json", ".parquet"):
        raise CaptionsError(f"--separator applies to CSV captions files only, not to {path.name}")
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _JsonlReader(path, columns)
    if suffix == ".parquet":
        return _ParquetReader(path, columns)
    return _CsvReader(path, columns)


def _choose(names: list[str], wanted: str | None, accepted: tuple[str, ...]) -> str | None:
    """The column to use among `names` (as spelled there): the one wanted, else the first accepted one."""
    lowered = {name.strip().lower(): name for name in reversed(names)}
    if wanted is not None:
        return lowered.get(wanted.strip().lower())
    return next((lowered[name] for name in accepted if name in lowered), None)


def _columns_error(path: Path, found: list[str], image: str | None, caption: str | None, columns: Columns,
                   how: str = "") -> CaptionsError:
    missing, accepted = [], []
    for role, chosen, wanted, names in (("image", image, columns.image, IMAGE_COLUMNS),
                                        ("caption", caption, columns.caption, CAPTION_COLUMNS)):
        if chosen is None:
            missing.append(f"{role} column" + (f" {wanted!r}" if wanted else ""))
            if not wanted:
                accepted.append(f"{role} columns are found by the names {', '.join(names)}")
    advice = "; ".join(accepted + ["name yours with --image-column NAME and --caption-column NAME"])
    return CaptionsError(f"captions file {path}{how} has no {' and no '.join(missing)}: "
                         f"found {', '.join(found) or 'no columns'}; {advice}")


class _Reader:
    image: str | None = None
    caption: str | None = None

    def __init__(self, path: Path, columns: Columns):
        self.path, self.columns = path, columns

    def rows(self) -> Iterator[tuple[int, str | None, str | None, dict]]:
        """(line, image, caption, {lower-cased name: value} of the url and --keep-columns columns) per row."""
        try:
            yield from self._rows()
        except UnicodeDecodeError as exc:
            raise CaptionsError(f"captions file {self.path} is not UTF-8: {exc.reason}") from None
        except OSError as exc:
            raise CaptionsError(f"cannot read captions file {self.path}: {exc.strerror or exc}") from None

    def _pick(self, names: list[str]) -> bool:
        self.image = _choose(names, self.columns.image, IMAGE_COLUMNS)
        self.caption = _choose(names, self.columns.caption, CAPTION_COLUMNS)
        return self.image is not None and self.caption is not None

    def _kept(self, names: list[str]) -> dict[str, str]:
        """{lower-cased name: name in the file} of the columns kept in the payload; unknown --keep-columns refused."""
        from .sources.payload import URL_COLUMN, check_keep, lookup

        check_keep(self.columns.keep, names, f"captions file {self.path}")
        known = lookup(names)
        return {name: known[name] for name in (URL_COLUMN, *(k.lower() for k in self.columns.keep)) if name in known}


class _CsvReader(_Reader):
    def _rows(self):
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            first = handle.readline()
            separator = self._separator(first)
            reader = csv.reader(chain([first], handle), delimiter=separator)
            header = [h.strip() for h in next(reader, [])]
            image, caption = header.index(self.image), header.index(self.caption)
            kept = {lower: header.index(name) for lower, name in self._kept(header).items()}
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                yield (reader.line_num, row[image] if image < len(row) else None,
                       row[caption] if caption < len(row) else None,
                       {lower: row[i] for lower, i in kept.items() if i < len(row)})

    def _separator(self, first: str) -> str:
        """The separator under which the header has both columns; else a CaptionsError saying what was found."""
        def header(separator: str) -> list[str]:
            return [h.strip() for h in next(csv.reader([first], delimiter=separator), [])]

        given = self.columns.separator
        for separator in [given] if given else list(SEPARATORS):
            if self._pick(header(separator)):
                return separator
        if given:
            works = next((s for s in SEPARATORS if s != given and self._pick(header(s))), None)
            self._pick(header(given))
            error = _columns_error(self.path, header(given), self.image, self.caption, self.columns,
                                   f" (fields separated by {given!r})")
            if works is not None:
                error = CaptionsError(f"{error}; its header has both columns when read "
                                      f"{SEPARATORS[works]}-separated: try --separator {SEPARATORS[works]}")
            raise error
        best = max(SEPARATORS, key=lambda s: len(header(s)))
        self._pick(header(best))
        raise _columns_error(self.path, header(best), self.image, self.caption, self.columns,
                             f" (read as {SEPARATORS[best]}-separated; comma, tab, semicolon and | were tried)")


class _JsonlReader(_Reader):
    """A JSON object per line; the first object's keys are the header."""

    def _rows(self):
        with self.path.open(encoding="utf-8-sig") as handle:
            checked = False
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                if not isinstance(row, dict):
                    yield number, _MALFORMED, None, {}
                    continue
                row = {str(k).strip().lower(): v for k, v in row.items()}
                if not checked:
                    if not self._pick(list(row)):
                        raise _columns_error(self.path, list(row), self.image, self.caption, self.columns,
                                             f" (its first object, line {number})")
                    self.image, self.caption = self.image.strip().lower(), self.caption.strip().lower()
                    kept = list(self._kept(list(row)))
                    checked = True
                yield number, _text(row.get(self.image)), _text(row.get(self.caption)), {
                    name: row[name] for name in kept if name in row}


class _ParquetReader(_Reader):
    def _rows(self):
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises its own kinds for bad files
            raise CaptionsError(f"cannot read captions file {self.path}: {exc}") from None
        names = list(parquet.schema_arrow.names)
        if not self._pick(names):
            raise _columns_error(self.path, names, self.image, self.caption, self.columns)
        kept = self._kept(names)
        number = 0
        for batch in parquet.iter_batches(columns=list(dict.fromkeys([self.image, self.caption, *kept.values()]))):
            values = {lower: batch.column(name).to_pylist() for lower, name in kept.items()}
            for i, (value, text) in enumerate(zip(batch.column(self.image).to_pylist(),
                                                  batch.column(self.caption).to_pylist(), strict=True)):
                number += 1
                yield number, _text(value), _text(text), {lower: column[i] for lower, column in values.items()}


def _text(value) -> str | None:
    return None if value is None else str(value)


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
