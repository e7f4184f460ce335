"""CLIP encoders from open_clip: architectures, weights, and cached class prompts.

Importing this package imports neither torch nor open_clip; torch loads when
the first model is built.
"""

from __future__ import annotations

from .encoder import ClipEncoder
from .loader import clear_cache, load_encoder
from .prompts import class_embeddings, prompt_cache_key, prompt_texts
from .registry import CONFIG_DIR, embed_dim, ensure_registered, tiny_architectures
from .weights import BUILTIN_TAG, ROLE_ENV, Weights, builtin_checkpoints, read_state_dict, resolve_weights

__all__ = [
    "BUILTIN_TAG",
    "CONFIG_DIR",
    "ROLE_ENV",
    "ClipEncoder",
    "Weights",
    "builtin_checkpoints",
    "class_embeddings",
    "clear_cache",
    "embed_dim",
    "ensure_registered",
    "load_encoder",
    "prompt_cache_key",
    "prompt_texts",
    "read_state_dict",
    "resolve_weights",
    "tiny_architectures",
]
