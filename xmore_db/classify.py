"""Classification of a batch of images into a named stream, by any registered method.

Embeddings, searches and caption encoding run batched (only what the method
needs); the method turns them into one or two class distributions per query
(xmore_db.methods); the history write is per query, because with two
modalities each query's weights depend on the stream so far.
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

    from .methods.inputs import MethodFiles
    from .workspace import Workspace


@dataclass(frozen=True)
class Classification:
    query: str
    stream: str
    seq: int
    prediction: str
    method: str
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


def classify_methods() -> list[str]:
    """The methods `classify --method` takes: every registered one but the eval-only normalisation variants
    (xmore-l1 and xmore-none are X-MoRe with the option --normalize l1 or none here)."""
    from .methods import registry

    return [name for name, m in registry().items() if m.normalize in (None, "minmax")]


def score_images(workspace: Workspace, images: list[Image.Image], queries: list[str], *,
                 labels: list[str], method_name: str = "xmore",
                 files: MethodFiles | None = None, corpora: list[str] | None = None) -> list[Scored]:
    """Encode, retrieve and score a batch: the image encodings, the searches and caption encodings the
    method needs, then the method itself over the whole batch."""
    from .methods import MethodInputs, get_method
    from .methods.base import CAPTIONS, INDIRECT_CAPTIONS
    from .methods.inputs import MethodFiles, extra_inputs
    from .models import class_embeddings

    chosen = get_method(method_name)
    settings = workspace.settings
    classifier = workspace.encoder("classifier")
    prompts = class_embeddings(classifier, labels, settings.template, workspace.prompt_cache_dir)
    needs = set(chosen.needs)
    retrieves = bool(needs & {CAPTIONS, INDIRECT_CAPTIONS})
    embeddings = embed_images(workspace, images, ("classifier", "coarse", "fine") if retrieves else ("classifier",))
    fields: dict[str, np.ndarray] = {}
    captions: list[list[CaptionHit]] = [[] for _ in queries]
    if retrieves:
        store = workspace.store()
        retrievals = retrieve(store, embeddings["coarse"], embeddings["fine"], coarse_k=settings.coarse_k,
                              fine_k=settings.fine_k, hnsw_ef=settings.hnsw_ef, corpora=corpora)
        captions = [r.captions for r in retrievals]
        fields[CAPTIONS] = _caption_rows(workspace, captions, settings.fine_k, classifier.dim)
        if INDIRECT_CAPTIONS in needs:
            nearest = [[hit.pair_id for hit in r.coarse[:settings.fine_k]] for r in retrievals]
            hits = store.fine_search(embeddings["fine"], nearest, limit=settings.fine_k)
            ordered = [sorted(h, key=lambda hit, ids=ids: ids.index(hit.pair_id)) for h, ids in zip(
                hits, nearest, strict=True)]
            fields[INDIRECT_CAPTIONS] = _caption_rows(workspace, ordered, settings.fine_k, classifier.dim)
    inputs = MethodInputs(image_embeddings=embeddings["classifier"], prompts=prompts,
                          logit_scale=classifier.logit_scale, **fields,
                          **extra_inputs(workspace, needs, labels=labels, template=settings.template,
                                         files=files or MethodFiles()))
    result = chosen.modalities(inputs, settings.fine_k)
    c_images = method.confidence(result.p_image)
    scored = []
    for i, query in enumerate(queries):
        p_text = None
        if result.p_text is not None and not np.isnan(result.p_text[i]).any():
            p_text = result.p_text[i]
        scored.append(Scored(query=query, p_image=result.p_image[i], p_text=p_text, c_image=float(c_images[i]),
                             c_text=None if p_text is None else float(method.confidence(p_text)),
                             captions=captions[i]))
    return scored


def _caption_rows(workspace: Workspace, captions: list[list[CaptionHit]], k: int, dim: int) -> np.ndarray:
    """(N, k, D) the classifier's embeddings of each query's caption hits, NaN rows where fewer came back."""
    from .methods.base import pad_rows

    flat = embed_captions(workspace, [hit for hits in captions for hit in hits])
    return pad_rows(flat, [len(hits) for hits in captions], k, dim)


def record_scored(workspace: Workspace, scored: list[Scored], *, labels: list[str],
                  stream: str, method_name: str = "xmore", key_id: int | None = None) -> list[Classification]:
    """Append each query to the stream, in order; each one's weights depend on those before it.

    A one-modality method's queries are recorded with normalisation `none` (weight 1, no text).
    `key_id`: the API key the queries came with (`xmore serve`), recorded on each event.
    """
    from .methods import get_method

    two = get_method(method_name).normalize is not None
    normalize = workspace.settings.normalize if two else "none"
    return [_record(workspace, stream=stream, query=s.query, labels=labels, normalize=normalize,
                    p_image=s.p_image, p_text=s.p_text, c_image=s.c_image, c_text=s.c_text, captions=s.captions,
                    method_name=method_name, key_id=key_id)
            for s in scored]


def classify_paths(workspace: Workspace, paths: list[Path], *, labels: list[str], stream: str,
                   method_name: str = "xmore", files: MethodFiles | None = None,
                   corpora: list[str] | None = None,
                   on_start: Callable[[int], None] = lambda total: None,
                   on_progress: Callable[[int], None] = lambda n: None) -> list[Classification]:
    """Classify image files in order, with the stages of consecutive batches overlapped.

    Every image is decoded once up front (in parallel, then released) so that a
    corrupt file fails before the first history write. Then, per batch: the next
    batch decodes in a thread while this one is encoded and searched, and the
    previous batch's history writes run in a writer thread, in stream order.
    """
    from .errors import StreamMethodError, UnknownStreamError
    from .images import load_image

    if not paths:
        return []
    workspace.store()
    workspace.history.check()
    try:  # the history refuses a second method per stream anyway; this says so before any work
        held = workspace.history.stream(stream).method
    except UnknownStreamError:
        held = method_name
    if held != method_name:
        raise StreamMethodError(f"stream {stream!r} holds {held} results; its confidence statistics would mean "
                                f"nothing for {method_name}: use another stream name "
                                f"(or `xmore streams reset {stream}`)")
    from .methods import get_method
    from .methods.inputs import MethodFiles, check_files

    check_files(workspace, set(get_method(method_name).needs), files or MethodFiles())
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
            scored = score_images(workspace, images, [str(p) for p in chunk], labels=labels,
                                  method_name=method_name, files=files, corpora=corpora)
            for image in images:
                image.close()
            if writing is not None:
                results += writing.result()
                on_progress(len(chunks[i - 1]))
            writing = writer.submit(record_scored, workspace, scored, labels=labels, stream=stream,
                                    method_name=method_name)
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
    captions: list[CaptionHit], method_name: str, key_id: int | None = None,
) -> Classification:
    final: dict[str, np.ndarray] = {}

    def decide(stats: StreamStats) -> Decision:
        final["p"], w_image, w_text = weigh(stats, normalize=normalize, p_image=p_image, p_text=p_text,
                                            c_image=c_image, c_text=c_text)
        return Decision(w_image=w_image, w_text=w_text, prediction=labels[int(np.argmax(final["p"]))])

    event = workspace.history.record(stream, c_image=c_image, c_text=c_text, normalize=normalize,
                                     query=query, decide=decide, method=method_name, key_id=key_id)
    return Classification(
        query=query, stream=stream, seq=event.seq, prediction=event.prediction, method=method_name,
        normalize=normalize,
        labels=list(labels), probabilities=final["p"].tolist(), p_image=p_image.tolist(),
        p_text=None if p_text is None else p_text.tolist(), c_image=c_image, c_text=c_text,
        w_image=event.w_image, w_text=event.w_text, no_captions=p_text is None, captions=list(captions),
    )
