"""The names open_clip knows: architectures (ours included) and pretrained tags.

Our architectures are JSON files in `configs/`, added to open_clip's registry
the way open_clip adds its own (`open_clip.add_model_config`), on first use.

open_clip's registry is the only authority on names: importing it costs a few
seconds (torch), paid once per process by any command that names a model.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ModelSpec
from ..errors import UnknownModelError

CONFIG_DIR = Path(__file__).parent / "configs"
_REQUIRED_KEYS = ("embed_dim", "vision_cfg", "text_cfg")  # as open_clip's _rescan_model_configs
_lock = threading.Lock()
_registered = False


class Catalogue:
    """Architecture configs and pretrained-tag tables, open_clip's API in miniature."""

    def __init__(
        self,
        list_models: Callable[[], list[str]],
        get_model_config: Callable[[str], dict | None],
        pretrained: Any,
    ):
        self.list_models = list_models
        self.get_model_config = get_model_config
        self._pretrained = pretrained  # a module with open_clip.pretrained's functions

    def tags(self, arch: str) -> list[str]:
        return list(self._pretrained.list_pretrained_tags_by_model(arch))

    def is_tag(self, arch: str, tag: str) -> bool:
        return bool(self._pretrained.is_pretrained_cfg(arch, tag))

    def pretrained_cfg(self, arch: str, tag: str) -> dict:
        return dict(self._pretrained.get_pretrained_cfg(arch, tag))


def tiny_architectures() -> list[str]:
    """Our own architectures (configs/*.json)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def ensure_registered() -> None:
    """Add configs/ to open_clip's architecture registry, once per process (imports open_clip)."""
    global _registered
    with _lock:
        if _registered:
            return
        import open_clip

        if not set(tiny_architectures()) <= set(open_clip.list_models()):
            open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def catalogue() -> Catalogue:
    """open_clip's registry, with our architectures added."""
    ensure_registered()
    import open_clip
    from open_clip import factory, pretrained

    return Catalogue(open_clip.list_models, factory.get_model_config, pretrained)


def arch_name(spec: ModelSpec) -> str:
    return spec.arch.replace("/", "-")  # ViT-B/32 -> ViT-B-32, as open_clip does


def check_arch(spec: ModelSpec) -> str:
    """The spec's architecture name, or UnknownModelError naming the close ones."""
    arch = arch_name(spec)
    if arch in ("hf-hub", "local-dir"):
        raise UnknownModelError(
            f"model spec {spec} uses open_clip's {arch}: scheme, which is not supported: "
            "give ARCH:TAG (e.g. ViT-B-32:openai) or ARCH:/path/to/weights"
        )
    known = catalogue().list_models()
    if arch in known:
        return arch
    close = close_names(arch, known)
    examples = ["ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50", *tiny_architectures()]
    hint = (f"did you mean {', '.join(close)}? " if close
            else f"for example {', '.join(examples)}; ")
    raise UnknownModelError(
        f"unknown model architecture {arch!r}: {hint}"
        f"open_clip knows {len(known)} (open_clip.list_models() lists them)"
    )


def embed_dim(spec: ModelSpec | str) -> int:
    """The embedding size of a spec's architecture, without loading weights or torch."""
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    arch = check_arch(spec)
    return int(catalogue().get_model_config(arch)["embed_dim"])


def close_names(name: str, known: list[str]) -> list[str]:
    """Known names like `name`: the same spelling in another case first, then difflib's best."""
    same_case = [k for k in known if k.lower() == name.lower()]
    lowered = {k.lower(): k for k in known}
    similar = [lowered[k] for k in difflib.get_close_matches(name.lower(), lowered, n=6,
                                                              cutoff=0.6)]
    return list(dict.fromkeys(same_case + similar))[:6]
