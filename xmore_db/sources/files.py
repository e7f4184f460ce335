"""img2dataset's default *files* layout: a folder per shard of `{key}.jpg`, `{key}.txt`, `{key}.json`.

    00000/000000000.jpg  00000/000000000.txt  00000/000000000.json  ...
    00000.parquet        00000_stats.json     00001/ ...

One unit per shard folder (its name). Samples are the files of the folder
grouped by key (the file name up to its first dot), read as webdataset samples
are: the caption is the `.txt`, else the json's `caption`. Both embeddings are
computed. Failed downloads in the shard's parquet are counted under their
status; a shard with fewer images than its `_stats.json` successes fails
unless taken with --allow-partial (see `img2dataset`). A pair keeps its image's
path relative to the folder (`00000/000000000.jpg`) as its payload `path`, and
the json's `url` and --keep-columns fields (`payload`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ..errors import BadInputError
from .base import ImageRef, RowBatch, unit_error
from .img2dataset import IMAGE_EXTENSIONS, Sidecars, checked_count, failed_batch, sample_cause, sorted_naturally
from .img2dataset import split_name as _split
from .payload import check_keep
from .webdataset import json_fields, sample_extras, sample_row

KIND = "files"
_SIDECAR_EXTENSIONS = ("txt", "json")


def _shard_dirs(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()]


def _has_images(folder: Path) -> bool:
    return any(_split(p.name)[1] in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file())


def looks_like(path: Path) -> bool:
    """A folder whose digit-named subfolders hold images (img2dataset's shard folders)."""
    if not path.is_dir():
        return False
    shards = _shard_dirs(path)
    return bool(shards) and _has_images(min(shards, key=lambda p: p.name))


class Img2datasetFiles:
    kind = KIND
    computes_images = True
    computes_texts = True

    def __init__(self, root: str | Path, *, allow_partial: bool = False, keep: tuple[str, ...] = ()):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BadInputError(f"{self.root} is not a folder")
        self.allow_partial, self.keep = allow_partial, keep
        self._units = sorted_naturally(p.name for p in _shard_dirs(self.root))

    def units(self) -> list[str]:
        return list(self._units)

    def files(self, unit: str) -> list[Path]:
        folder = self.root / unit
        found = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        return found + Sidecars.beside(folder).files()

    def likely_cause(self, reason: str) -> str:
        return sample_cause(reason)

    def estimate_rows(self, unit: str) -> int | None:
        try:
            return len(self._samples(unit))
        except Exception:  # noqa: BLE001 - only a progress estimate
            return None

    def check(self, coarse_dim: int, fine_dim: int) -> None:
        if not self._units:
            raise BadInputError(f"no shard folders (00000/, 00001/, …) in {self.root}")
        if self.keep:
            first = next((m["json"] for m in self._samples(self._units[0]).values() if "json" in m), None)
            try:
                fields = json_fields({"json": first.read_bytes()}) if first is not None else {}
            except OSError:
                return  # an unreadable sample fails its unit, later
            check_keep(self.keep, fields, f"the first sample's json in shard folder {self.root / self._units[0]}")

    def _samples(self, unit: str) -> dict[str, dict[str, Path]]:
        folder = self.root / unit
        try:
            paths = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.name)
        except OSError as error:
            raise unit_error(unit, f"cannot read shard folder {folder}", error) from None
        samples: dict[str, dict[str, Path]] = {}
        for path in paths:
            key, extension = _split(path.name)
            if extension in IMAGE_EXTENSIONS or extension in _SIDECAR_EXTENSIONS:
                samples.setdefault(key, {})[extension] = path
        return samples

    def read(self, unit: str, batch_rows: int) -> Iterator[RowBatch]:
        samples = self._samples(unit)
        sidecars = Sidecars.beside(self.root / unit)
        with_image = sum(1 for members in samples.values() if any(e in members for e in IMAGE_EXTENSIONS))
        note = checked_count(unit, samples=with_image, successes=sidecars.successes(unit), complete=True,
                             allow_partial=self.allow_partial, where=f"shard folder {self.root / unit}")
        failures = sidecars.failures(unit)
        keys = sorted_naturally(samples)
        for start in range(0, len(keys), batch_rows):
            chunk = keys[start:start + batch_rows]
            batch = RowBatch(keys=[], captions=[], images=[], extras=[], rows=len(chunk), skipped=Counter())
            for key in chunk:
                members = samples[key]
                image_path = next((members[e] for e in IMAGE_EXTENSIONS if e in members), None)
                try:
                    texts = {e: members[e].read_bytes() for e in _SIDECAR_EXTENSIONS if e in members}
                except OSError as error:
                    raise unit_error(unit, f"cannot read a caption of {key}", error) from None
                _, caption, problem = sample_row({**texts, **({"jpg": b""} if image_path else {})})
                if problem is not None:
                    batch.skipped[problem] += 1
                    continue
                batch.keys.append(key)
                batch.captions.append(caption)
                batch.images.append(ImageRef(name=str(image_path), path=image_path))
                batch.extras.append(sample_extras(texts, self.keep, f"{unit}/{image_path.name}"))
            yield batch
        failed = failed_batch(failures)
        if failed is not None:
            yield failed
        if note is not None:
            yield RowBatch(keys=[], captions=[], images=[], rows=0, partial=True, note=note)
