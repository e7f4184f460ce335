"""Effective settings: defaults, overridden by XMORE_* variables, overridden by CLI options.

The CLI reads the environment through Typer's `envvar=`; library users call
`Settings.from_env()`. Both end in the same frozen dataclass.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, unquote_plus

from .errors import ConfigError, StreamNameError

# How confidences are adjusted over a stream (method.adjust); named here so the CLI needs no numpy.
NORMALIZATIONS = ("minmax", "l1", "none")
DEFAULT_TEMPLATE = "a photo of a {label}."
# CODER*: re-rank the top 5 when the softmax gap between the first two is below this (the authors: 0.05 to 0.6).
DEFAULT_CODER_THRESHOLD = 0.1
# Stream names: at most 4 bytes a character in UTF-8, so 200 stay far below
# PostgreSQL's limit on a unique-index entry (about 2,700 bytes).
MAX_STREAM_NAME_CHARS = 200
STREAM_NAME_RULE = (f"a stream name is 1 to {MAX_STREAM_NAME_CHARS} printable characters "
                    "(no control or invisible characters, no tab or newline), "
                    "not starting or ending with a space")


def check_stream_name(name: object) -> str:
    """`name` if it is an allowed stream name; otherwise StreamNameError, one line.

    The same rule on every database: 1 to MAX_STREAM_NAME_CHARS characters, each
    printable by `str.isprintable` (letters, digits, punctuation, symbols and the
    plain space; not control, format or separator characters such as tab,
    newline, NUL or zero-width spaces), no space at either end.
    """
    if not isinstance(name, str):
        raise StreamNameError(f"stream name must be a string, got {type(name).__name__}: {STREAM_NAME_RULE}")
    shown = repr(name) if len(name) <= 40 else repr(name[:40]) + "…"
    if not name:
        problem = "is empty"
    elif len(name) > MAX_STREAM_NAME_CHARS:
        problem = f"has {len(name):,} characters"
    elif not name.isprintable():
        position, char = next((i, c) for i, c in enumerate(name) if not c.isprintable())
        problem = f"has the unprintable character {char!r} (U+{ord(char):04X}) at position {position + 1}"
    elif name != name.strip():
        problem = "starts or ends with a space"
    else:
        return name
    raise StreamNameError(f"stream name {shown} {problem}: {STREAM_NAME_RULE}")


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
    # RECO: the weight of the retrieved mean in reco-mean, and the items retrieved per query.
    reco_alpha: float = 1.0
    reco_k: int = 10
    coder_threshold: float = DEFAULT_CODER_THRESHOLD

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
        "reco_alpha": "XMORE_RECO_ALPHA",
        "reco_k": "XMORE_RECO_K",
        "coder_threshold": "XMORE_CODER_THRESHOLD",
    }

    def __post_init__(self) -> None:
        # Library users pass strings; the rest of the code joins paths.
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.model_cache_dir is not None:
            object.__setattr__(self, "model_cache_dir", Path(self.model_cache_dir).expanduser())
        for name in ("coarse_model", "fine_model", "classifier_model"):
            ModelSpec.parse(getattr(self, name))
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(
                f"unknown normalisation {self.normalize!r}: choose one of {', '.join(NORMALIZATIONS)}"
            )
        if not 0 <= self.reco_alpha < float("inf"):
            raise ConfigError(f"reco_alpha must be a finite number at least 0, got {self.reco_alpha}")
        if not 0 <= self.coder_threshold <= 1:
            raise ConfigError(f"the CODER* threshold (--coder-threshold, XMORE_CODER_THRESHOLD) must be between 0 "
                              f"and 1, a gap between two probabilities; got {self.coder_threshold}")
        for name in ("coarse_k", "fine_k", "hnsw_ef", "batch_size", "reco_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.fine_k > self.coarse_k:
            raise ConfigError(
                f"-k/--fine-k ({self.fine_k}, XMORE_FINE_K) cannot exceed -K/--coarse-k ({self.coarse_k}, "
                "XMORE_COARSE_K): "
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
                value = MASK
            elif f.name == "database_url":
                value = mask_url_password(self.effective_database_url)
            elif f.name == "qdrant_url" and value:
                value = mask_url_password(value)
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        out["vector_backend"] = self.vector_backend
        return out

    def secrets(self) -> list[str]:
        """Every credential value in these settings, for `mask_secrets`."""
        return secret_values(database_url=self.database_url, qdrant_url=self.qdrant_url,
                             qdrant_api_key=self.qdrant_api_key)


def secret_values(*, database_url: str | None, qdrant_url: str | None, qdrant_api_key: str | None) -> list[str]:
    """The credential values of the three settings that can carry one."""
    return [*url_secrets(database_url), *url_secrets(qdrant_url), *([qdrant_api_key] if qdrant_api_key else [])]


MASK = "****"
# Query parameters and keyword pairs whose value is a credential: libpq's password and
# sslpassword, MySQL drivers' passwd/pwd, HTTP APIs' api_key/apikey/api-key/key/token.
_SECRET_KEY = re.compile(
    r"pass|pwd|secret|token|api[-_]?key|credential|^key$|^auth$|^sig(nature)?$", re.IGNORECASE
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A value already masked is matched as such, so masking twice changes nothing.
_QUERY_PAIR = re.compile(r"(?<=[?&;])(?P<key>[^=&#?;\s]+)=(?P<value>\*{4}|[^&#;]*)")
# libpq's keyword form (`host=h password=secret`), also what drivers echo in messages.
_KEYWORD_PAIR = re.compile(
    r"(?P<key>\b[\w-]*(?:pass|pwd|secret|token|api[-_]?key)[\w-]*)(?P<eq>\s*=\s*)"
    r"(?P<value>\*{4}|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&#'\",;)]+)",
    re.IGNORECASE,
)


def mask_url_password(url: str) -> str:
    """`url` with every credential it can carry replaced by ****.

    The one masking rule for URLs and DSNs, used by every output (`config`,
    `status`, `init`, store locations, error messages). It hides:

    - the password of `scheme://user:password@host`, however SQLAlchemy or an
      HTTP client would split it (a raw `@` or `/` in it, percent-encoding);
    - the value of every secret query parameter (`?password=`, `passwd`, `pwd`,
      `sslpassword`, `api_key`, `apikey`, `api-key`, `key`, `token`, ...);
    - `password=...` pairs of libpq's keyword form (`host=h password=secret`).

    When in doubt it hides more than the password, never less.
    """
    text = _mask_userinfo(url)
    text = _QUERY_PAIR.sub(_mask_query_pair, text)
    return _KEYWORD_PAIR.sub(_mask_keyword_pair, text)


def mask_secrets(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """Free text (an error line, a driver's message) with every credential in it masked.

    Each URL in the text is masked as `mask_url_password` does, so are keyword
    pairs, and so is every literal value in `secrets` (see `Settings.secrets`)
    wherever it appears, in case a driver quotes a password on its own.
    """
    out = []
    last = 0
    for match in _SCHEME.finditer(text):
        if match.start() < last:
            continue
        end = _url_end(text, match.start())
        out += [text[last:match.start()], mask_url_password(text[match.start():end])]
        last = end
    text = _KEYWORD_PAIR.sub(_mask_keyword_pair, "".join(out) + text[last:])
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def url_secrets(url: str | None) -> list[str]:
    """The credential values in a URL or DSN, raw and percent-decoded (for `mask_secrets`)."""
    if not url:
        return []
    found: list[str] = []
    span = _userinfo_span(url)
    if span is not None:
        found.append(url[span[0]:span[1]])
    for m in _QUERY_PAIR.finditer(url):
        if _SECRET_KEY.search(unquote(m["key"])):
            found.append(m["value"])
    for m in _KEYWORD_PAIR.finditer(url):
        found.append(m["value"].strip("'\""))
    out: list[str] = []
    for value in found:
        for v in (value, unquote(value), unquote_plus(value)):
            if v and v not in out:
                out.append(v)
    return out


def _userinfo_span(url: str) -> tuple[int, int] | None:
    """Where the password of `scheme://user:password@host` lies, as SQLAlchemy or urllib reads it.

    SQLAlchemy takes the password up to the first `@` (it may hold `/`), urllib up to
    the last `@` of the authority: the span covers both.
    """
    m = re.match(r"\s*[A-Za-z][A-Za-z0-9+.\-]*://[^:/]*:", url)
    if m is None:
        return None
    start = m.end()
    first_at = url.find("@", start)
    if first_at < 0:
        return None
    authority_end = next((i for i in range(start, len(url)) if url[i] in "/?#"), len(url))
    last_at = url.rfind("@", start, authority_end)
    end = max(first_at, last_at)
    return (start, end) if end > start else None


def _mask_userinfo(url: str) -> str:
    span = _userinfo_span(url)
    return url if span is None else url[:span[0]] + MASK + url[span[1]:]


def _mask_query_pair(m: re.Match) -> str:
    if m["value"] and _SECRET_KEY.search(unquote(m["key"])):
        return f"{m['key']}={MASK}"
    return m.group(0)


def _mask_keyword_pair(m: re.Match) -> str:
    return f"{m['key']}{m['eq']}{MASK}"


def _url_end(text: str, start: int) -> int:
    """Where a URL quoted in free text ends: at whitespace or a closing quote or bracket,
    less the punctuation of the sentence around it (`… at URL: reason`)."""
    end = start
    while end < len(text) and not text[end].isspace() and text[end] not in "'\"<>)]":
        end += 1
    while end > start and text[end - 1] in ".,;:":
        end -= 1
    return end


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
        if kind == "float":
            return float(raw)
        if "Path" in kind:
            return Path(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a valid value for {name}") from None
    return raw
