"""Webdataset tar shards as img2dataset writes them: `{key}.jpg`, `{key}.txt`, `{key}.json`.

One unit per shard (its path relative to the folder). Members of a sample sit
next to each other in the tar and share the key: the member's path up to the
first dot of its file name. Both embeddings are computed: the image with the
coarse model, the caption (the `.txt`, else the json's `caption`) with the fine one.
A shard that cannot be read, or is truncated, fails as a unit.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ..errors import BadInputError
from .base import DUPLICATE_KEY, EMPTY_CAPTION, MALFORMED_ROW, MISSING_IMAGE, ImageRef, RowBatch, unit_error

KIND = "webdataset"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
SHARD_SUFFIXES = (".tar",)


def looks_like(path: Path) -> bool:
    if path.is_file():
        return path.name.endswith(SHARD_SUFFIXES)
    return path.is_dir() and any(path.glob("*.tar"))


class WebdatasetShards:
    kind = KIND
    computes_images = True
    computes_texts = True

    def __init__(self, root: str | Path):
        root = Path(root)
        if root.is_file():
            self.root, self._units = root.parent, [root.name]
        elif root.is_dir():
            self.root = root
            self._units = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.tar") if p.is_file())
        else:
            raise BadInputError(f"{root} does not exist")

    def units(self) -> list[str]:
        return list(self._units)

    def estimate_rows(self, unit: str) -> int | None:
        try:
            with tarfile.open(self.root / unit) as tar:
                return len({_split(m.name)[0] for m in tar.getmembers() if m.isfile()})
        except (OSError, tarfile.TarError):
            return None

    def check(self, coarse_dim: int, fine_dim: int) -> None:
        if not self._units:
            raise BadInputError(f"no .tar shards in {self.root}")

    def read(self, unit: str, batch_rows: int) -> Iterator[RowBatch]:
        path = self.root / unit
        batch = _empty()
        seen: set[str] = set()
        try:
            with tarfile.open(path, mode="r|*") as tar:
                for key, members in _samples(tar):
                    batch.rows += 1
                    if key in seen:
                        batch.skipped[DUPLICATE_KEY] += 1
                    else:
                        seen.add(key)
                        _add(batch, key, members)
                    if batch.rows >= batch_rows:
                        yield batch
                        batch = _empty()
        except FileNotFoundError:
            raise unit_error(unit, "missing file", f"{path} does not exist") from None
        except (OSError, tarfile.TarError, EOFError) as error:
            raise unit_error(unit, f"cannot read shard {path}", error) from None
        if batch.rows:
            yield batch


def _empty() -> RowBatch:
    return RowBatch(keys=[], captions=[], images=[], rows=0, skipped=Counter())


def _split(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


def _samples(tar: tarfile.TarFile) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per sample, members read in tar order."""
    current, members = None, {}
    for member in tar:
        if not member.isfile():
            continue
        key, extension = _split(member.name)
        if current is not None and key != current:
            yield current, members
            members = {}
        current = key
        handle = tar.extractfile(member)
        members[extension] = handle.read() if handle is not None else b""
    if current is not None:
        yield current, members


def _add(batch: RowBatch, key: str, members: dict[str, bytes]) -> None:
    image = next((members[e] for e in IMAGE_EXTENSIONS if e in members), None)
    if image is None:
        batch.skipped[MISSING_IMAGE] += 1
        return
    caption = None
    if "txt" in members:
        try:
            caption = members["txt"].decode("utf-8").strip()
        except UnicodeDecodeError:
            batch.skipped[MALFORMED_ROW] += 1
            return
    elif "json" in members:
        try:
            value = json.loads(members["json"]).get("caption")
        except (ValueError, AttributeError):
            batch.skipped[MALFORMED_ROW] += 1
            return
        caption = value.strip() if isinstance(value, str) else None
    if not caption:
        batch.skipped[EMPTY_CAPTION] += 1
        return
    batch.keys.append(key)
    batch.captions.append(caption)
    batch.images.append(ImageRef(name=f"{key} in shard", data=image))
