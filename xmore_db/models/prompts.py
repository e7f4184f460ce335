"""Class-prompt embeddings, computed once per (encoder weights, labels, template).

Kept in memory for the process and, given a cache directory, on disk as
`<cache_dir>/prompts/<sha256>.npy`, so a stream of single-image queries
encodes its labels once, not once per query.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..files import write_atomically
from .encoder import ClipEncoder

log = logging.getLogger(__name__)
_lock = threading.Lock()
_memo: dict[str, np.ndarray] = {}


def prompt_texts(labels: Sequence[str], template: str) -> list[str]:
    """template.format(label=label) for each label, in order."""
    if "{label}" not in template:
        raise ConfigError(f"template {template!r} must contain {{label}}")
    try:
        return [template.format(label=label) for label in labels]
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(
            f"template {template!r} cannot be filled: only {{label}} may appear in braces "
            f"(write {{{{ and }}}} for literal braces; {type(e).__name__}: {e})"
        ) from None


def prompt_cache_key(fingerprint: str, labels: Sequence[str], template: str) -> str:
    """sha256 hex of the encoder fingerprint, the labels in order and the template."""
    payload = json.dumps([fingerprint, list(labels), template], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def class_embeddings(
    encoder: ClipEncoder,
    labels: Sequence[str],
    template: str,
    cache_dir: Path | None,
) -> np.ndarray:
    """(C, dim) float32, row c the unit embedding of template.format(label=labels[c]).

    The array is shared by every caller of the same key, so it is read-only.
    A cache file that cannot be read or has the wrong shape is recomputed.
    """
    if isinstance(labels, str):
        raise TypeError("labels must be a sequence of strings, not one string")
    labels = list(labels)
    texts = prompt_texts(labels, template)
    key = prompt_cache_key(encoder.fingerprint, labels, template)
    return cached_text_embeddings("prompts", key, len(labels), lambda: encoder.encode_texts(texts), cache_dir)


def cached_text_embeddings(kind: str, key: str, rows: int, encode: Callable[[], np.ndarray],
                           cache_dir: Path | None) -> np.ndarray:
    """(rows, dim) float32 text embeddings memoised in-process and on disk at cache_dir/kind/key.npy.

    `encode` runs only when neither holds them; the array is shared, so read-only. A cache
    file that cannot be read or has the wrong shape is recomputed; one that cannot be
    written costs time, not the answer. (Class prompts here; CODER's text banks too.)
    """
    memo_key = f"{kind}/{key}"
    with _lock:
        if memo_key in _memo:
            return _memo[memo_key]
    path = Path(cache_dir) / kind / f"{key}.npy" if cache_dir is not None else None
    embeddings = _read(path, rows) if path is not None else None
    if embeddings is None:
        embeddings = np.ascontiguousarray(encode(), dtype=np.float32)
        if path is not None:
            try:
                write_atomically(path, lambda f: np.save(f, embeddings, allow_pickle=False))
            except OSError as e:
                log.warning("cannot write %s cache %s: %s", kind, path, e.strerror or e)
    embeddings.flags.writeable = False
    with _lock:
        return _memo.setdefault(memo_key, embeddings)


def clear_memo() -> None:
    """Forget the in-process text embeddings, class prompts and text banks (tests)."""
    with _lock:
        _memo.clear()


def _read(path: Path, rows: int) -> np.ndarray | None:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if array.ndim != 2 or array.shape[0] != rows or array.dtype != np.float32:
        return None
    return array
