"""Corpus sources for `xmore ingest`: what users bring, split into resumable work units.

- `embeddings`: a clip-retrieval embeddings folder (img_emb/, metadata/; LAION's releases)
- `webdataset`: tar shards as img2dataset writes them
- `files`: img2dataset's default layout, a folder per shard of {key}.jpg/.txt/.json
- `folder`: a folder of images with a captions file (captions.* or Hugging Face's metadata.*)

`open_source(path)` detects the kind from the path; `kind=` forces it. Every kind
keeps a url, the image's source-relative path and the --keep-columns columns
in each pair's payload (`payload`).
"""

from __future__ import annotations

from pathlib import Path

from ..corpus import CAPTION_FILE_NAMES, Columns
from ..errors import BadInputError, CaptionsError
from .base import SKIP_REASONS, ImageRef, RowBatch, Source

KINDS = ("embeddings", "webdataset", "files", "folder")


def detect_kind(path: Path) -> str | None:
    from . import embeddings, files, folder, webdataset

    if path.is_dir() and embeddings.looks_like(path):
        return "embeddings"
    if webdataset.looks_like(path):
        return "webdataset"
    if folder.looks_like(path):
        return "folder"
    if files.looks_like(path):
        return "files"
    return None


def open_source(
    path: str | Path,
    *,
    kind: str | None = None,
    captions: str | Path | None = None,
    text_emb: str | Path | None = None,
    columns: Columns = Columns(),
    allow_partial: bool = False,
) -> Source:
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path} does not exist")
    if kind is not None and kind not in KINDS:
        raise BadInputError(f"unknown source format {kind!r}: choose one of {', '.join(KINDS)}")
    if kind is None:
        kind = "folder" if captions is not None else detect_kind(path)
    if kind is None:
        if path.is_dir():
            # The image-folder layout is the one whose mistakes are most common: say what is missing.
            raise CaptionsError(
                f"no captions file in {path}: expected {', '.join(CAPTION_FILE_NAMES)} "
                "(or pass --captions FILE); nor is it a clip-retrieval embeddings folder (img_emb/, metadata/), "
                "a folder of webdataset .tar shards, or img2dataset's shard folders (00000/, …)"
            )
        raise BadInputError(f"{path} is not a corpus: give a folder, or a .tar shard")
    _refuse_options_of_other_kinds(kind, text_emb=text_emb, columns=columns, allow_partial=allow_partial)
    if kind == "embeddings":
        from .embeddings import EmbeddingsFolder

        return EmbeddingsFolder(path, text_emb=text_emb, caption_column=columns.caption, keep=columns.keep)
    if kind == "webdataset":
        from .webdataset import WebdatasetShards

        return WebdatasetShards(path, allow_partial=allow_partial, keep=columns.keep)
    if kind == "files":
        from .files import Img2datasetFiles

        return Img2datasetFiles(path, allow_partial=allow_partial, keep=columns.keep)
    from .folder import ImageFolder

    return ImageFolder(path, captions=captions, columns=columns)


def _refuse_options_of_other_kinds(kind: str, *, text_emb, columns: Columns, allow_partial: bool) -> None:
    """An option that this kind of source would ignore is an error, not silently dropped."""
    applies = {
        "--text-emb": (text_emb is not None, ("embeddings",), "clip-retrieval embeddings folders"),
        "--image-column": (columns.image is not None, ("folder",), "image folders with a captions file"),
        "--caption-column": (columns.caption is not None, ("folder", "embeddings"),
                             "image folders with a captions file and embeddings folders' metadata"),
        "--separator": (columns.separator is not None, ("folder",), "CSV captions files"),
        "--allow-partial": (allow_partial, ("webdataset", "files"), "img2dataset shards"),
    }
    for option, (given, kinds, what) in applies.items():
        if given and kind not in kinds:
            raise BadInputError(f"{option} applies to {what} only, not to a {kind} source")


__all__ = ["KINDS", "SKIP_REASONS", "Columns", "ImageRef", "RowBatch", "Source", "detect_kind", "open_source"]
