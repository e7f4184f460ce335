"""X-MoRe classification of a batch of images into a named stream.

Embeddings, searches and caption encoding run batched; only the history write
is per query, because each query's weights depend on the stream so far.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import method
from .history import Decision, StreamStats
from .retrieval import retrieve
from .store import CaptionHit

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


def classify_images(
    workspace: Workspace,
    images: list[Image.Image],
    queries: list[str],
    *,
    labels: list[str],
    stream: str,
) -> list[Classification]:
    """Classify images in order, each one appended to `stream`'s history."""
    from .models import class_embeddings

    settings = workspace.settings
    store = workspace.store()
    workspace.history.check()
    classifier = workspace.encoder("classifier")
    prompts = class_embeddings(classifier, labels, settings.template, workspace.prompt_cache_dir)
    scale = classifier.logit_scale

    embeddings = embed_images(workspace, images, ("classifier", "coarse", "fine"))
    p_images = method.class_probabilities(embeddings["classifier"], prompts, scale)
    c_images = method.confidence(p_images)

    retrievals = retrieve(store, embeddings["coarse"], embeddings["fine"],
                          coarse_k=settings.coarse_k, fine_k=settings.fine_k)
    captions = [r.captions for r in retrievals]
    # One encoder call for every caption of the batch, split back per query.
    flat = [hit.caption for hits in captions for hit in hits]
    caption_embeddings = classifier.encode_texts(flat)
    bounds = np.cumsum([0] + [len(hits) for hits in captions])

    results = []
    for i, query in enumerate(queries):
        p_text = method.text_probabilities(caption_embeddings[bounds[i]:bounds[i + 1]], prompts, scale)
        c_text = None if p_text is None else float(method.confidence(p_text))
        results.append(_record(
            workspace, stream=stream, query=query, labels=labels, normalize=settings.normalize,
            p_image=p_images[i], p_text=p_text, c_image=float(c_images[i]), c_text=c_text,
            captions=captions[i],
        ))
    return results


def _record(
    workspace: Workspace, *, stream: str, query: str, labels: list[str], normalize: str,
    p_image: np.ndarray, p_text: np.ndarray | None, c_image: float, c_text: float | None,
    captions: list[CaptionHit],
) -> Classification:
    final: dict[str, np.ndarray] = {}

    def decide(stats: StreamStats) -> Decision:
        w_image = method.adjust(normalize, c_image, seen_min=stats.image.min, seen_max=stats.image.max,
                                seen_sum=stats.image.sum)
        w_text = 0.0
        if c_text is not None:
            w_text = method.adjust(normalize, c_text, seen_min=stats.text.min, seen_max=stats.text.max,
                                   seen_sum=stats.text.sum)
        final["p"] = method.ensemble(p_image, p_text, w_image, w_text)
        return Decision(w_image=w_image, w_text=w_text, prediction=labels[int(np.argmax(final["p"]))])

    event = workspace.history.record(stream, c_image=c_image, c_text=c_text, normalize=normalize,
                                     query=query, decide=decide)
    return Classification(
        query=query, stream=stream, seq=event.seq, prediction=event.prediction, normalize=normalize,
        labels=list(labels), probabilities=final["p"].tolist(), p_image=p_image.tolist(),
        p_text=None if p_text is None else p_text.tolist(), c_image=c_image, c_text=c_text,
        w_image=event.w_image, w_text=event.w_text, no_captions=p_text is None, captions=list(captions),
    )
