"""Reading a labels file: one class name per line."""

from __future__ import annotations

from pathlib import Path

from .errors import LabelsError


def read_labels(path: str | Path) -> list[str]:
    """Class names in file order. Blank lines and lines starting with '#' are ignored.

    An empty file, fewer than two classes, or a repeated name is an error: the
    ensemble needs at least two classes, and a duplicate would split one class's
    probability in two.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelsError(f"labels file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc}") from None
    labels: list[str] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        label = raw.strip()
        if not label or label.startswith("#"):
            continue
        if label in first_line:
            raise LabelsError(
                f"labels file {path} repeats {label!r} (lines {first_line[label]} and {number})"
            )
        first_line[label] = number
        labels.append(label)
    if not labels:
        raise LabelsError(f"labels file {path} has no labels: write one class name per line")
    if len(labels) < 2:
        raise LabelsError(f"labels file {path} has only one label: classification needs at least 2")
    return labels


def check_labels(labels: list[str]) -> list[str]:
    """Class names given in code: stripped, at least two, none repeated or empty (the rules of read_labels)."""
    if isinstance(labels, str):
        raise LabelsError("labels must be a list of class names, not one string")
    names = [str(label).strip() for label in labels]
    if any(not name for name in names):
        raise LabelsError("a label is empty")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LabelsError(f"labels repeat {', '.join(map(repr, repeated))}")
    if len(names) < 2:
        raise LabelsError("classification needs at least 2 labels")
    return names
