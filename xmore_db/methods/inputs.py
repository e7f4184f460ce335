"""The shared stages beyond image embeddings and retrieval: what some methods need, computed once.

`classify` and `eval` both call `extra_inputs` with the names the chosen
methods declare in `needs` (methods.base.INPUTS); it returns the fields of
MethodInputs to fill. Captions come from retrieval, which the callers run
themselves; this module adds the text bank (CODER), the fusion layer (RECO)
and the class prompts' retrieved neighbours (RECO's text side).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import FUSION, PROMPT_NEIGHBOURS, TEXTBANK

if TYPE_CHECKING:
    from ..workspace import Workspace


@dataclass(frozen=True)
class MethodFiles:
    """Files some methods read: a CODER text bank (JSON), a RECO fusion layer (safetensors)."""

    textbank: Path | None = None
    # Eval only: a text bank per dataset name (--textbank NAME=FILE), before `textbank` (a bare FILE).
    textbanks: dict[str, Path] = field(default_factory=dict)
    fusion: Path | None = None

    def for_dataset(self, name: str) -> MethodFiles:
        """The files for one dataset of an eval: its own text bank where one is named for it."""
        return replace(self, textbank=self.textbanks.get(name, self.textbank), textbanks={})


def available_methods(files: MethodFiles) -> list[str]:
    """The registered methods whose inputs can be computed with `files` (what eval runs by default)."""
    from . import registry

    missing = set()
    if files.textbank is None and not files.textbanks:
        missing.add(TEXTBANK)
    if files.fusion is None:
        missing.add(FUSION)
    return [name for name, m in registry().items() if not (m.needs & missing)]


def check_files(workspace: Workspace, needs: set[str], files: MethodFiles) -> None:
    """Before any work: the files the needs read are given and usable (one-line errors otherwise)."""
    if FUSION in needs:
        from ..reco.inputs import check_fusion

        check_fusion(workspace, files.fusion)


def extra_inputs(workspace: Workspace, needs: set[str], *, labels: list[str], template: str,
                 files: MethodFiles) -> dict[str, Any]:
    """{MethodInputs field: value} for the needs beyond captions; ConfigError naming a missing file."""
    out: dict[str, Any] = {}
    if TEXTBANK in needs:
        from ..coder.encode import workspace_bank

        out["textbank"] = workspace_bank(workspace, files.textbank, labels)
    if FUSION in needs or PROMPT_NEIGHBOURS in needs:
        from ..reco.inputs import reco_inputs

        out.update(reco_inputs(workspace, needs, labels=labels, template=template, fusion=files.fusion))
    return out
