"""Corpus sources for `xmore ingest`: what users bring, split into resumable work units.

- `embeddings`: a clip-retrieval embeddings folder (img_emb/, metadata/; LAION's releases)
- `webdataset`: tar shards as img2dataset writes them
- `folder`: a folder of images with captions.csv / captions.jsonl / captions.parquet

`open_source(path)` detects the kind from the path; `kind=` forces it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInputError, CaptionsError
from .base import SKIP_REASONS, ImageRef, RowBatch, Source

KINDS = ("embeddings", "webdataset", "folder")


def detect_kind(path: Path) -> str | None:
    from . import embeddings, folder, webdataset

    if path.is_dir() and embeddings.looks_like(path):
        return "embeddings"
    if webdataset.looks_like(path):
        return "webdataset"
    if folder.looks_like(path):
        return "folder"
    return None


def open_source(
    path: str | Path,
    *,
    kind: str | None = None,
    captions: str | Path | None = None,
    text_emb: str | Path | None = None,
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
                f"no captions file in {path}: expected captions.csv, captions.jsonl or captions.parquet "
                "(or pass --captions FILE); nor is it a clip-retrieval embeddings folder (img_emb/, metadata/) "
                "or a folder of webdataset .tar shards"
            )
        raise BadInputError(f"{path} is not a corpus: give a folder, or a .tar shard")
    if text_emb is not None and kind != "embeddings":
        raise BadInputError("--text-emb applies to clip-retrieval embeddings folders only")
    if kind == "embeddings":
        from .embeddings import EmbeddingsFolder

        return EmbeddingsFolder(path, text_emb=text_emb)
    if kind == "webdataset":
        from .webdataset import WebdatasetShards

        return WebdatasetShards(path)
    from .folder import ImageFolder

    return ImageFolder(path, captions=captions)


__all__ = ["KINDS", "SKIP_REASONS", "ImageRef", "RowBatch", "Source", "detect_kind", "open_source"]
