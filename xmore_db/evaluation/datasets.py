"""Labelled test sets on disk: the ImageFolder layout, or a CoOp split file.

- ImageFolder: DIR/<class>/<image>; each sub-folder names a class of the
  labels file (exactly, or with '_' for ' ', case ignored).
- CoOp (the paper's ten datasets): split_zhou_<Name>.json holding
  {"train": [...], "val": [...], "test": [[relpath, label_index, classname], ...]},
  paths relative to an images root (given, or the split's folder/images, or the
  split's folder). Class names come from the split file (its classname column,
  by label index, over all its lists); a labels file, if given, must agree with
  them index by index. Missing images fail, or are left out with skip_missing
  (counted in `missing`).

Prompts are filled with `prompt_labels`: the class names with '_' written as ' ',
as CoOp does (`name.replace("_", " ")`), whatever their source (split file,
labels file, ImageFolder). `labels` keeps them as written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import BadInputError
from ..labels import read_labels

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class EvalDataset:
    name: str
    layout: str  # "imagefolder" | "coop"
    source: Path  # the folder or the split file
    root: Path  # image paths are relative to this
    labels: list[str]
    images: list[str]  # relative paths, '/' separators, in dataset order
    targets: list[int]  # label index of each image
    split: str | None = None  # the CoOp split's list evaluated
    missing: int = 0  # images of the split that do not exist, left out (skip_missing)
    class_source: str = "labels file"  # where the class names came from

    @property
    def prompt_labels(self) -> list[str]:
        """The class names as the prompts get them: '_' written as ' ', as CoOp does."""
        return [label.replace("_", " ") for label in self.labels]

    def fingerprint(self) -> str:
        """sha256 of the image list (paths, sizes, modification times): a new or changed image changes it."""
        h = hashlib.sha256()
        for rel in self.images:
            stat = (self.root / rel).stat()
            h.update(f"{rel}\x1f{stat.st_size}\x1f{stat.st_mtime_ns}\n".encode())
        return h.hexdigest()


def _normalise(name: str) -> str:
    return name.replace("_", " ").strip().lower()


def load_imagefolder(name: str, folder: Path, labels: list[str]) -> EvalDataset:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise BadInputError(f"dataset {name}: {folder} has no class sub-folders "
                            "(ImageFolder layout: DIR/<class>/<image>)")
    by_name = {_normalise(label): i for i, label in enumerate(labels)}
    unmatched = [p.name for p in classes if _normalise(p.name) not in by_name]
    if unmatched:
        raise BadInputError(
            f"dataset {name}: sub-folders of {folder} not in the labels file: {', '.join(unmatched[:5])}"
            + (f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else "")
            + " (a folder must be named like its class, '_' for spaces)")
    images, targets = [], []
    for class_dir in classes:
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        images += [p.relative_to(folder).as_posix() for p in files]
        targets += [by_name[_normalise(class_dir.name)]] * len(files)
    if not images:
        raise BadInputError(f"dataset {name}: no images under {folder}")
    return EvalDataset(name, "imagefolder", folder, folder, labels, images, targets)


def load_coop(name: str, split_file: Path, labels: list[str] | None, images_root: Path | None,
              split: str = "test", *, labels_file: Path | None = None, skip_missing: bool = False) -> EvalDataset:
    """A CoOp split's list `split`; class names from the split file unless `labels` (checked against it)."""
    try:
        data = json.loads(split_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"dataset {name}: cannot read split file {split_file}: {e}") from None
    lists = [k for k, v in data.items() if isinstance(v, list)] if isinstance(data, dict) else []
    if split not in lists:
        has = f"it has {', '.join(lists)}" if lists else 'expected {"test": [[relpath, label_index, classname], ...]}'
        raise BadInputError(f"dataset {name}: {split_file} has no split {split!r} ({has}): choose one with --split")
    rows = data[split]
    if not rows:
        raise BadInputError(f"dataset {name}: the split {split!r} of {split_file} is empty")
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) >= 2 and isinstance(row[0], str) and isinstance(row[1], int)
                and row[1] >= 0):
            raise BadInputError(f"dataset {name}: {split_file} {split}[{i}] is not [relpath, label_index, classname]")
    names = split_class_names(name, split_file, {k: data[k] for k in lists})
    class_source = f"split file {split_file}"
    if labels is not None:
        check_labels_agree(name, labels, labels_file, names, split_file)
        class_source = f"labels file {labels_file}"
    elif names and len(names) != max(names) + 1:
        gap = next(i for i in range(max(names) + 1) if i not in names)
        raise BadInputError(f"dataset {name}: {split_file} names no class for label index {gap} (its label "
                            f"indices go up to {max(names)}): pass --labels")
    elif not names:
        beside = split_file.parent / "labels.txt"
        if not beside.is_file():
            raise BadInputError(f"dataset {name}: the rows of {split_file} name no classes and there is no "
                                f"labels file at {beside}: pass --labels")
        labels, class_source = read_labels(beside), f"labels file {beside}"
    else:
        labels = [names[i] for i in range(len(names))]
    for i, row in enumerate(rows):
        if row[1] >= len(labels):
            raise BadInputError(f"dataset {name}: {split_file} {split}[{i}] has label index {row[1]} but the "
                                f"{class_source} has {len(labels)} classes")
    if names and len(labels) != max(names) + 1:
        raise BadInputError(f"dataset {name}: labels file {labels_file} has {len(labels)} classes but {split_file} "
                            f"names {max(names) + 1} (without --labels the split's are used)")
    given_root = images_root is not None
    if images_root is None:
        images_root = split_file.parent / "images" if (split_file.parent / "images").is_dir() else split_file.parent
    kept = [row for row in rows if (images_root / row[0]).is_file()]
    missing = len(rows) - len(kept)
    if missing and (not skip_missing or not kept):
        first = next(row[0] for row in rows if not (images_root / row[0]).is_file())
        where = (f"--images-root {images_root} was given" if given_root else
                 f"paths are relative to {images_root} by default: pass --images-root DIR if they are elsewhere")
        rest = "; or --skip-missing to evaluate the rest" if not skip_missing else ": nothing left to evaluate"
        raise BadInputError(f"dataset {name}: {missing} of {len(rows)} images of {split_file} ({split}) do not "
                            f"exist, the first tried at {images_root / first} ({where}){rest}")
    return EvalDataset(name, "coop", split_file, images_root, labels, [row[0] for row in kept],
                       [row[1] for row in kept], split=split, missing=missing, class_source=class_source)


def split_class_names(name: str, split_file: Path, lists: dict[str, list]) -> dict[int, str]:
    """{label index: class name} from every list of a split file (its rows' third column); {} if none."""
    names: dict[int, tuple[str, str]] = {}
    for split, rows in lists.items():
        for i, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) >= 3 and isinstance(row[1], int) and isinstance(row[2], str)):
                continue
            seen = names.setdefault(row[1], (row[2], f"{split}[{i}]"))
            if _normalise(seen[0]) != _normalise(row[2]):
                raise BadInputError(f"dataset {name}: {split_file} names label index {row[1]} both {seen[0]!r} "
                                    f"({seen[1]}) and {row[2]!r} ({split}[{i}])")
    return {index: entry[0] for index, entry in sorted(names.items())}


def check_labels_agree(name: str, labels: list[str], labels_file: Path | None, names: dict[int, str],
                       split_file: Path) -> None:
    """A labels file must name the split's classes in label-index order (case and '_' for ' ' ignored)."""
    first = next((i for i, n in names.items() if i < len(labels) and _normalise(labels[i]) != _normalise(n)), None)
    if first is not None:
        raise BadInputError(
            f"dataset {name}: labels file {labels_file} disagrees with {split_file} at label index {first}: "
            f"{labels[first]!r} there, {names[first]!r} in the split (class names go in label-index order; "
            "without --labels they are taken from the split)")


def load_dataset(name: str, path: Path, labels_file: Path | None, *, images_root: Path | None = None,
                 split: str = "test", skip_missing: bool = False) -> EvalDataset:
    """An ImageFolder directory or a CoOp split file.

    ImageFolder: labels from `labels_file`, default labels.txt in the folder.
    CoOp: class names from the split file; a labels file given must agree with them.
    """
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"dataset {name}: {path} does not exist")
    if path.is_file() and path.suffix == ".json":
        labels = read_labels(labels_file) if labels_file is not None else None
        return load_coop(name, path, labels, images_root, split, labels_file=labels_file, skip_missing=skip_missing)
    if not path.is_dir():
        raise BadInputError(f"dataset {name}: {path} is neither a folder (ImageFolder) nor a split_zhou_*.json file")
    if labels_file is None:
        labels_file = path / "labels.txt"
        if not labels_file.is_file():
            raise BadInputError(f"dataset {name}: no labels file given and none at {labels_file}: pass --labels")
    return replace(load_imagefolder(name, path, read_labels(labels_file)), class_source=f"labels file {labels_file}")


def parse_named(values: list[str] | None, option: str) -> tuple[dict[str, str], str | None]:
    """NAME=VALUE pairs, and at most one bare VALUE (a default for every name)."""
    named: dict[str, str] = {}
    default = None
    for value in values or []:
        name, sep, rest = value.partition("=")
        if sep and name and "/" not in name and "\\" not in name:
            if name in named:
                raise BadInputError(f"{option} names {name!r} twice")
            named[name] = rest
        elif default is None:
            default = value
        else:
            raise BadInputError(f"{option} given twice without NAME=: write {option} NAME=VALUE for each dataset")
    return named, default


def dataset_name(path: Path) -> str:
    """A default name: the folder's name, or the split file's name without split_zhou_."""
    path = Path(path)
    if path.is_dir():
        return path.resolve().name
    return path.stem.removeprefix("split_zhou_")
