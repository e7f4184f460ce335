"""The files a service was started with for the CODER and RECO methods, checked once at startup.

`xmore serve --textbank FILE` (repeatable) and `--fusion FILE`. A classify
request names its labels inline, so the text bank it gets is the one holding
exactly those classes (in any order); two banks with the same classes are
refused at startup, so the choice is never ambiguous. The fusion layer does not
depend on the labels: one serves every request. A request whose method needs a
file the service was not given gets 422 naming the option to start it with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .errors import ApiError

if TYPE_CHECKING:
    from ..methods.inputs import MethodFiles
    from ..workspace import Workspace


@dataclass(frozen=True)
class ServedFiles:
    """Text banks by the set of classes each holds, and the fusion layer; `check` builds one."""

    banks: dict[frozenset[str], Path] = field(default_factory=dict)
    fusion: Path | None = None

    @classmethod
    def check(cls, workspace: Workspace, *, textbanks: list[Path] | tuple[Path, ...] = (),
              fusion: Path | None = None) -> ServedFiles:
        """Read every bank and check the fusion layer against the configured classifier; one-line errors."""
        from ..coder.bank import load_bank
        from ..methods.base import FUSION
        from ..methods.inputs import MethodFiles, check_files

        banks: dict[frozenset[str], Path] = {}
        for path in textbanks:
            classes = frozenset(load_bank(path).classes)
            if classes in banks:
                raise ConfigError(f"text banks {banks[classes]} and {path} hold the same classes, so a request "
                                  "could not tell which to use: give one of them")
            banks[classes] = Path(path)
        if fusion is not None:
            check_files(workspace, {FUSION}, MethodFiles(fusion=fusion))
        return cls(banks=banks, fusion=fusion)

    def methods(self) -> list[str]:
        """The methods this service can run: those whose files it was started with (`methods` in /v1/status)."""
        from ..methods.inputs import MethodFiles, available_methods

        return available_methods(MethodFiles(textbank=next(iter(self.banks.values()), None), fusion=self.fusion))

    def for_request(self, method: str, labels: list[str]) -> MethodFiles:
        """The files `method` reads for these labels; ApiError 422 naming the missing `xmore serve` option."""
        from ..methods import get_method
        from ..methods.base import FUSION, TEXTBANK
        from ..methods.inputs import MethodFiles

        needs = get_method(method).needs
        textbank = None
        if TEXTBANK in needs:
            if not self.banks:
                raise ApiError(422, f"method {method} needs a CODER text bank, and this service was started "
                                    "without one: start `xmore serve` with --textbank FILE")
            textbank = self.banks.get(frozenset(labels))
            if textbank is None:
                raise ApiError(422, f"method {method} needs a text bank holding exactly the {len(labels)} labels "
                                    f"given, and none of this service's {len(self.banks)} does: start "
                                    "`xmore serve` with --textbank FILE for these classes")
        if FUSION in needs and self.fusion is None:
            raise ApiError(422, f"method {method} needs a RECO fusion layer, and this service was started without "
                                "one: start `xmore serve` with --fusion FILE")
        return MethodFiles(textbank=textbank, fusion=self.fusion)
