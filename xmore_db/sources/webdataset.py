"""Webdataset tar shards as img2dataset writes them: `{key}.jpg`, `{key}.txt`, `{key}.json`.

One unit per shard (its path relative to the folder). Members of a sample sit
next to each other in the tar and share the key: the member's path up to the
first dot of its file name. Both embeddings are computed: the image with the
coarse model, the caption (the `.txt`, else the json's `caption`) with the fine one.
A shard that cannot be read, or is truncated, fails as a unit; so does one
without its end-of-archive blocks or with fewer samples than img2dataset's
`_stats.json` counts (see `img2dataset`), unless taken with --allow-partial.
Failed downloads listed in the shard's parquet are counted under their status.
A pair keeps `{shard}/{member}` of its image as its payload `path`, and the
json's `url` and --keep-columns fields (`payload`); the first sample's json
must have the chosen fields.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ..errors import BadInputError
from .base import DUPLICATE_KEY, EMPTY_CAPTION, MALFORMED_ROW, MISSING_IMAGE, ImageRef, RowBatch, unit_error
from .img2dataset import (
    IMAGE_EXTENSIONS,
    Sidecars,
    checked_count,
    failed_batch,
    inspect_tar,
    sample_cause,
    sorted_naturally,
    split_name,
)
from .payload import check_keep, extras, lowered

KIND = "webdataset"
SHARD_SUFFIXES = (".tar",)


def looks_like(path: Path) -> bool:
    if path.is_file():
        return path.name.endswith(SHARD_SUFFIXES)
    return path.is_dir() and any(path.glob("*.tar"))


class WebdatasetShards:
    kind = KIND
    computes_images = True
    computes_texts = True

    def __init__(self, root: str | Path, *, allow_partial: bool = False, keep: tuple[str, ...] = ()):
        root = Path(root)
        self.allow_partial, self.keep = allow_partial, keep
        if root.is_file():
            self.root, self._units = root.parent, [root.name]
        elif root.is_dir():
            self.root = root
            self._units = sorted_naturally(p.relative_to(root).as_posix() for p in root.rglob("*.tar") if p.is_file())
        else:
            raise BadInputError(f"{root} does not exist")

    def units(self) -> list[str]:
        return list(self._units)

    def files(self, unit: str) -> list[Path]:
        return [self.root / unit, *Sidecars.beside(self.root / unit).files()]

    def likely_cause(self, reason: str) -> str:
        return sample_cause(reason)

    def estimate_rows(self, unit: str) -> int | None:
        try:
            with tarfile.open(self.root / unit) as tar:
                return len({split_name(m.name)[0] for m in tar.getmembers() if m.isfile()})
        except (OSError, tarfile.TarError):
            return None

    def check(self, coarse_dim: int, fine_dim: int) -> None:
        if not self._units:
            raise BadInputError(f"no .tar shards in {self.root}")
        if self.keep:
            path = self.root / self._units[0]
            try:
                with tarfile.open(path, mode="r|*") as tar:
                    fields = next((json_fields(members) for _, members, _ in _samples(tar) if "json" in members), [])
            except (OSError, tarfile.TarError, EOFError):
                return  # an unreadable shard fails as a unit, later
            check_keep(self.keep, fields, f"the first sample's json in shard {path}")

    def read(self, unit: str, batch_rows: int) -> Iterator[RowBatch]:
        path = self.root / unit
        sidecars = Sidecars.beside(path)
        # Checked before any row is handed on: an incomplete shard writes nothing unless taken as partial.
        complete, samples = inspect_tar(path, unit)
        note = checked_count(unit, samples=samples, successes=sidecars.successes(unit), complete=complete,
                             allow_partial=self.allow_partial, where=f"shard {path}")
        failures = sidecars.failures(unit)
        batch = _empty()
        seen: set[str] = set()
        try:
            with tarfile.open(path, mode="r|*") as tar:
                for key, members, names in _samples(tar):
                    batch.rows += 1
                    if key in seen:
                        batch.skipped[DUPLICATE_KEY] += 1
                    else:
                        seen.add(key)
                        path = f"{unit}/{names.get(image_extension(members), key)}"
                        _add(batch, key, members, sample_extras(members, self.keep, path))
                    if batch.rows >= batch_rows:
                        yield batch
                        batch = _empty()
        except FileNotFoundError:
            raise unit_error(unit, "missing file", f"{path} does not exist") from None
        except (OSError, tarfile.TarError, EOFError) as error:
            raise unit_error(unit, f"cannot read shard {path}", error) from None
        if batch.rows:
            yield batch
        failed = failed_batch(failures)
        if failed is not None:
            yield failed
        if note is not None:
            yield RowBatch(keys=[], captions=[], images=[], rows=0, partial=True, note=note)


def _empty() -> RowBatch:
    return RowBatch(keys=[], captions=[], images=[], extras=[], rows=0, skipped=Counter())


def _samples(tar: tarfile.TarFile) -> Iterator[tuple[str, dict[str, bytes], dict[str, str]]]:
    """(key, {extension: bytes}, {extension: member name}) per sample, members read in tar order."""
    current, members, names = None, {}, {}
    for member in tar:
        if not member.isfile():
            continue
        key, extension = split_name(member.name)
        if current is not None and key != current:
            yield current, members, names
            members, names = {}, {}
        current = key
        handle = tar.extractfile(member)
        members[extension] = handle.read() if handle is not None else b""
        names[extension] = member.name
    if current is not None:
        yield current, members, names


def image_extension(members: dict[str, bytes]) -> str | None:
    return next((e for e in IMAGE_EXTENSIONS if e in members), None)


def json_fields(members: dict[str, bytes]) -> dict[str, object]:
    """The sample's json as a dict keyed by lower-cased field name; {} when absent or not an object."""
    try:
        value = json.loads(members["json"]) if "json" in members else {}
    except ValueError:
        return {}
    return lowered(value) if isinstance(value, dict) else {}


def sample_extras(members: dict[str, bytes], keep: tuple[str, ...], path: str) -> dict:
    """A sample's payload fields: its json's url and kept fields, and the image's path."""
    return extras(json_fields(members), keep, path=path)


def sample_row(members: dict[str, bytes]) -> tuple[bytes | None, str | None, str | None]:
    """(image bytes, caption, skip reason) of one sample: the caption is the .txt, else the json's `caption`."""
    extension = image_extension(members)
    image = None if extension is None else members[extension]
    if image is None:
        return None, None, MISSING_IMAGE
    caption = None
    if "txt" in members:
        try:
            caption = members["txt"].decode("utf-8").strip()
        except UnicodeDecodeError:
            return None, None, MALFORMED_ROW
    elif "json" in members:
        try:
            value = json.loads(members["json"]).get("caption")
        except (ValueError, AttributeError):
            return None, None, MALFORMED_ROW
        caption = value.strip() if isinstance(value, str) else None
    if not caption:
        return None, None, EMPTY_CAPTION
    return image, caption, None


def _add(batch: RowBatch, key: str, members: dict[str, bytes], extra: dict) -> None:
    image, caption, problem = sample_row(members)
    if problem is not None:
        batch.skipped[problem] += 1
        return
    batch.keys.append(key)
    batch.captions.append(caption)
    batch.images.append(ImageRef(name=f"{key} in shard", data=image))
    batch.extras.append(extra)
