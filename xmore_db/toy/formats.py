"""Small corpora in the formats users bring, for tests, the demo and benchmarks.

`write_embeddings_folder` writes a clip-retrieval folder with random unit
vectors (and optionally a second folder of fine text embeddings, as for
`--text-emb`); `write_shards` writes img2dataset-style webdataset shards with
drawn images. Nothing here is meaningful data.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import numpy as np


def unit_rows(rng: np.random.Generator, n: int, dim: int, dtype=np.float16) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(dtype)


def write_embeddings_folder(
    folder: str | Path,
    sizes: list[int],
    *,
    coarse_dim: int,
    fine_dim: int | None = None,
    text_emb_folder: str | Path | None = None,
    dtype=np.float16,
    seed: int = 0,
    digits: int = 4,
    key_column: bool = False,
) -> Path:
    """Partitions of sizes[i] rows: img_emb, text_emb (coarse-sized), metadata; fine text embeddings
    into `text_emb_folder` when given (needs fine_dim)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    for name in ("img_emb", "text_emb", "metadata"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    if text_emb_folder is not None:
        Path(text_emb_folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    offset = 0
    for index, n in enumerate(sizes):
        part = f"{index:0{digits}d}"
        np.save(folder / "img_emb" / f"img_emb_{part}.npy", unit_rows(rng, n, coarse_dim, dtype))
        np.save(folder / "text_emb" / f"text_emb_{part}.npy", unit_rows(rng, n, coarse_dim, dtype))
        if text_emb_folder is not None:
            np.save(Path(text_emb_folder) / f"text_emb_{part}.npy", unit_rows(rng, n, fine_dim, dtype))
        columns = {
            "caption": [f"synthetic caption {offset + i} of partition {part}" for i in range(n)],
            "url": [f"https://example.com/{offset + i}.jpg" for i in range(n)],
        }
        if key_column:
            columns["key"] = [f"{offset + i:09d}" for i in range(n)]
        pq.write_table(pa.table(columns), folder / "metadata" / f"metadata_{part}.parquet")
        offset += n
    return folder


def write_shards(folder: str | Path, sizes: list[int], *, seed: int = 0) -> list[Path]:
    """img2dataset-style shards {i:05d}.tar with {key}.jpg, {key}.txt, {key}.json per sample."""
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for shard, n in enumerate(sizes):
        path = folder / f"{shard:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(n):
                key = f"{shard:05d}{i:04d}"
                colour, name = rng.choice(_COLOURS)
                image = Image.new("RGB", (48, 48), (240, 240, 240))
                x, y = rng.randint(0, 20), rng.randint(0, 20)
                ImageDraw.Draw(image).ellipse((x, y, x + 24, y + 24), fill=colour)
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG")
                caption = f"a {name} circle, sample {key}"
                add_member(tar, f"{key}.jpg", buffer.getvalue())
                add_member(tar, f"{key}.txt", caption.encode())
                add_member(tar, f"{key}.json", json.dumps({"key": key, "caption": caption}).encode())
        paths.append(path)
    return paths


_COLOURS = [((220, 40, 40), "red"), ((40, 170, 60), "green"), ((40, 70, 220), "blue")]


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
