"""Search the corpus' images by a text or an image, as clip-retrieval queries its image index.

A text goes through the coarse model's text tower, an image through its image
tower, and both are compared with the stored image embeddings of `images` (the
coarse model's space: for LAION, ViT-B/32's). Captions are not searched here:
`texts` has no graph by design (it is only ever scanned under an id filter).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import BadInputError
from .retrieval import describe

if TYPE_CHECKING:
    from .images import ImageInput
    from .workspace import Workspace

# How many more candidates to fetch when near-duplicates are removed, before giving up on filling the page.
DEDUP_OVERFETCH = 3


@dataclass(frozen=True)
class SearchHit:
    """One hit: rank (1-based, after the offset), cosine score, and what is stored to find the pair again."""

    rank: int
    score: float
    pair_id: str
    corpus: str
    key: str
    caption: str
    url: str | None = None
    path: str | None = None
    metadata: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def near_duplicates(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """(n,) True for each row whose cosine to an earlier kept row is at least `threshold` (greedy, in order).

    vectors (n, d) L2-normalised; a NaN row (no stored vector) is never a duplicate.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    dropped = np.zeros(len(vectors), dtype=bool)
    kept: list[int] = []
    for i, row in enumerate(vectors):
        if np.isnan(row).any():
            continue
        if kept and float(np.max(vectors[kept] @ row)) >= threshold:
            dropped[i] = True
        else:
            kept.append(i)
    return dropped


def search(workspace: Workspace, *, text: str | None = None, image: ImageInput | None = None, n: int = 20,
           offset: int = 0, corpora: list[str] | None = None, dedup: float | None = None) -> list[SearchHit]:
    """The `n` pairs whose stored image is nearest to the text or image, after skipping `offset`.

    `corpora` keeps only those corpora; `dedup` (a cosine in (0, 1]) drops a hit whose stored image is
    that close to a better one, as clip-retrieval's `deduplicate` does.
    """
    from .images import as_pil

    if (text is None) == (image is None):
        raise BadInputError("search needs a text or an image (one of the two)")
    if text is not None and not text.strip():
        raise BadInputError("the search text is empty")
    if n < 1 or offset < 0:
        raise BadInputError(f"-n must be at least 1 and --offset at least 0, got {n} and {offset}")
    if dedup is not None and not 0 < dedup <= 1:
        raise BadInputError(f"--dedup is a cosine similarity in (0, 1], got {dedup}")
    encoder = workspace.encoder("coarse")
    query = encoder.encode_texts([text]) if text is not None else encoder.encode_images([as_pil(image)])
    store = workspace.store()
    wanted = n + offset
    limit = wanted * (DEDUP_OVERFETCH if dedup is not None else 1)
    ef = workspace.settings.hnsw_ef  # None: the store's calibrated beam, at least `limit`
    hits = store.coarse_search(query, limit=limit, hnsw_ef=None if ef is None else max(ef, limit),
                               corpora=corpora)[0]
    if dedup is not None and hits:
        dropped = near_duplicates(store.image_vectors([h.pair_id for h in hits]), dedup)
        hits = [h for h, drop in zip(hits, dropped, strict=True) if not drop]
    page = describe(store, hits[offset:wanted])
    return [SearchHit(rank=offset + i + 1, score=h.score, pair_id=h.pair_id, corpus=h.corpus, key=h.key,
                      caption=h.caption, url=h.url, path=h.path, metadata=dict(h.metadata))
            for i, h in enumerate(page)]


def write_hits(hits: list[SearchHit], path) -> None:
    """Hits as Parquet (.parquet) or JSON lines (.jsonl), written atomically."""
    import json
    from pathlib import Path

    from .files import write_atomically

    path = Path(path)
    rows = [h.to_dict() for h in hits]
    if path.suffix == ".jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        write_atomically(path, lambda f: f.write(text.encode("utf-8")))
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        for row in rows:
            row["metadata"] = json.dumps(row["metadata"], ensure_ascii=False)
        table = pa.Table.from_pylist(rows) if rows else pa.table({k: [] for k in SearchHit.__dataclass_fields__})
        write_atomically(path, lambda f: pq.write_table(table, f))
    else:
        raise BadInputError(f"--output {path}: write .parquet or .jsonl")
