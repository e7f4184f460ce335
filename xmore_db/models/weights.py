"""Where a spec's weights come from, and reading them without running pickled code.

A spec's weights resolve, before torch builds anything, to one of three sources:

- none given: random initialisation, seeded so every process gets the same weights;
- a local file: read as a safetensors file or with `torch.load(weights_only=True)`;
- an open_clip tag (`openai`): taken from the local Hugging Face cache only.
  Nothing is downloaded, so missing weights fail at once instead of hanging.

Unknown tag, missing file, uncached weights and unreadable weights are
different problems for a user, and raise different errors.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelSpec
from ..errors import ConfigError, UnknownModelError, WeightsMissingError, first_line
from .registry import catalogue, check_arch, close_names

ROLE_ENV = {
    "coarse": "XMORE_COARSE_MODEL",
    "fine": "XMORE_FINE_MODEL",
    "classifier": "XMORE_CLASSIFIER_MODEL",
}
RANDOM_INIT_SEED = 0
# open_clip's default file names in a Hugging Face repo (open_clip/constants.py).
HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"
_HASH_BLOCK = 1 << 20  # files up to 2 blocks are hashed whole, larger ones head + tail
# Our own trained checkpoints, shipped in the package: `ARCH:toy` names CHECKPOINT_DIR/ARCH.safetensors.
BUILTIN_TAG = "toy"
CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


@dataclass(frozen=True)
class Weights:
    """Where a spec's weights come from, decided without building a model.

    `source` is "random", "file" or "tag"; `path` is the file to read (None for
    random); `tag_cfg` is open_clip's record for a tag (preprocessing, QuickGELU).
    `fingerprint` names the weights, the same in every process: the
    architecture with the seed, the tag, or the file's size and content hash.
    """

    arch: str
    source: str
    fingerprint: str
    path: Path | None = None
    tag: str | None = None
    tag_cfg: tuple[tuple[str, Any], ...] = ()


def resolve_weights(
    spec: ModelSpec | str, *, cache_dir: Path | None = None, role: str | None = None
) -> Weights:
    """Decide where the weights come from, without torch; reads at most 2 MiB of a file.

    Raises UnknownModelError (architecture or tag), WeightsMissingError (file
    missing, tag not cached) or ConfigError (path not a readable file).
    """
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    arch = check_arch(spec)
    pretrained = spec.pretrained
    if pretrained is None:
        return Weights(arch=arch, source="random",
                       fingerprint=f"{arch}:random-init(seed={RANDOM_INIT_SEED})")
    if pretrained == BUILTIN_TAG:
        return _builtin(spec, arch, role)
    names = catalogue()
    is_tag = names.is_tag(arch, pretrained)
    if spec.is_local_file or (not is_tag and Path(pretrained).expanduser().is_file()):
        return _local_file(spec, arch, Path(pretrained).expanduser(), role)
    if not is_tag:
        tags = names.tags(arch)
        if not tags:
            raise UnknownModelError(
                f"{arch} has no pretrained tags in open_clip, so {pretrained!r} is unknown: "
                f"use {arch} alone for random weights or {arch}:/path/to/weights"
            )
        close = close_names(pretrained, tags)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownModelError(
            f"unknown pretrained tag {pretrained!r} for {arch}: {hint}"
            f"valid tags are {', '.join(tags)} (or give a weights file, {arch}:/path/to/weights)"
        )
    return _cached_tag(spec, arch, cache_dir, role)


def check_weights(spec: ModelSpec | str, *, cache_dir: Path | None = None, role: str | None = None) -> Weights:
    """Resolve a spec's weights and make sure they can be read, without building a model.

    A tag must be in the local cache; a local file must exist and read as a state
    dict (safetensors' header, or `torch.load(weights_only=True)`, memory-mapped
    where the format allows). What `xmore init` checks for every role before it
    creates anything. Raises as `resolve_weights` does; each message names the
    path and, with `role`, the variable that set it.
    """
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    try:
        weights = resolve_weights(spec, cache_dir=cache_dir, role=role)
        if weights.source == "file" and weights.path is not None:
            check_state_dict(weights.path)
    except (ConfigError, WeightsMissingError) as e:
        if role not in ROLE_ENV or ROLE_ENV[role] in str(e):
            raise
        raise type(e)(f"{e} (set by {ROLE_ENV[role]}={spec})") from None
    return weights


def check_state_dict(path: Path) -> int:
    """Check that a checkpoint holds a state dict without reading its tensors; return their number.

    safetensors files: the header only. Zip checkpoints (torch.save's format):
    `torch.load(weights_only=True, mmap=True)`. Older pickles are read whole.
    Raises ConfigError with the messages of `read_state_dict`.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        return len(read_state_dict(path, mmap=True))
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            count = len(list(f.keys()))
    except (SafetensorError, OSError, ValueError) as e:
        raise ConfigError(f"cannot read weights file {path}: not a valid safetensors "
                          f"file ({first_line(e)})") from None
    if not count:
        raise ConfigError(f"weights file {path} does not hold a state_dict (a mapping of "
                          "parameter names to tensors)")
    return count


def read_state_dict(path: Path, *, mmap: bool = False) -> dict[str, Any]:
    """Tensors by parameter name from a checkpoint, without running pickled code.

    `.safetensors` files are read by safetensors; anything else by
    `torch.load(weights_only=True)`, which refuses pickled objects other than
    tensors and plain containers. A `{"state_dict": ...}` wrapper and a
    "module." prefix on every key (DataParallel) are removed. With `mmap`, a zip
    checkpoint's tensors are memory-mapped instead of read. Raises ConfigError.
    """
    import zipfile

    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            loaded: Any = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise ConfigError(f"cannot read weights file {path}: not a valid safetensors "
                              f"file ({first_line(e)})") from None
    else:
        import pickle

        try:
            with warnings.catch_warnings():  # torch's note on plain pickles' protocol is noise here
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                loaded = torch.load(path, map_location="cpu", weights_only=True,
                                    mmap=mmap and zipfile.is_zipfile(path))
        except pickle.UnpicklingError as e:
            raise ConfigError(
                f"refused to load weights file {path}: it is not a plain state_dict of tensors "
                "(a pickle that would run code, other Python objects, or not a checkpoint at "
                f"all; torch.load(weights_only=True) says: {_unpickling_reason(e)}); "
                "save model.state_dict() with torch.save or as .safetensors"
            ) from None
        except Exception as e:  # garbage bytes fail in many ways (EOFError, KeyError, RuntimeError...)
            reason = first_line(e) if isinstance(e, (RuntimeError, OSError, ValueError)) else ""
            raise ConfigError(f"cannot read weights file {path}: not a PyTorch checkpoint "
                              f"({reason or type(e).__name__})") from None

    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if (not isinstance(loaded, Mapping) or not loaded
            or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                       for k, v in loaded.items())):
        raise ConfigError(f"weights file {path} does not hold a state_dict (a mapping of "
                          "parameter names to tensors)")
    state = dict(loaded)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def role_words(role: str | None) -> str:
    return f" ({role} model)" if role else ""



def _local_file(spec: ModelSpec, arch: str, path: Path, role: str | None) -> Weights:
    if not path.exists():
        fix = f": point {ROLE_ENV[role]} at an existing checkpoint file" if role in ROLE_ENV else ""
        raise WeightsMissingError(f"weights file {path} for {spec}{role_words(role)} does not exist{fix}")
    if not path.is_file():
        raise ConfigError(f"weights path {path} for {spec}{role_words(role)} is not a file")
    try:
        digest = _file_digest(path)
    except OSError as e:
        raise ConfigError(f"cannot read weights file {path}: {e.strerror or e}") from None
    return Weights(arch=arch, source="file", path=path, fingerprint=f"{arch}:file:{digest}")


def builtin_checkpoints() -> list[str]:
    """Architectures with a committed checkpoint, loadable as `ARCH:toy`."""
    return sorted(p.stem for p in CHECKPOINT_DIR.glob("*.safetensors"))


def _builtin(spec: ModelSpec, arch: str, role: str | None) -> Weights:
    path = CHECKPOINT_DIR / f"{arch}.safetensors"
    if not path.is_file():
        have = ", ".join(f"{name}:{BUILTIN_TAG}" for name in builtin_checkpoints()) or "none"
        raise WeightsMissingError(
            f"no built-in checkpoint for {spec}{role_words(role)}: {path} does not exist "
            f"(built-in: {have}; scripts/train_toy_clip.py --arch {arch} trains one)"
        )
    return _local_file(spec, arch, path, role)


def _cached_tag(spec: ModelSpec, arch: str, cache_dir: Path | None, role: str | None) -> Weights:
    from huggingface_hub import try_to_load_from_cache

    tag = spec.pretrained.lower().replace("-", "_")  # open_clip's own tag normalisation
    cfg = catalogue().pretrained_cfg(arch, tag)
    found: Path | None = None
    repo_id, filename = "", ""
    if cfg.get("file"):
        found = Path(cfg["file"]) if Path(cfg["file"]).is_file() else None
    elif cfg.get("hf_hub"):
        # open_clip.download_pretrained's order: the safetensors twin first, then the named file.
        repo_id, filename = os.path.split(cfg["hf_hub"])
        filename = filename or HF_WEIGHTS_NAME
        for name in (*_safe_alternatives(filename), filename):
            hit = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(hit, str) and os.path.isfile(hit):
                found = Path(hit)
                break
    if found is None:
        raise WeightsMissingError(_missing_tag_message(arch, tag, cfg, repo_id, filename, role))
    frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()))
    return Weights(arch=arch, source="tag", path=found, tag=tag, fingerprint=f"{arch}:{tag}",
                   tag_cfg=frozen)


def _missing_tag_message(arch: str, tag: str, cfg: dict, repo_id: str, filename: str,
                         role: str | None) -> str:
    # Weights trained with QuickGELU need the -quickgelu architecture once they are a plain file.
    file_arch = arch
    if cfg.get("quick_gelu") and f"{arch}-quickgelu" in catalogue().list_models():
        file_arch = f"{arch}-quickgelu"
    name = HF_SAFE_WEIGHTS_NAME if filename == HF_WEIGHTS_NAME else (filename or "weights.pt")
    where = (f"download {name} from https://huggingface.co/{repo_id} " if repo_id
             else "download them ")
    setting = f"point {ROLE_ENV[role]} at the file" if role else "give the file in the model spec"
    return (
        f"weights for {arch}:{tag}{role_words(role)} are not in the local cache and cannot be "
        f"downloaded here; {where}where you have network and {setting}, "
        f"e.g. {file_arch}:/path/to/{name}"
    )


def _safe_alternatives(filename: str) -> list[str]:
    if filename == HF_WEIGHTS_NAME:
        return [HF_SAFE_WEIGHTS_NAME]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors"]
    return []


def _file_digest(path: Path) -> str:
    """`size=N:sha256=HEX` (whole file) or `size=N:sha256-head-tail=HEX` (first + last MiB).

    Content only, not the path: a moved or copied checkpoint keeps its fingerprint.
    """
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as f:
        if size <= 2 * _HASH_BLOCK:
            h.update(f.read())
            return f"size={size}:sha256={h.hexdigest()}"
        h.update(f.read(_HASH_BLOCK))
        f.seek(size - _HASH_BLOCK)
        h.update(f.read(_HASH_BLOCK))
    return f"size={size}:sha256-head-tail={h.hexdigest()}"


def _unpickling_reason(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or line.startswith(("Unsupported", "Trying")):
            return line.rstrip(".")
    return lines[0] if lines else type(e).__name__
