"""What img2dataset writes beside each shard, and how a shard's samples are checked against it.

Beside shard `00000` (a `00000.tar`, or a `00000/` folder in its *files* layout)
img2dataset writes `00000.parquet`, one row per sample it tried, with its
`status` (`success`, `failed_to_download`, `failed_to_resize`), and, once the
shard is finished, `00000_stats.json` with the count of `successes`. The
samples that failed are in the parquet only: they are counted as skipped
under their status. A shard holding fewer samples than its successes is
incomplete (still being written, or cut short) and fails, unless taken with
`--allow-partial`.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .base import LIKELY_CAUSES, RowBatch, natural_key, unit_error

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
SUCCESS = "success"


def split_name(name: str) -> tuple[str, str]:
    """(key, extension) of a sample's file: its path up to the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


@dataclass(frozen=True)
class Sidecars:
    """The parquet and stats files of one shard (paths that may not exist)."""

    parquet: Path
    stats: Path

    @classmethod
    def beside(cls, shard: Path) -> Sidecars:
        stem = shard.name[:-len(".tar")] if shard.name.endswith(".tar") else shard.name
        return cls(shard.with_name(f"{stem}.parquet"), shard.with_name(f"{stem}_stats.json"))

    def files(self) -> list[Path]:
        return [p for p in (self.parquet, self.stats) if p.is_file()]

    def successes(self, unit: str) -> int | None:
        """The samples img2dataset wrote: `successes` of the stats file, else the parquet's; None if unknown."""
        if self.stats.is_file():
            try:
                value = json.loads(self.stats.read_text(encoding="utf-8")).get("successes")
            except (OSError, ValueError, AttributeError) as error:
                raise unit_error(unit, f"cannot read {self.stats}", error) from None
            if isinstance(value, int):
                return value
        statuses = self._statuses(unit)
        return None if statuses is None else statuses[SUCCESS]

    def failures(self, unit: str) -> Counter:
        """The samples that failed, by status (the skip reason they are counted under)."""
        statuses = self._statuses(unit) or Counter()
        return Counter({status: n for status, n in statuses.items() if status != SUCCESS})

    def _statuses(self, unit: str) -> Counter | None:
        if not self.parquet.is_file():
            return None
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.parquet)
            if "status" not in parquet.schema_arrow.names:
                return None
            values = parquet.read(columns=["status"]).column(0).to_pylist()
        except Exception as error:  # noqa: BLE001 - pyarrow raises its own kinds for bad files
            raise unit_error(unit, f"cannot read {self.parquet}", error) from None
        return Counter(_reason(v) for v in values)


def _reason(status: object) -> str:
    text = re.sub(r"[^a-z0-9]+", "_", str(status or "unknown").strip().lower()).strip("_")
    return text or "unknown"


def failed_batch(failures: Counter) -> RowBatch | None:
    """The failed samples as a batch of skipped rows; None when there are none."""
    total = sum(failures.values())
    if not total:
        return None
    return RowBatch(keys=[], captions=[], images=[], rows=total, skipped=Counter(failures))


def checked_count(unit: str, *, samples: int, successes: int | None, complete: bool, allow_partial: bool,
                  where: str) -> str | None:
    """A note for a shard taken incomplete, None for a whole one; UnitReadError for an incomplete one."""
    problems = []
    if not complete:
        problems.append(f"{where} has no end-of-archive blocks (it is still being written, or was cut short)")
    if successes is not None and samples < successes:
        problems.append(f"{where} holds {samples} samples but img2dataset counted {successes} successes")
    if not problems:
        return None
    if not allow_partial:
        raise unit_error(unit, "incomplete shard", "; ".join(problems)
                         + ": rerun when it is complete, or pass --allow-partial to take the samples it has")
    of = f" of {successes}" if successes is not None and samples < successes else ""
    return f"partial shard taken with --allow-partial: {samples}{of} samples ({'; '.join(problems)})"


def inspect_tar(path: Path, unit: str) -> tuple[bool, int]:
    """(whether the tar ends with its two end-of-archive blocks, samples that have an image).

    A tar cut at a member boundary reads without error but lacks the zero blocks
    that end every complete archive: that is how a shard still being written looks.
    """
    try:
        with tarfile.open(path, mode="r:*") as tar:
            members = tar.getmembers()
            tar.fileobj.seek(tar.offset)
            tail = tar.fileobj.read(2 * tarfile.BLOCKSIZE)
    except FileNotFoundError:
        raise unit_error(unit, "missing file", f"{path} does not exist") from None
    except (OSError, tarfile.TarError, EOFError) as error:
        raise unit_error(unit, f"cannot read shard {path}", error) from None
    complete = len(tail) == 2 * tarfile.BLOCKSIZE and not tail.strip(b"\0")
    keys = {split_name(m.name)[0] for m in members if m.isfile() and split_name(m.name)[1] in IMAGE_EXTENSIONS}
    return complete, len(keys)


def sample_cause(reason: str) -> str:
    """Likely causes for img2dataset-style samples ({key}.jpg, {key}.txt, {key}.json)."""
    if reason == "missing_image":
        return f"no sample has an image ({', '.join('.' + e for e in IMAGE_EXTENSIONS)})"
    if reason == "empty_caption":
        return "no sample has a caption (a .txt, or a json with `caption`)"
    return LIKELY_CAUSES.get(reason, "")


def sorted_naturally(names) -> list[str]:
    return sorted(names, key=natural_key)
