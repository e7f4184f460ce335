"""X-MoRe classification of a batch of images into a named stream.

Embeddings, searches and caption encoding run batched; only the history write
is per query, because each query's weights depend on the stream so far.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import method
from .history import Decision, StreamStats
from .retrieval import retrieve
from .store import CaptionHit

DECODE_THREADS = 2

if TYPE_CHECKING:
    from PIL import Image

    from .workspace import Workspace


@dataclass(frozen=True)
class Classification:
    query: str
    stream: str
    seq: int
    prediction: str
    normalize: str
    labels: list[str]
    probabilities: list[float]
    p_image: list[float]
    p_text: list[float] | None
    c_image: float
    c_text: float | None
    w_image: float
    w_text: float
    no_captions: bool
    captions: list[CaptionHit] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def embed_images(workspace: Workspace, images: list[Image.Image], roles: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Image embeddings per role, computed once per distinct model."""
    by_spec: dict[str, np.ndarray] = {}
    out: dict[str, np.ndarray] = {}
    for role in roles:
        key = str(workspace.spec(role))
        if key not in by_spec:
            by_spec[key] = workspace.encoder(role).encode_images(images)
        out[role] = by_spec[key]
    return out


@dataclass(frozen=True)
class Scored:
    """One query's predictions before the history weighs them."""

    query: str
    p_image: np.ndarray
    p_text: np.ndarray | None
    c_image: float
    c_text: float | None
    captions: list[CaptionHit]


def embed_captions(workspace: Workspace, hits: list[CaptionHit]) -> np.ndarray:
    """The classifier's embeddings of the hits' captions, (n, dim).

    Read from the caption cache where it holds this classifier's vectors; the
    rest are encoded, all in one encoder call.
    """
    classifier = workspace.encoder("classifier")
    out = np.zeros((len(hits), classifier.dim), dtype=np.float32)
    missing = np.arange(len(hits))
    if hits and workspace.reads_caption_cache:
        cached = workspace.store().caption_vectors([hit.pair_id for hit in hits])
        found = ~np.isnan(cached).any(axis=1)
        out[found] = cached[found]
        missing = np.flatnonzero(~found)
    if len(missing):
        out[missing] = classifier.encode_texts([hits[i].caption for i in missing])
    return out


def score_images(workspace: Workspace, images: list[Image.Image], queries: list[str], *,
                 labels: list[str]) -> list[Scored]:
    """Encode, retrieve and score a batch: three image encodings, two batched searches, one caption encoding."""
    from .models import class_embeddings

    settings = workspace.settings
    store = workspace.store()
    classifier = workspace.encoder("classifier")
    prompts = class_embeddings(classifier, labels, settings.template, workspace.prompt_cache_dir)
    scale = classifier.logit_scale

    embeddings = embed_images(workspace, images, ("classifier", "coarse", "fine"))
    p_images = method.class_probabilities(embeddings["classifier"], prompts, scale)
    c_images = method.confidence(p_images)

    retrievals = retrieve(store, embeddings["coarse"], embeddings["fine"],
                          coarse_k=settings.coarse_k, fine_k=settings.fine_k, hnsw_ef=settings.hnsw_ef)
    captions = [r.captions for r in retrievals]
    caption_embeddings = embed_captions(workspace, [hit for hits in captions for hit in hits])
    bounds = np.cumsum([0] + [len(hits) for hits in captions])

    scored = []
    for i, query in enumerate(queries):
        p_text = method.text_probabilities(caption_embeddings[bounds[i]:bounds[i + 1]], prompts, scale)
        scored.append(Scored(query=query, p_image=p_images[i], p_text=p_text, c_image=float(c_images[i]),
                             c_text=None if p_text is None else float(method.confidence(p_text)),
                             captions=captions[i]))
    return scored


def record_scored(workspace: Workspace, scored: list[Scored], *, labels: list[str],
                  stream: str) -> list[Classification]:
    """Append each query to the stream, in order; each one's weights depend on those before it."""
    normalize = workspace.settings.normalize
    return [_record(workspace, stream=stream, query=s.query, labels=labels, normalize=normalize,
                    p_image=s.p_image, p_text=s.p_text, c_image=s.c_image, c_text=s.c_text, captions=s.captions)
            for s in scored]


def classify_paths(workspace: Workspace, paths: list[Path], *, labels: list[str], stream: str,
                   on_start: Callable[[int], None] = lambda total: None,
                   on_progress: Callable[[int], None] = lambda n: None) -> list[Classification]:
    """Classify image files in order, with the stages of consecutive batches overlapped.

    Every image is decoded once up front (in parallel, then released) so that a
    corrupt file fails before the first history write. Then, per batch: the next
    batch decodes in a thread while this one is encoded and searched, and the
    previous batch's history writes run in a writer thread, in stream order.
    """
    from .images import load_image

    if not paths:
        return []
    workspace.store()
    workspace.history.check()
    batch = workspace.settings.batch_size
    chunks = [paths[i:i + batch] for i in range(0, len(paths), batch)]

    def decode(chunk: list[Path]) -> list[Image.Image]:
        return [load_image(path) for path in chunk]

    results: list[Classification] = []
    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as decoders, ThreadPoolExecutor(max_workers=1) as writer:
        for image in decoders.map(load_image, paths):
            image.close()
        for role in ("classifier", "coarse", "fine"):
            workspace.encoder(role)  # missing weights fail here, before any progress or write
        on_start(len(paths))
        next_images = decoders.submit(decode, chunks[0])
        writing: Future | None = None
        for i, chunk in enumerate(chunks):
            images = next_images.result()
            if i + 1 < len(chunks):
                next_images = decoders.submit(decode, chunks[i + 1])
            scored = score_images(workspace, images, [str(p) for p in chunk], labels=labels)
            for image in images:
                image.close()
            if writing is not None:
                results += writing.result()
                on_progress(len(chunks[i - 1]))
            writing = writer.submit(record_scored, workspace, scored, labels=labels, stream=stream)
        results += writing.result()
        on_progress(len(chunks[-1]))
    return results


def weigh(
    stats: StreamStats, *, normalize: str, p_image: np.ndarray, p_text: np.ndarray | None, c_image: float,
    c_text: float | None,
) -> tuple[np.ndarray, float, float]:
    """One query's ensemble given its stream's statistics, this query's confidences included.

    Returns (p, ĉ_I, ĉ_T); ĉ_T is 0 for a query without captions, which is then p_I alone.
    """
    w_image = method.adjust(normalize, c_image, seen_min=stats.image.min, seen_max=stats.image.max,
                            seen_sum=stats.image.sum)
    w_text = 0.0
    if c_text is not None:
        w_text = method.adjust(normalize, c_text, seen_min=stats.text.min, seen_max=stats.text.max,
                               seen_sum=stats.text.sum)
    return method.ensemble(p_image, p_text, w_image, w_text), w_image, w_text


def _record(
    workspace: Workspace, *, stream: str, query: str, labels: list[str], normalize: str,
    p_image: np.ndarray, p_text: np.ndarray | None, c_image: float, c_text: float | None,
    captions: list[CaptionHit],
) -> Classification:
    final: dict[str, np.ndarray] = {}

    def decide(stats: StreamStats) -> Decision:
        final["p"], w_image, w_text = weigh(stats, normalize=normalize, p_image=p_image, p_text=p_text,
                                            c_image=c_image, c_text=c_text)
        return Decision(w_image=w_image, w_text=w_text, prediction=labels[int(np.argmax(final["p"]))])

    event = workspace.history.record(stream, c_image=c_image, c_text=c_text, normalize=normalize,
                                     query=query, decide=decide)
    return Classification(
        query=query, stream=stream, seq=event.seq, prediction=event.prediction, normalize=normalize,
        labels=list(labels), probabilities=final["p"].tolist(), p_image=p_image.tolist(),
        p_text=None if p_text is None else p_text.tolist(), c_image=c_image, c_text=c_text,
        w_image=event.w_image, w_text=event.w_text, no_captions=p_text is None, captions=list(captions),
    )
