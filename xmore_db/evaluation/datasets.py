"""Labelled test sets on disk: the ImageFolder layout, or a CoOp split file.

- ImageFolder: DIR/<class>/<image>; each sub-folder names a class of the
  labels file (exactly, or with '_' for ' ', case ignored).
- CoOp (the paper's ten datasets): split_zhou_<Name>.json holding
  {"test": [[relpath, label_index, classname], ...]}, paths relative to an
  images root (given, or the split's folder/images, or the split's folder).
  Class names come from the labels file, in label-index order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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


def load_coop(name: str, split_file: Path, labels: list[str], images_root: Path | None,
              split: str = "test") -> EvalDataset:
    try:
        data = json.loads(split_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"dataset {name}: cannot read split file {split_file}: {e}") from None
    rows = data.get(split) if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise BadInputError(f"dataset {name}: {split_file} has no {split!r} list "
                            "(expected {\"test\": [[relpath, label_index, classname], ...]})")
    if images_root is None:
        images_root = split_file.parent / "images" if (split_file.parent / "images").is_dir() else split_file.parent
    images, targets = [], []
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) >= 2 and isinstance(row[0], str) and isinstance(row[1], int)):
            raise BadInputError(f"dataset {name}: {split_file} {split}[{i}] is not [relpath, label_index, classname]")
        if not 0 <= row[1] < len(labels):
            raise BadInputError(f"dataset {name}: {split_file} {split}[{i}] has label index {row[1]} but the "
                                f"labels file has {len(labels)} classes")
        images.append(row[0])
        targets.append(row[1])
    missing = [rel for rel in images if not (images_root / rel).is_file()]
    if missing:
        raise BadInputError(f"dataset {name}: {len(missing)} images of {split_file} are not under {images_root} "
                            f"(e.g. {missing[0]}); pass --images-root")
    return EvalDataset(name, "coop", split_file, images_root, labels, images, targets)


def load_dataset(name: str, path: Path, labels_file: Path | None, *, images_root: Path | None = None,
                 split: str = "test") -> EvalDataset:
    """An ImageFolder directory or a CoOp split file; labels default to labels.txt beside the data."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"dataset {name}: {path} does not exist")
    if labels_file is None:
        labels_file = (path if path.is_dir() else path.parent) / "labels.txt"
        if not labels_file.is_file():
            raise BadInputError(f"dataset {name}: no labels file given and none at {labels_file}: pass --labels")
    labels = read_labels(labels_file)
    if path.is_dir():
        return load_imagefolder(name, path, labels)
    if path.suffix == ".json":
        return load_coop(name, path, labels, images_root, split)
    raise BadInputError(f"dataset {name}: {path} is neither a folder (ImageFolder) nor a split_zhou_*.json file")


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
