"""Thumbnails of stored pairs' images: find the image where the pair says it is, shrink it, keep it on disk.

A pair's `texts` payload records where its image came from (sources.payload):
`path`, relative to its corpus' source (a folder's or img2dataset files' image,
`{shard}/{member}` for a webdataset sample, clip-retrieval's `image_path`), and
a `url` when the source had one. The unit ledger records each corpus' source
(the folder, or the one shard ingested) and its kind, so together they name a
file, or a member of a tar shard, on the machine that ingested the corpus.

Only files under the corpus' source folder are read: a payload `path` that
leads elsewhere (`..`, an absolute path, a link out) is refused, so whoever
can ingest cannot make the service read other files. A pair with only a `url`
has nothing here to read; `locate` says so rather than fetching it.

A shard member is read at its offset in the tar (`shard_members` lists each
member's data offset and size from the tar headers, skipping the data, once per
shard version), never by unpacking the shard. Thumbnails are JPEGs no larger
than `size` x `size`, cached by pair id and size (`ThumbnailCache`): a corpus
re-ingested with other images under the same keys keeps its old thumbnails
until the cache folder is deleted.
"""

from __future__ import annotations

import functools
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UnknownCorpusError, UnknownPairError
from .files import write_atomically
from .pairs import resolve
from .store.types import IMAGES, TEXTS

if TYPE_CHECKING:
    from .history.units import UnitLedger
    from .store import VectorStore

JPEG_QUALITY = 85
WEBDATASET = "webdataset"


@dataclass(frozen=True)
class PairImage:
    """Where a pair's image is: a `file`, or `member` of the tar `shard`; `missing` says why neither, in one line."""

    pair_id: str
    corpus: str | None
    url: str | None
    file: Path | None = None
    shard: Path | None = None
    member: str | None = None
    missing: str | None = None

    @property
    def where(self) -> str:
        return str(self.file) if self.file is not None else f"member {self.member} of {self.shard}"


def locate(store: VectorStore, ledger: UnitLedger, ref: str) -> PairImage:
    """Where the image of pair `ref` (a pair id or CORPUS:KEY) is; UnknownPairError when no collection holds it."""
    pid, _, _ = resolve(ref)
    texts = store.points(TEXTS, [pid]).get(pid)
    if texts is None:
        if store.points(IMAGES, [pid]).get(pid) is None:
            raise UnknownPairError(f"no pair {ref} in the vector store")
        return PairImage(pid, None, None, missing=f"pair {pid} has an image vector but no payload in `texts`, so "
                                                  "where its image is is not recorded")
    payload = texts.payload
    corpus, path, url = payload.get("corpus"), payload.get("path"), payload.get("url")
    unreadable = PairImage(pid, corpus, url)
    if not path:
        only = f"only its url {url}" if url else "no url either"
        return _missing(unreadable, f"pair {pid} keeps no image on this server, {only}")
    try:
        units = ledger.units(corpus)
    except UnknownCorpusError:
        return _missing(unreadable, f"corpus {corpus} has no ingest record here, so its images' folder is unknown")
    source = Path(units[0].source)
    root = source if source.is_dir() else source.parent  # a corpus ingested from one shard records the shard
    if units[0].kind == WEBDATASET:
        unit = next((u.unit for u in units if path.startswith(f"{u.unit}/")), None)
        if unit is None:
            return _missing(unreadable, f"pair {pid}'s image {path} names no shard of corpus {corpus}")
        shard = _inside(root, unit)
        if shard is None or not shard.is_file():
            return _missing(unreadable, f"shard {root / unit} of corpus {corpus} is not on this server")
        return PairImage(pid, corpus, url, shard=shard, member=path[len(unit) + 1:])
    file = _inside(root, path)
    if file is None:
        return _missing(unreadable, f"pair {pid}'s image {path} is outside its corpus' folder {root}: not served")
    if not file.is_file():
        return _missing(unreadable, f"pair {pid}'s image {file} is not on this server (moved or deleted?)")
    return PairImage(pid, corpus, url, file=file)


def _missing(found: PairImage, why: str) -> PairImage:
    return PairImage(found.pair_id, found.corpus, found.url, missing=why)


def _inside(root: Path, relative: str) -> Path | None:
    """root/relative, if it resolves (links followed) to a place under root; None otherwise."""
    base = root.resolve()
    candidate = (base / relative).resolve()
    return candidate if candidate.is_relative_to(base) else None


def read_image(found: PairImage) -> bytes:
    """The image's bytes as stored; OSError (FileNotFoundError for a member not in its shard) when unreadable."""
    if found.file is not None:
        return found.file.read_bytes()
    if found.shard is None or found.member is None:
        raise FileNotFoundError(found.missing or f"pair {found.pair_id} has no image here")
    stat = found.shard.stat()
    members = shard_members(str(found.shard), stat.st_size, stat.st_mtime_ns)
    if found.member not in members:
        raise FileNotFoundError(f"{found.shard} has no member {found.member}")
    offset, size = members[found.member]
    with found.shard.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        raise OSError(f"{found.shard} is truncated at member {found.member}")
    return data


@functools.lru_cache(maxsize=64)
def shard_members(shard: str, size: int, mtime_ns: int) -> dict[str, tuple[int, int]]:
    """{member name: (data offset, size)} of a plain tar, from its headers; keyed by the shard's size and
    modification time, so a rewritten shard is read again."""
    try:
        with tarfile.open(shard, mode="r:") as tar:  # seekable: the data is skipped, only headers are read
            return {m.name: (m.offset_data, m.size) for m in tar if m.isfile()}
    except tarfile.TarError as error:
        raise OSError(f"cannot read shard {shard}: {error}") from None


def make_thumbnail(data: bytes, size: int) -> bytes:
    """A JPEG no larger than size x size, the image's aspect kept, EXIF rotation applied, transparency on white.

    OSError for data Pillow cannot read (decompression bombs included)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, far cheaper for large images
            image = ImageOps.exif_transpose(image)
            image.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = Image.new("RGB", rgba.size, (255, 255, 255))
                image.paste(rgba, mask=rgba.getchannel("A"))
            else:
                image = image.convert("RGB")
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=JPEG_QUALITY)
            return out.getvalue()
    except UnidentifiedImageError:
        raise OSError("not an image format Pillow can read") from None
    except (Image.DecompressionBombError, ValueError, SyntaxError, EOFError) as error:
        raise OSError(str(error) or type(error).__name__) from None


class ThumbnailCache:
    """Thumbnails on disk: root/SIZE/ab/PAIR_ID.jpg (ab: the id's first two characters, to keep folders small)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, pair_id: str, size: int) -> Path:
        return self.root / str(size) / pair_id[:2] / f"{pair_id}.jpg"

    def get(self, pair_id: str, size: int) -> bytes | None:
        try:
            return self.path(pair_id, size).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, pair_id: str, size: int, data: bytes) -> None:
        """Written atomically: a reader sees the whole thumbnail or none (two writers of one write the same)."""
        write_atomically(self.path(pair_id, size), lambda handle: handle.write(data))
