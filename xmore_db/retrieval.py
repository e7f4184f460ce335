"""Two-stage cross-modal retrieval: coarse image neighbours, then captions ranked against the query image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .store import CaptionHit, ImageHit, VectorStore


@dataclass(frozen=True)
class Retrieval:
    coarse: list[ImageHit]
    captions: list[CaptionHit]


def retrieve(
    store: VectorStore,
    coarse_queries: np.ndarray,
    fine_queries: np.ndarray,
    *,
    coarse_k: int,
    fine_k: int,
    hnsw_ef: int | None = None,
) -> list[Retrieval]:
    """Retrieve captions for a batch of B queries in two batched searches.

    coarse_queries: (B, coarse_dim) image embeddings in the corpus' image space.
    fine_queries: (B, fine_dim) image embeddings of the fine model, compared
    directly with the stored caption embeddings of the coarse candidates.
    `hnsw_ef` widens the coarse graph search (recall against speed).
    """
    coarse = store.coarse_search(coarse_queries, limit=coarse_k, hnsw_ef=hnsw_ef)
    candidates = [[hit.pair_id for hit in hits] for hits in coarse]
    fine = store.fine_search(fine_queries, candidates, limit=fine_k)
    return [Retrieval(coarse=c, captions=f) for c, f in zip(coarse, fine, strict=True)]
