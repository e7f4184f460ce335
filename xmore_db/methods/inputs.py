"""The shared stages beyond image embeddings and retrieval: what some methods need, computed once.

`classify` and `eval` both call `extra_inputs` with the names the chosen
methods declare in `needs` (methods.base.INPUTS); it returns the fields of
MethodInputs to fill. Captions come from retrieval, which the callers run
themselves; this module adds the text bank (CODER), the fusion layer (RECO)
and the class prompts' retrieved neighbours (RECO's text side).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import FUSION, PROMPT_NEIGHBOURS, TEXTBANK

if TYPE_CHECKING:
    from ..workspace import Workspace


@dataclass(frozen=True)
class MethodFiles:
    """Files some methods read: a CODER text bank (JSON), a RECO fusion layer (safetensors)."""

    textbank: Path | None = None
    fusion: Path | None = None


def available_methods(files: MethodFiles) -> list[str]:
    """The registered methods whose inputs can be computed with `files` (what eval runs by default)."""
    from . import registry

    missing = set()
    if files.textbank is None:
        missing.add(TEXTBANK)
    if files.fusion is None:
        missing.add(FUSION)
    return [name for name, m in registry().items() if not (m.needs & missing)]


def extra_inputs(workspace: Workspace, needs: set[str], *, labels: list[str], template: str,
                 files: MethodFiles) -> dict[str, Any]:
    """{MethodInputs field: value} for the needs beyond captions; ConfigError naming a missing file."""
    out: dict[str, Any] = {}
    if TEXTBANK in needs:
        raise ConfigError("the CODER methods are not available yet")
    if FUSION in needs or PROMPT_NEIGHBOURS in needs:
        raise ConfigError("the RECO methods are not available yet")
    return out
