"""Two-stage cross-modal retrieval: coarse image neighbours, then captions ranked against the query image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .store import CaptionHit, ImageHit, VectorStore
from .store.checks import payload_hit
from .store.types import TEXTS


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
    corpora: list[str] | None = None,
) -> list[Retrieval]:
    """Retrieve captions for a batch of B queries in two batched searches.

    coarse_queries: (B, coarse_dim) image embeddings in the corpus' image space.
    fine_queries: (B, fine_dim) image embeddings of the fine model, compared
    directly with the stored caption embeddings of the coarse candidates.
    `hnsw_ef` widens the coarse graph search (recall against speed); `corpora` keeps only those corpora.
    """
    coarse = store.coarse_search(coarse_queries, limit=coarse_k, hnsw_ef=hnsw_ef, corpora=corpora)
    candidates = [[hit.pair_id for hit in hits] for hits in coarse]
    fine = store.fine_search(fine_queries, candidates, limit=fine_k)
    return [Retrieval(coarse=c, captions=f) for c, f in zip(coarse, fine, strict=True)]


def describe(store: VectorStore, hits: list[ImageHit]) -> list[CaptionHit]:
    """Coarse (image) hits with what caption hits carry: caption, corpus, key, url, path, metadata.

    One batched read of the hits' `texts` payloads (0.9 ms for 128 hits on the
    embedded store with 20,000 pairs); the `images` collection stores only corpus and key.
    """
    stored = store.points(TEXTS, [hit.pair_id for hit in hits])
    return [payload_hit(hit.pair_id, hit.score, stored[hit.pair_id].payload if hit.pair_id in stored else {})
            for hit in hits]
