"""A text bank's embeddings, computed once per (classifier weights, bank texts).

Kept in memory for the process and on disk as `<cache_dir>/textbanks/<sha256>.npy` (the general texts,
then the one-vs-one texts), like the class prompts (models/prompts.py): a second run, or every batch of
a stream, encodes nothing and, on a disk hit, loads no model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..methods.coder import EncodedBank
from ..models.prompts import cached_text_embeddings
from .bank import TextBank, load_bank

if TYPE_CHECKING:
    from ..models import ClipEncoder
    from ..workspace import Workspace


def bank_cache_key(fingerprint: str, texts: list[str]) -> str:
    """sha256 hex of the encoder fingerprint and every text in order."""
    return hashlib.sha256(json.dumps([fingerprint, texts], ensure_ascii=False).encode("utf-8")).hexdigest()


def encode_bank(bank: TextBank, *, fingerprint: str, encoder: Callable[[], ClipEncoder], cache_dir: Path | None,
                threshold: float) -> EncodedBank:
    """The bank's texts encoded by the classifier `encoder()` (called only when nothing is cached)."""
    layout = bank.layout()
    texts = list(layout.texts) + list(layout.ovo_texts)
    key = bank_cache_key(fingerprint, texts)
    embeddings = cached_text_embeddings("textbanks", key, len(texts), lambda: encoder().encode_texts(texts),
                                        cache_dir)
    t = len(layout.texts)
    return EncodedBank(
        classes=tuple(bank.classes), texts=embeddings[:t], text_class=np.asarray(layout.text_class, dtype=np.int64),
        is_name=np.asarray(layout.is_name, dtype=bool), ovo_texts=embeddings[t:],
        ovo_pair=np.asarray(layout.ovo_pair, dtype=np.int64).reshape(-1, 2), threshold=threshold)


def read_bank(path: Path | None, labels: list[str]) -> TextBank:
    """The bank at `path` with its classes in label order; ConfigError when no path is given."""
    if path is None:
        raise ConfigError("the CODER methods need a text bank: pass --textbank BANK.json "
                          "(`xmore textbank import-coder` converts the authors' files)")
    return load_bank(path).for_labels(list(labels))


def workspace_bank(workspace: Workspace, path: Path | None, labels: list[str]) -> EncodedBank:
    """The bank at `path`, checked against `labels` and encoded by the workspace's classifier (cached)."""
    from ..models import resolve_weights

    bank = read_bank(path, labels)
    settings = workspace.settings
    weights = resolve_weights(settings.classifier, cache_dir=settings.model_cache_dir, role="classifier")
    return encode_bank(bank, fingerprint=weights.fingerprint, encoder=lambda: workspace.encoder("classifier"),
                       cache_dir=workspace.prompt_cache_dir, threshold=settings.coder_threshold)


def check_banks(banks: dict[str, tuple[Path | None, list[str]]]) -> None:
    """{dataset: (bank path, labels)}: each bank exists, parses and holds exactly its dataset's classes."""
    for name, (path, labels) in banks.items():
        if path is None:
            raise ConfigError(f"dataset {name!r} has no text bank for the CODER methods: pass --textbank "
                              f"{name}=BANK.json, or one bare --textbank FILE for every dataset")
        load_bank(path).for_labels(list(labels))


def clear_memo() -> None:
    """Forget the in-process bank embeddings (tests)."""
    from ..models.prompts import clear_memo as clear_text_memo

    clear_text_memo()
