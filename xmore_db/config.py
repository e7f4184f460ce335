"""Effective settings: defaults, overridden by XMORE_* variables, overridden by CLI options.

The CLI reads the environment through Typer's `envvar=`; library users call
`Settings.from_env()`. Both end in the same frozen dataclass.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

NORMALIZATIONS = ("minmax", "l1", "none")
DEFAULT_TEMPLATE = "a photo of a {label}."


@dataclass(frozen=True)
class ModelSpec:
    """`ARCH[:PRETRAINED]`: an open_clip architecture and where its weights come from.

    `pretrained` is an open_clip tag (`openai`), a local checkpoint path, or None
    for random initialisation (only sensible for the tiny test architectures).
    """

    arch: str
    pretrained: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        text = text.strip()
        if not text:
            raise ConfigError("empty model spec: expected ARCH[:PRETRAINED], e.g. ViT-B-32:openai")
        arch, sep, pretrained = text.partition(":")
        if not arch:
            raise ConfigError(f"model spec {text!r} has no architecture: expected ARCH[:PRETRAINED]")
        if sep and not pretrained:
            raise ConfigError(f"model spec {text!r} ends with ':': give a pretrained tag or path")
        return cls(arch=arch, pretrained=pretrained or None)

    @property
    def is_local_file(self) -> bool:
        p = self.pretrained
        return p is not None and (
            "/" in p or os.sep in p or p.endswith((".pt", ".pth", ".bin", ".safetensors"))
        )

    def __str__(self) -> str:
        return f"{self.arch}:{self.pretrained}" if self.pretrained else self.arch


@dataclass(frozen=True)
class Settings:
    home: Path = Path("xmore-data")
    qdrant_url: str | None = None
    qdrant_api_key: str | None = field(default=None, repr=False)
    database_url: str | None = None
    coarse_model: str = "ViT-B-32:openai"
    fine_model: str = "ViT-L-14:openai"
    classifier_model: str = "RN50:openai"
    device: str = "cpu"
    model_cache_dir: Path | None = None
    coarse_k: int = 128
    fine_k: int = 16
    hnsw_ef: int = 2048
    template: str = DEFAULT_TEMPLATE
    normalize: str = "minmax"
    batch_size: int = 32
    caption_cache: bool = True

    # Each field's environment variable; the CLI declares the same names.
    ENV = {
        "home": "XMORE_HOME",
        "qdrant_url": "XMORE_QDRANT_URL",
        "qdrant_api_key": "XMORE_QDRANT_API_KEY",
        "database_url": "XMORE_DATABASE_URL",
        "coarse_model": "XMORE_COARSE_MODEL",
        "fine_model": "XMORE_FINE_MODEL",
        "classifier_model": "XMORE_CLASSIFIER_MODEL",
        "device": "XMORE_DEVICE",
        "model_cache_dir": "XMORE_MODEL_CACHE",
        "coarse_k": "XMORE_COARSE_K",
        "fine_k": "XMORE_FINE_K",
        "hnsw_ef": "XMORE_HNSW_EF",
        "template": "XMORE_TEMPLATE",
        "normalize": "XMORE_NORMALIZE",
        "batch_size": "XMORE_BATCH_SIZE",
        "caption_cache": "XMORE_CAPTION_CACHE",
    }

    def __post_init__(self) -> None:
        for name in ("coarse_model", "fine_model", "classifier_model"):
            ModelSpec.parse(getattr(self, name))
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(
                f"unknown normalisation {self.normalize!r}: choose one of {', '.join(NORMALIZATIONS)}"
            )
        for name in ("coarse_k", "fine_k", "hnsw_ef", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.fine_k > self.coarse_k:
            raise ConfigError(
                f"fine_k ({self.fine_k}) cannot exceed coarse_k ({self.coarse_k}): "
                "the fine stage ranks the coarse candidates"
            )
        if "{label}" not in self.template:
            raise ConfigError(f"template {self.template!r} must contain {{label}}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, var in cls.ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _coerce(name, var, raw, types[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def coarse(self) -> ModelSpec:
        return ModelSpec.parse(self.coarse_model)

    @property
    def fine(self) -> ModelSpec:
        return ModelSpec.parse(self.fine_model)

    @property
    def classifier(self) -> ModelSpec:
        return ModelSpec.parse(self.classifier_model)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'history.sqlite3').resolve()}"

    @property
    def vector_backend(self) -> str:
        return "qdrant-server" if self.qdrant_url else "qdrant-edge"

    def masked(self) -> dict[str, object]:
        """Settings as printable values, secrets hidden."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "qdrant_api_key" and value:
                value = "****"
            elif f.name == "database_url":
                value = mask_url_password(self.effective_database_url)
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        out["vector_backend"] = self.vector_backend
        return out


def mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":****@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _coerce(name: str, var: str, raw: str, type_name: object) -> object:
    kind = str(type_name)
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{var}={raw!r} is not a valid value for {name}: use 1/0, true/false or on/off")
    try:
        if kind == "int":
            return int(raw)
        if "Path" in kind:
            return Path(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a valid value for {name}") from None
    return raw
