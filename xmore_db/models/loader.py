"""Loading an encoder for a spec: resolve the weights, build the model once per process.

The names (architectures, tags) are in `registry`, where the weights come
from and how they are read safely in `weights`; this module builds the open_clip
model and memoises it. torch and open_clip are imported only when a model is built.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import ModelSpec
from ..errors import ConfigError, first_line
from .encoder import ClipEncoder
from .registry import CONFIG_DIR, embed_dim, ensure_registered, tiny_architectures
from .weights import (
    RANDOM_INIT_SEED,
    ROLE_ENV,
    Weights,
    read_state_dict,
    resolve_weights,
)

__all__ = [
    "CONFIG_DIR", "ROLE_ENV", "Weights", "clear_cache", "embed_dim", "ensure_registered",
    "load_encoder", "read_state_dict", "resolve_weights", "tiny_architectures",
]

log = logging.getLogger(__name__)

_lock = threading.RLock()
_models: dict[tuple[str, str], tuple[Any, Any, Any, int]] = {}
_encoders: dict[tuple[ModelSpec, str, int, str], ClipEncoder] = {}


def load_encoder(
    spec: ModelSpec | str,
    *,
    device: str = "cpu",
    cache_dir: Path | None = None,
    batch_size: int = 32,
    role: str | None = None,
) -> ClipEncoder:
    """The encoder for `spec` on `device`, built once per process.

    `cache_dir` is the Hugging Face hub cache to look in for open_clip tags
    (default: huggingface_hub's, which follows HF_HOME / HF_HUB_CACHE); nothing
    is downloaded. `role` ("coarse", "fine", "classifier") names the setting to
    change in error messages. Raises UnknownModelError, WeightsMissingError or
    ConfigError, each with a one-line message.

    Models are shared per (weights fingerprint, device); the same spec, device
    and batch size give the same ClipEncoder object. A local file that changed
    on disk since (another size or content hash) is loaded again.
    """
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    if role is not None and role not in ROLE_ENV:
        raise ConfigError(f"unknown model role {role!r}: choose one of {', '.join(ROLE_ENV)}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    weights = resolve_weights(spec, cache_dir=cache_dir, role=role)
    key = (spec, device, batch_size, weights.fingerprint)
    with _lock:
        if key not in _encoders:
            model_key = (weights.fingerprint, device)
            if model_key not in _models:
                _models[model_key] = _build(weights, device)
            model, preprocess, tokenizer, dim = _models[model_key]
            _encoders[key] = ClipEncoder(
                spec=spec, model=model, preprocess=preprocess, tokenizer=tokenizer, dim=dim,
                fingerprint=weights.fingerprint, device=device, batch_size=batch_size,
            )
        return _encoders[key]


def clear_cache() -> None:
    """Forget every loaded model (tests; freeing memory)."""
    with _lock:
        _encoders.clear()
        _models.clear()


def _build(weights: Weights, device: str) -> tuple[Any, Any, Any, int]:
    ensure_registered()
    import open_clip
    import torch

    _check_device(device)
    tag_cfg = dict(weights.tag_cfg)
    kwargs: dict[str, Any] = {"pretrained": None, "device": device,
                              "pretrained_image": False, "pretrained_text": False}
    if tag_cfg.get("quick_gelu"):
        kwargs["force_quick_gelu"] = True
    preprocess_cfg = _preprocess_overrides(tag_cfg)
    if preprocess_cfg:
        kwargs["force_preprocess_cfg"] = preprocess_cfg
    try:
        # Seeded in a forked RNG: random weights are the same in every process
        # (open_clip initialises on the CPU, then moves to the device), and the
        # caller's global RNG state is left as it was.
        with torch.random.fork_rng(devices=[]), _without_random_init_notice():
            torch.manual_seed(RANDOM_INIT_SEED)
            model, _, preprocess = open_clip.create_model_and_transforms(weights.arch, **kwargs)
        tokenizer = open_clip.get_tokenizer(weights.arch)
    except (ImportError, RuntimeError, ValueError, OSError, KeyError) as e:
        raise ConfigError(f"cannot build open_clip architecture {weights.arch}: "
                          f"{first_line(e) or type(e).__name__}") from None
    if weights.path is not None:
        _load_strict(model, read_state_dict(weights.path), weights)
    elif weights.arch not in tiny_architectures():
        log.warning("%s has random weights: give ARCH:TAG or ARCH:/path for a trained model",
                    weights.arch)
    model.eval()
    dim = int(open_clip.get_model_config(weights.arch)["embed_dim"])
    return model, preprocess, tokenizer, dim


def _preprocess_overrides(tag_cfg: dict) -> dict:
    """What a tag says about preprocessing (mean, std, interpolation...); the size stays the model's."""
    import dataclasses

    from open_clip.transform import PreprocessCfg

    names = {f.name for f in dataclasses.fields(PreprocessCfg)} - {"size"}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in tag_cfg.items() if k in names}


def _load_strict(model: Any, state: dict[str, Any], weights: Weights) -> None:
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    reshaped = sorted(k for k in expected.keys() & state.keys()
                      if tuple(expected[k].shape) != tuple(state[k].shape))
    problems = [
        f"{len(keys)} {words} (e.g. {', '.join(keys[:3])})"
        for words, keys in (("missing", missing), ("unexpected", unexpected),
                            ("with another shape", reshaped))
        if keys
    ]
    if problems:
        raise ConfigError(
            f"weights in {weights.path} do not fit architecture {weights.arch}: "
            f"{'; '.join(problems)}; check the ARCH part of the model spec"
        )
    model.load_state_dict(state, strict=True)


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"unknown device {device!r}: {first_line(e)}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} is not available here: torch sees no CUDA GPU")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} is not available here: torch sees no MPS device")


class _DropRandomInitNotice(logging.Filter):
    """open_clip logs 'Model initialized randomly' before we load the weights ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextmanager
def _without_random_init_notice():
    root = logging.getLogger()
    notice = _DropRandomInitNotice()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)
