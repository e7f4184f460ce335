"""Importing the CODER authors' released knowledge files (YCaigogogo/CVPR24-CODER) as a text bank.

Under the folder DIR given, for dataset DS (any of the four may be absent, not all):

    DIR/expert_knowledge/attribute/DS.pkl       pickled list: per class (label order) a list of attribute phrases
    DIR/expert_knowledge/simile_class/DS.pkl    pickled list: per class a list of analogous class names
    DIR/expert_knowledge/synonym/DS.json        list: per class {"syno": [synonyms]}
    DIR/expert_knowledge/ovo_attribute/DS.json  {class a: {class b: [phrases telling a from b]}}
    DIR/datasets/class_name/DS.txt              class names, one per line, in label order

The pickles are read with the restricted unpickler (pickles.py). The bank's class names are the labels
given (matched to the authors' by position, and to their names with "_" read as a space, case ignored),
else the authors' names with "_" read as a space.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import TextBankError
from .bank import ClassTexts, TextBank, bank_from_dict
from .pickles import load_restricted, phrase_lists


def knowledge_files(root: Path, dataset: str) -> dict[str, Path]:
    """The authors' file of each kind for `dataset` under `root` (they need not exist)."""
    knowledge = Path(root) / "expert_knowledge"
    return {"attributes": knowledge / "attribute" / f"{dataset}.pkl",
            "analogies": knowledge / "simile_class" / f"{dataset}.pkl",
            "synonyms": knowledge / "synonym" / f"{dataset}.json",
            "ovo": knowledge / "ovo_attribute" / f"{dataset}.json",
            "class_names": Path(root) / "datasets" / "class_name" / f"{dataset}.txt"}


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


def _class_names(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TextBankError(f"cannot read the class names {path}: {e}") from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise TextBankError(f"the class names file {path} is empty")
    return names


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TextBankError(f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TextBankError(f"cannot read {path}: {e}") from None


def import_coder(root: str | Path, dataset: str, labels: list[str] | None = None) -> TextBank:
    """The text bank of the authors' knowledge files for `dataset` under `root`; TextBankError (one line)."""
    root = Path(root)
    files = knowledge_files(root, dataset)
    if not root.is_dir():
        raise TextBankError(f"{root} is not a folder (expected the authors' layout: expert_knowledge/, datasets/)")
    present = {kind: path for kind, path in files.items() if path.is_file()}
    if not set(present) - {"class_names"}:
        raise TextBankError(f"no knowledge files for dataset {dataset!r} under {root}: expected "
                            f"{files['attributes'].relative_to(root)}, {files['analogies'].relative_to(root)}, "
                            f"{files['synonyms'].relative_to(root)} or {files['ovo'].relative_to(root)}")
    authors = _class_names(present["class_names"]) if "class_names" in present else None
    if labels is None and authors is None:
        raise TextBankError(f"no class names: {files['class_names']} does not exist; pass --labels FILE "
                            "(one name per line, in the authors' label order)")
    names = list(labels) if labels is not None else [" ".join(a.replace("_", " ").split()) for a in authors]
    if labels is not None and authors is not None:
        if len(authors) != len(labels):
            raise TextBankError(f"the labels have {len(labels)} classes, {files['class_names']} {len(authors)}")
        differ = [f"{i + 1}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(authors, labels, strict=True))
                  if _key(a) != _key(b)]
        if differ:
            raise TextBankError(f"the labels differ from {files['class_names']} at line "
                                f"{'; '.join(differ[:5])}" + (f" (and {len(differ) - 5} more)" if len(differ) > 5
                                                              else ""))
    n = len(names)
    lists = {kind: phrase_lists(load_restricted(present[kind]), str(present[kind]), n)
             for kind in ("attributes", "analogies") if kind in present}
    if "synonyms" in present:
        lists["synonyms"] = _synonyms(_json(present["synonyms"]), present["synonyms"], n)
    classes = {name: ClassTexts(**{kind: tuple(values[i]) for kind, values in lists.items()})
               for i, name in enumerate(names)}
    if len(classes) != n:
        raise TextBankError(f"the class names repeat a name ({n} names, {len(classes)} distinct)")
    ovo = _ovo(_json(present["ovo"]), present["ovo"], names, authors) if "ovo" in present else {}
    bank = TextBank(classes=classes, ovo=ovo, source=f"imported from {root} ({dataset})")
    # The bank's own checks (empty phrases, pairs of a class with itself) with the same one-line errors.
    return bank_from_dict(bank.to_dict(), source=bank.source)


def _synonyms(value: object, path: Path, n: int) -> list[list[str]]:
    if not isinstance(value, list) or len(value) != n:
        size = len(value) if isinstance(value, list) else type(value).__name__
        raise TextBankError(f"{path} must be a list of {n} {{\"syno\": [...]}} entries, one per class (got {size})")
    out = []
    for i, entry in enumerate(value):
        synonyms = entry.get("syno") if isinstance(entry, dict) else None
        if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
            raise TextBankError(f"{path}: entry {i + 1} is not {{\"syno\": [strings]}}")
        out.append(synonyms)
    return out


def _ovo(value: object, path: Path, names: list[str], authors: list[str] | None) -> dict:
    if not isinstance(value, dict):
        raise TextBankError(f"{path} must be an object: {{class a: {{class b: [phrases]}}}}")
    by_key = {_key(a): name for a, name in zip(authors, names, strict=True)} if authors else {}
    by_key.update({_key(name): name for name in names})
    unknown = sorted({k for a, others in value.items() for k in [a, *(others if isinstance(others, dict) else [])]
                      if _key(k) not in by_key})
    if unknown:
        raise TextBankError(f"{path} names classes that are not in the labels: {', '.join(unknown[:10])}")
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for a, others in value.items():
        if not isinstance(others, dict):
            raise TextBankError(f"{path}: the entry of {a!r} must be an object {{class b: [phrases]}}")
        for b, phrases in others.items():
            if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
                raise TextBankError(f"{path}: {a!r} vs {b!r} must be a list of strings")
            if phrases:
                out.setdefault(by_key[_key(a)], {})[by_key[_key(b)]] = tuple(phrases)
    return out
