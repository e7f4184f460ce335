"""RECO's shared inputs for classify and eval: the fusion (alpha, k, trained layers) and the prompts' neighbours.

The text side's memory search: each class prompt's k nearest captions by the classifier's text embedding
(an exact search of the caption cache, the `classifier` vector of `texts`), then those pairs' stored image
embeddings (`images`, vector "coarse"), which are in the classifier's space only when the coarse model is
the classifier. Otherwise the text side is off and the prompts are used as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, StoreMismatchError
from ..methods.base import FUSION, PROMPT_NEIGHBOURS, pad_rows
from ..methods.reco import RecoFusion
from . import text_side

if TYPE_CHECKING:
    from ..store import VectorStore
    from ..workspace import Workspace


def reco_inputs(workspace: Workspace, needs: set[str], *, labels: list[str], template: str,
                fusion: Path | None) -> dict[str, Any]:
    """{"fusion": RecoFusion, "prompt_neighbours": (C, k, D) or None} for the RECO methods' needs."""
    settings = workspace.settings
    layers = None
    if FUSION in needs:
        layers = load_configured(workspace, check_fusion(workspace, fusion))
    out: dict[str, Any] = {"fusion": RecoFusion(alpha=settings.reco_alpha, k=settings.reco_k, layers=layers)}
    if PROMPT_NEIGHBOURS in needs:
        k = max(settings.reco_k, layers.k if layers is not None else 0)
        out["prompt_neighbours"] = prompt_neighbours(workspace, labels=labels, template=template, k=k)
    return out


def check_fusion(workspace: Workspace, fusion: Path | None) -> Path:
    """The fusion file, once it is known to be given, readable and trained for the configured classifier
    (no torch needed); ConfigError or BadInputError, one line, otherwise."""
    from ..models import embed_dim, resolve_weights
    from .record import check_classifier, read_record

    if fusion is None:
        raise ConfigError("the trained RECO methods need a fusion layer: pass --fusion FILE "
                          "(`xmore reco train --corpus NAME` writes one)")
    settings = workspace.settings
    spec = settings.classifier
    fingerprint = resolve_weights(spec, cache_dir=settings.model_cache_dir, role="classifier").fingerprint
    check_classifier(read_record(fusion), fusion, classifier=str(spec), fingerprint=fingerprint, dim=embed_dim(spec))
    return fusion


def load_configured(workspace: Workspace, path: Path):
    """The fusion layers in `path`, checked against the configured classifier before torch loads."""
    from ..models import embed_dim, resolve_weights
    from .layers import load_fusion

    settings = workspace.settings
    spec = settings.classifier
    fingerprint = resolve_weights(spec, cache_dir=settings.model_cache_dir, role="classifier").fingerprint
    return load_fusion(path, classifier=str(spec), fingerprint=fingerprint, dim=embed_dim(spec),
                       device=settings.device)


def require_caption_cache(workspace: Workspace, purpose: str) -> None:
    """StoreMismatchError, naming `xmore cache-captions`, unless the store caches this classifier's captions."""
    store = workspace.store()
    held, wanted = store.caption_cache(), workspace.caption_cache()
    if held is None:
        raise StoreMismatchError(f"{purpose} needs the caption cache, and the store at {store.location} has none: "
                                 "run `xmore cache-captions`")
    if held != wanted:
        raise StoreMismatchError(f"{purpose} needs the caption cache of the classifier {wanted.model}, and the store "
                                 f"at {store.location} holds {held.model}'s: run `xmore cache-captions --rebuild`")


def prompt_neighbours(workspace: Workspace, *, labels: list[str], template: str, k: int) -> np.ndarray | None:
    """(C, k, D) the image embeddings of each prompt's k nearest captions' pairs, NaN-padded; None when the
    text side is off. An empty store retrieves nothing (all NaN)."""
    from ..models import class_embeddings, embed_dim

    settings = workspace.settings
    if not text_side(settings)[0]:
        return None
    store = workspace.store()
    dim = embed_dim(settings.classifier)
    if store.counts()["texts"] == 0:
        return np.full((len(labels), k, dim), np.nan, dtype=np.float32)
    require_caption_cache(workspace, "RECO's text side (the class prompts' neighbours)")
    prompts = class_embeddings(workspace.encoder("classifier"), labels, template, workspace.prompt_cache_dir)
    return neighbour_images(store, prompts, k=k, dim=dim)


def neighbour_ids(store: VectorStore, queries: np.ndarray, *, k: int,
                  exclude: list[str] | None = None) -> list[list[str]]:
    """Each query's k nearest captions' pair ids (caption cache), nearest first; `exclude[i]`, if given, is a
    pair id left out of query i's (its own pair, in training)."""
    hits = store.caption_cache_search(queries, limit=k + (exclude is not None))
    return [[h.pair_id for h in row if exclude is None or h.pair_id != exclude[i]][:k] for i, row in enumerate(hits)]


def neighbour_images(store: VectorStore, queries: np.ndarray, *, k: int, dim: int) -> np.ndarray:
    """(B, k, dim) the stored images of each query's k nearest captions' pairs, NaN-padded."""
    ids = neighbour_ids(store, queries, k=k)
    flat = [pid for row in ids for pid in row]
    vectors = store.image_vectors(flat) if flat else np.zeros((0, dim), dtype=np.float32)
    return pad_rows(vectors, [len(row) for row in ids], k, dim)
