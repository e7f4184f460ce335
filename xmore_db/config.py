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
# Storage profiles and the knobs they bundle (store/storage.py, README *Storage profiles*); named here for the CLI.
STORAGE_PROFILES = ("exact", "compact", "tiny")
VECTOR_DATATYPES = ("float32", "float16")
QUANTIZATIONS = ("none", "scalar", "binary")
# The share of the exact top-K the coarse search should find; the store picks its beam for it (store/beam.py).
DEFAULT_RECALL_TARGET = 0.95
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
    # The coarse search's beam: None takes the smallest one the store measured to reach `recall_target`
    # (store/beam.py); a number overrides it.
    hnsw_ef: int | None = None
    recall_target: float = DEFAULT_RECALL_TARGET
    template: str = DEFAULT_TEMPLATE
    normalize: str = "minmax"
    batch_size: int = 32
    caption_cache: bool = True
    # RECO: the weight of the retrieved mean in reco-mean, and the items retrieved per query.
    reco_alpha: float = 1.0
    reco_k: int = 10
    coder_threshold: float = DEFAULT_CODER_THRESHOLD
    # How `xmore init` lays the collections out on a Qdrant cluster; None leaves it to the server
    # (one shard per node, one copy, writes acknowledged by one copy).
    qdrant_shards: int | None = None
    qdrant_replicas: int | None = None
    qdrant_write_consistency: int | None = None
    # How the collections hold their vectors and build their graph (README, *Storage profiles*). None: not
    # asked; an existing store keeps what it recorded at `xmore init`, a new one takes the profile's (`exact`).
    storage_profile: str | None = None
    vector_datatype: str | None = None
    quantization: str | None = None
    vectors_on_disk: bool | None = None
    oversampling: float | None = None
    hnsw_m: int | None = None
    hnsw_ef_construct: int | None = None
    corpus_index: bool | None = None

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
        "recall_target": "XMORE_RECALL_TARGET",
        "template": "XMORE_TEMPLATE",
        "normalize": "XMORE_NORMALIZE",
        "batch_size": "XMORE_BATCH_SIZE",
        "caption_cache": "XMORE_CAPTION_CACHE",
        "reco_alpha": "XMORE_RECO_ALPHA",
        "reco_k": "XMORE_RECO_K",
        "coder_threshold": "XMORE_CODER_THRESHOLD",
        "qdrant_shards": "XMORE_QDRANT_SHARDS",
        "qdrant_replicas": "XMORE_QDRANT_REPLICAS",
        "qdrant_write_consistency": "XMORE_QDRANT_WRITE_CONSISTENCY",
        "storage_profile": "XMORE_STORAGE_PROFILE",
        "vector_datatype": "XMORE_VECTOR_DATATYPE",
        "quantization": "XMORE_QUANTIZATION",
        "vectors_on_disk": "XMORE_VECTORS_ON_DISK",
        "oversampling": "XMORE_OVERSAMPLING",
        "hnsw_m": "XMORE_HNSW_M",
        "hnsw_ef_construct": "XMORE_HNSW_EF_CONSTRUCT",
        "corpus_index": "XMORE_CORPUS_INDEX",
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
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.recall_target <= 1:
            raise ConfigError(f"--recall-target (XMORE_RECALL_TARGET) is the share of the exact top-K the coarse "
                              f"search should find, above 0 and at most 1; got {self.recall_target}")
        self._check_cluster_layout()
        self._check_storage()
        if self.fine_k > self.coarse_k:
            raise ConfigError(
                f"-k/--fine-k ({self.fine_k}, XMORE_FINE_K) cannot exceed -K/--coarse-k ({self.coarse_k}, "
                "XMORE_COARSE_K): "
                "the fine stage ranks the coarse candidates"
            )
        if "{label}" not in self.template:
            raise ConfigError(f"template {self.template!r} must contain {{label}}")

    def _check_cluster_layout(self) -> None:
        for name, option in CLUSTER_OPTIONS.items():
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{option} ({self.ENV[name]}) must be at least 1, got {value}")
        # Qdrant acknowledges a write once this many copies hold it: more than there are refuses every write.
        copies = self.qdrant_replicas or 1
        if (self.qdrant_write_consistency or 1) > copies:
            raise ConfigError(
                f"--write-consistency ({self.qdrant_write_consistency}, XMORE_QDRANT_WRITE_CONSISTENCY) cannot "
                f"exceed the replication factor ({copies}{'' if self.qdrant_replicas else ' by default'}, "
                "--replicas, XMORE_QDRANT_REPLICAS): a write would wait for copies that do not exist")

    def _check_storage(self) -> None:
        def named(name: str) -> str:
            return f"{STORAGE_OPTIONS[name]} ({self.ENV[name]})"

        for name, choices in (("storage_profile", STORAGE_PROFILES), ("vector_datatype", VECTOR_DATATYPES),
                              ("quantization", QUANTIZATIONS)):
            value = getattr(self, name)
            if value is not None and value not in choices:
                raise ConfigError(f"{named(name)} {value!r} is not one of {', '.join(choices)}")
        # Qdrant's own lower bounds; m=0 (no graph) would turn every coarse search into a full scan.
        for name, least in (("hnsw_m", 2), ("hnsw_ef_construct", 4)):
            value = getattr(self, name)
            if value is not None and value < least:
                raise ConfigError(f"{named(name)} must be at least {least}, got {value}")
        if self.oversampling is not None and not 1 <= self.oversampling < float("inf"):
            raise ConfigError(f"{named('oversampling')} must be a finite number at least 1 (candidates rescored "
                              f"per hit wanted), got {self.oversampling}")

    @property
    def qdrant_cluster(self) -> dict[str, int]:
        """The collection layout given for a Qdrant cluster, as qdrant-client's create_collection names it."""
        given = {"shard_number": self.qdrant_shards, "replication_factor": self.qdrant_replicas,
                 "write_consistency_factor": self.qdrant_write_consistency}
        return {name: value for name, value in given.items() if value is not None}

    @property
    def qdrant_cluster_ignored(self) -> str | None:
        """Why the given cluster layout has no effect here; None where a Qdrant server applies it (or none is given)."""
        if not self.qdrant_cluster:
            return None
        given = ", ".join(option for name, option in CLUSTER_OPTIONS.items() if getattr(self, name) is not None)
        url = (self.qdrant_url or "").strip()
        if not url:
            return (f"{given} ignored: the embedded Qdrant Edge store is one copy in one process; "
                    "shards and replicas apply to a Qdrant server (XMORE_QDRANT_URL=http://HOST:6333)")
        if url == ":memory:" or url.startswith("file:"):
            return (f"{given} ignored: qdrant-client's local mode ({url}) accepts and ignores them, "
                    "it keeps one copy in one process; they apply to a Qdrant server (http://HOST:6333)")
        return None

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


# The storage settings and the global options that set them (README, *Storage profiles*).
STORAGE_OPTIONS = {"storage_profile": "--storage-profile", "vector_datatype": "--vector-datatype",
                   "quantization": "--quantization", "vectors_on_disk": "--vectors-on-disk",
                   "oversampling": "--oversampling", "hnsw_m": "--hnsw-m", "hnsw_ef_construct": "--hnsw-ef-construct",
                   "corpus_index": "--corpus-index"}

# The cluster layout settings and the `xmore init` options that set them.
CLUSTER_OPTIONS = {"qdrant_shards": "--shards", "qdrant_replicas": "--replicas",
                   "qdrant_write_consistency": "--write-consistency"}


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
    kind = str(type_name).removesuffix(" | None")
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
