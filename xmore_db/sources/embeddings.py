"""A clip-retrieval embeddings folder, the layout of LAION's released embeddings.

    img_emb/img_emb_{N}.npy          coarse image embeddings (float16 or float32)
    text_emb/text_emb_{N}.npy        caption embeddings of the same CLIP (not used for `texts`)
    metadata/metadata_{N}.parquet    caption (caption/text column), optional key, url, ...

One unit per partition N (the number as written in the file name: LAION-5B pads
it, `_0000`, LAION-400M does not, `_0`), in natural order.
Image embeddings go into `images` as they are; captions are encoded with the fine
model, or their fine embeddings are read from `text_emb_{N}.npy` in a second
folder (`--text-emb DIR`, the files in DIR or in DIR/text_emb). Arrays are
memory-mapped and read a batch at a time, never whole.

Rows line up by index across the files of a partition. If their row counts
differ, the rows past the shortest file are skipped (`row_count_mismatch`): they
have no partner to be paired with. A partition whose vectors have the wrong
width skips all its rows (`wrong_size_embedding`); the first partition is
checked against the models before anything is written, so a misconfigured model
fails the whole run instead.

A pair keeps the metadata's `url`, its `image_path` (clip-retrieval's inference
output names each image so) as the payload `path`, and the --keep-columns
columns (`payload`); the first partition's metadata must have the chosen ones.
LAION's own `text_emb/` holds the image CLIP's caption embeddings, in the
coarse model's space: `--text-emb` takes it only when the fine model is the
coarse one (`check_models`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..corpus import CAPTION_COLUMNS
from ..errors import BadInputError, UnitReadError
from .base import (
    DUPLICATE_KEY,
    LIKELY_CAUSES,
    ROW_COUNT_MISMATCH,
    WRONG_SIZE_EMBEDDING,
    RowBatch,
    natural_key,
    unit_error,
)
from .payload import URL_COLUMN, check_keep, json_value, lookup

KIND = "embeddings"
_PARTITION = re.compile(r"img_emb_(\d+)\.npy")
KEY_COLUMNS = ("key",)
PATH_COLUMN = "image_path"
ACCEPTED_DTYPES = (np.float16, np.float32)


def looks_like(path: Path) -> bool:
    return (path / "img_emb").is_dir() and (path / "metadata").is_dir()


class EmbeddingsFolder:
    kind = KIND
    computes_images = False

    def __init__(self, root: str | Path, *, text_emb: str | Path | None = None, caption_column: str | None = None,
                 keep: tuple[str, ...] = ()):
        self.root = Path(root)
        self.caption_column, self.keep = caption_column, keep
        if not looks_like(self.root):
            raise BadInputError(
                f"{self.root} is not a clip-retrieval embeddings folder: expected img_emb/ and metadata/ in it"
            )
        self.text_emb_dir = None
        if text_emb is not None:
            folder = Path(text_emb)
            if (folder / "text_emb").is_dir():
                folder = folder / "text_emb"
            if not folder.is_dir():
                raise BadInputError(f"--text-emb {text_emb} is not a folder")
            self.text_emb_dir = folder
        self.computes_texts = self.text_emb_dir is None
        self._dims = (0, 0)  # the models' sizes, set by check()
        self._units = sorted(
            (m.group(1) for m in (_PARTITION.fullmatch(p.name) for p in (self.root / "img_emb").iterdir()) if m),
            key=natural_key,
        )

    def units(self) -> list[str]:
        return list(self._units)

    # -- files of a partition ---------------------------------------------

    def image_file(self, unit: str) -> Path:
        return self.root / "img_emb" / f"img_emb_{unit}.npy"

    def metadata_file(self, unit: str) -> Path:
        return self.root / "metadata" / f"metadata_{unit}.parquet"

    def text_file(self, unit: str) -> Path | None:
        return None if self.text_emb_dir is None else self.text_emb_dir / f"text_emb_{unit}.npy"

    def files(self, unit: str) -> list[Path]:
        return [p for p in (self.image_file(unit), self.metadata_file(unit), self.text_file(unit)) if p is not None]

    def likely_cause(self, reason: str) -> str:
        return LIKELY_CAUSES.get(reason, "")

    def estimate_rows(self, unit: str) -> int | None:
        try:
            return int(_open_npy(self.image_file(unit), unit).shape[0])
        except Exception:  # noqa: BLE001 - only a progress estimate
            return None

    def check(self, coarse_dim: int, fine_dim: int) -> None:
        self._dims = (coarse_dim, fine_dim)
        if not self._units:
            raise BadInputError(f"no img_emb/img_emb_N.npy files in {self.root}")
        first = self._units[0]
        if self.metadata_file(first).exists():
            try:
                parquet, _, _ = _open_parquet(self.metadata_file(first), first, self.caption_column)
            except UnitReadError as error:  # no caption column: every partition is likely the same
                raise BadInputError(str(error).split(": ", 1)[1]) from None
            check_keep(self.keep, parquet.schema_arrow.names, f"metadata file {self.metadata_file(first)}")
        for path, dim, role, collection in (
            (self.image_file(first), coarse_dim, "coarse", "images"),
            (self.text_file(first), fine_dim, "fine", "texts"),
        ):
            if path is None or not path.exists():
                continue
            try:
                array = _open_npy(path, first)
            except Exception:  # noqa: BLE001 - an unreadable partition fails as a unit, later
                continue
            if array.ndim == 2 and array.shape[1] != dim:
                advice = (f"configure the model that made them (XMORE_{role.upper()}_MODEL)" if role == "coarse" else
                          "--text-emb takes caption embeddings made with the fine model (LAION's own text_emb is "
                          "in the coarse model's space): omit --text-emb to encode the captions with the fine model")
                raise BadInputError(f"{path} holds {array.shape[1]}-d vectors but the {role} model makes {dim}-d "
                                    f"vectors for {collection!r}: {advice}")

    def check_models(self, provenance) -> None:
        """Refuse the folder's own text_emb/ for `texts` unless the fine model is the coarse one.

        clip-retrieval (and LAION) make text_emb with the CLIP that made img_emb: the
        coarse model's space. Vectors of the same width from another CLIP would pass
        the size check and rank captions at random.
        """
        if self.text_emb_dir is None or provenance.fine_model == provenance.coarse_model:
            return
        if self.text_emb_dir.resolve() == (self.root / "text_emb").resolve():
            raise BadInputError(
                f"--text-emb {self.text_emb_dir} is this folder's own text_emb/, made by the CLIP that made its "
                f"img_emb (the coarse model's space, {provenance.coarse_model}), but 'texts' holds the fine model's "
                f"({provenance.fine_model}): omit --text-emb to encode the captions with the fine model "
                "(--text-emb takes its own text_emb only when the fine model is the coarse one)")

    # -- reading ------------------------------------------------------------

    def read(self, unit: str, batch_rows: int) -> Iterator[RowBatch]:
        coarse_dim, fine_dim = self._dims
        images = _open_npy(self.image_file(unit), unit)
        text_path = self.text_file(unit)
        texts = None
        if text_path is not None:
            if not text_path.exists():
                raise unit_error(unit, "missing file", f"{text_path} does not exist")
            texts = _open_npy(text_path, unit)
        meta_path = self.metadata_file(unit)
        if not meta_path.exists():
            raise unit_error(unit, "missing file", f"{meta_path} does not exist")
        parquet, caption_column, key_column = _open_parquet(meta_path, unit, self.caption_column)

        counts = [images.shape[0], parquet.metadata.num_rows] + ([texts.shape[0]] if texts is not None else [])
        n, extra = min(counts), max(counts) - min(counts)
        if images.shape[1] != coarse_dim or (texts is not None and texts.shape[1] != fine_dim):
            yield RowBatch(keys=[], captions=[], rows=n + extra,
                           skipped=Counter({WRONG_SIZE_EMBEDDING: n + extra}))
            return
        names = lookup(parquet.schema_arrow.names)
        kept = {lower: names[lower] for lower in (URL_COLUMN, PATH_COLUMN, *(k.lower() for k in self.keep))
                if lower in names}
        columns = list(dict.fromkeys([caption_column, *([key_column] if key_column else []), *kept.values()]))
        seen: set[str] = set()
        start = 0
        try:
            for record_batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                if start >= n:
                    break
                stop = min(start + record_batch.num_rows, n)
                size = stop - start
                captions = [c if isinstance(c, str) else ""
                            for c in record_batch.column(caption_column).to_pylist()[:size]]
                if key_column:
                    keys = [str(k) for k in record_batch.column(key_column).to_pylist()[:size]]
                else:
                    keys = [f"{unit}/{row}" for row in range(start, stop)]
                batch = RowBatch(
                    keys=keys, captions=captions, rows=size, extras=_extras(record_batch, kept, self.keep, size),
                    image_vectors=np.asarray(images[start:stop], dtype=np.float32),
                    text_vectors=None if texts is None else np.asarray(texts[start:stop], dtype=np.float32),
                )
                duplicate = [key in seen or seen.add(key) for key in keys]
                if any(duplicate):
                    batch = batch.keep([not d for d in duplicate], [DUPLICATE_KEY if d else None for d in duplicate])
                start = stop
                yield batch
        except OSError as error:
            raise unit_error(unit, f"cannot read {meta_path}", error) from None
        except Exception as error:
            if type(error).__module__.startswith("pyarrow"):
                raise unit_error(unit, f"cannot read {meta_path}", error) from None
            raise
        if extra:
            yield RowBatch(keys=[], captions=[], rows=extra, skipped=Counter({ROW_COUNT_MISMATCH: extra}))


def _extras(record_batch, kept: dict[str, str], keep: tuple[str, ...], size: int) -> list[dict]:
    """Each row's payload fields, as `payload.extras` makes them: url, image_path as `path`, the
    --keep-columns columns. Built a column at a time: a row dict per row cost more than the reading."""
    values = {lower: record_batch.column(name).to_pylist()[:size] for lower, name in kept.items()}
    out: list[dict] = [{} for _ in range(size)]
    for row, url in zip(out, values.get(URL_COLUMN, ()), strict=False):
        if isinstance(url, str) and url.strip():
            row["url"] = url.strip()
    for row, path in zip(out, values.get(PATH_COLUMN, ()), strict=False):
        if path not in (None, ""):
            row["path"] = str(path)
    chosen = [(name, values[name.lower()]) for name in keep if name.lower() in values]
    if chosen:
        for i, row in enumerate(out):
            row["metadata"] = {name: json_value(column[i]) for name, column in chosen}
    return out


def _open_npy(path: Path, unit: str) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise unit_error(unit, "missing file", f"{path} does not exist") from None
    except (OSError, ValueError) as error:
        raise unit_error(unit, f"cannot read {path}", error) from None
    if array.ndim != 2:
        raise unit_error(unit, f"cannot use {path}", f"expected a 2-d array, got shape {array.shape}")
    if array.dtype not in ACCEPTED_DTYPES:
        raise unit_error(unit, f"cannot use {path}", f"expected float16 or float32, got {array.dtype}")
    return array


def _open_parquet(path: Path, unit: str, wanted: str | None = None):
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # noqa: BLE001 - pyarrow raises its own kinds for bad files
        raise unit_error(unit, f"cannot read {path}", error) from None
    names = {name.lower(): name for name in parquet.schema_arrow.names}
    accepted = (wanted.lower(),) if wanted else CAPTION_COLUMNS
    caption = next((names[c] for c in accepted if c in names), None)
    if caption is None:
        what = f"no caption column {wanted!r}" if wanted else (
            f"no caption column (one of {', '.join(CAPTION_COLUMNS)}; or name it with --caption-column)")
        raise unit_error(unit, f"cannot use {path}", f"{what}; found {', '.join(names.values())}")
    key = next((names[c] for c in KEY_COLUMNS if c in names), None)
    return parquet, caption, key
