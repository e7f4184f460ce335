"""A CODER text bank: what CODER knows about a label set, as one JSON file (README, *Text banks*).

    {
      "format": "xmore-textbank/1",
      "templates": {"name": "a photo of a {c}.", "ovo": ["Because of {phrase}, {a} is different from {b}."]},
      "classes": {
        "circle": {"synonyms": ["disc"], "attributes": ["a round outline"], "analogies": ["ring"]},
        "square": {}
      },
      "ovo": {"circle": {"square": ["no corners"]}}
    }

Only "classes" is required; every list in a class entry is optional ({} is a class known by its name
alone). "templates" overrides the defaults per text type (a string or a list of strings); "ovo" holds
CODER*'s phrases telling class a from class b. `TextBank.layout()` turns a bank into the texts the
classifier encodes.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TextBankError
from ..files import write_atomically

FORMAT = "xmore-textbank/1"
KINDS = ("synonyms", "attributes", "analogies")
# Per text type: the placeholders each template must use, and the defaults (the authors' general ones).
TEMPLATE_FIELDS = {
    "name": {"c"}, "synonym": {"c"}, "attribute": {"c", "attribute"}, "analogy": {"c", "other"},
    "ovo": {"a", "b", "phrase"},
}
DEFAULT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "name": ("a photo of {c}",),
    "attribute": ("{c} which has {attribute}",),
    "analogy": ("a {c} similar to {other}.",),
    "ovo": (
        "Because of {phrase}, {a} is different from {b}.",
        "{a} is characterized by a distinct {phrase}, while {b} isn't.",
        "The distinctive way in which {a} handles {phrase} separates it significantly from {b}.",
        "{a} stands out in {phrase} compared to {b}.",
        "The way {a} approaches {phrase} distinguishes it from {b}.",
        "In {phrase} expression, {a} deviates from {b}.",
        "Differences in {phrase} usage separate {a} from {b}.",
    ),
}


@dataclass(frozen=True)
class ClassTexts:
    """One class' phrases: synonyms of its name, attribute phrases, names of analogous classes."""

    synonyms: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    analogies: tuple[str, ...] = ()

    @property
    def bare(self) -> bool:
        """Nothing beyond the class name."""
        return not (self.synonyms or self.attributes or self.analogies)


@dataclass(frozen=True)
class BankTexts:
    """The texts to encode, in order: T general texts (class index, kind each) and P one-vs-one texts."""

    texts: tuple[str, ...]
    text_class: tuple[int, ...]
    kinds: tuple[str, ...]  # name, synonym, attribute or analogy
    ovo_texts: tuple[str, ...]
    ovo_pair: tuple[tuple[int, int], ...]

    @property
    def is_name(self) -> tuple[bool, ...]:
        return tuple(k in ("name", "synonym") for k in self.kinds)


@dataclass(frozen=True)
class TextBank:
    """Classes in order with their phrases; ovo[a][b]: phrases telling a from b; template overrides."""

    classes: dict[str, ClassTexts]
    ovo: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    templates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = field(default="", compare=False)

    def template(self, kind: str) -> tuple[str, ...]:
        """The templates of a text type: the bank's own, else the default (synonyms: the name's)."""
        if kind in self.templates:
            return self.templates[kind]
        return self.template("name") if kind == "synonym" else DEFAULT_TEMPLATES[kind]

    def for_labels(self, labels: list[str]) -> TextBank:
        """This bank with its classes in label order; TextBankError naming the differences otherwise."""
        known = set(labels)
        missing = [label for label in labels if label not in self.classes]
        extra = [name for name in self.classes if name not in known]
        if missing or extra:
            parts = ([f"missing from the bank: {', '.join(missing)}"] if missing else []) + (
                [f"not in the labels: {', '.join(extra)}"] if extra else [])
            raise TextBankError(f"text bank {self.source} does not match the labels ({'; '.join(parts)})")
        return TextBank(classes={label: self.classes[label] for label in labels}, ovo=self.ovo,
                        templates=self.templates, source=self.source)

    def layout(self) -> BankTexts:
        """Every text CODER scores, filled from the templates, classes in bank order."""
        texts, owners, kinds = [], [], []

        def add(index: int, kind: str, values: list[dict[str, str]]) -> None:
            for value in values:
                for template in self.template(kind):
                    texts.append(template.format(**value))
                    owners.append(index)
                    kinds.append(kind)

        for i, (name, entry) in enumerate(self.classes.items()):
            add(i, "name", [{"c": name}])
            add(i, "synonym", [{"c": s} for s in entry.synonyms])
            add(i, "attribute", [{"c": name, "attribute": a} for a in entry.attributes])
            add(i, "analogy", [{"c": name, "other": o} for o in entry.analogies])
        index = {name: i for i, name in enumerate(self.classes)}
        ovo_texts, pairs = [], []
        for a, others in self.ovo.items():
            for b, phrases in others.items():
                if a not in index or b not in index:
                    continue
                for phrase in phrases:
                    for template in self.template("ovo"):
                        ovo_texts.append(template.format(a=a, b=b, phrase=phrase))
                        pairs.append((index[a], index[b]))
        return BankTexts(tuple(texts), tuple(owners), tuple(kinds), tuple(ovo_texts), tuple(pairs))

    def with_synonyms(self, extra: dict[str, list[str]]) -> TextBank:
        """This bank with `extra` synonyms added after each class' own (no repeats, not the name itself)."""
        classes = {}
        for name, entry in self.classes.items():
            synonyms = list(entry.synonyms)
            for s in extra.get(name, []):
                if s not in synonyms and s != name:
                    synonyms.append(s)
            classes[name] = ClassTexts(tuple(synonyms), entry.attributes, entry.analogies)
        return TextBank(classes=classes, ovo=self.ovo, templates=self.templates, source=self.source)

    def counts(self) -> list[dict]:
        """Per class: how many synonyms, attributes, analogies, one-vs-one pairs and phrases, texts in all."""
        layout = self.layout()
        general = [0] * len(self.classes)
        for owner in layout.text_class:
            general[owner] += 1
        out = []
        for i, (name, entry) in enumerate(self.classes.items()):
            pairs = {b: p for b, p in self.ovo.get(name, {}).items() if p}
            out.append({"class": name, "synonyms": len(entry.synonyms), "attributes": len(entry.attributes),
                        "analogies": len(entry.analogies), "ovo_pairs": len(pairs),
                        "ovo_phrases": sum(len(p) for p in pairs.values()), "texts": general[i],
                        "bare": entry.bare})
        return out

    def describe(self) -> dict:
        """What `xmore textbank show` prints: counts per class and in all, bare classes, the templates used."""
        rows = self.counts()
        totals = {key: sum(r[key] for r in rows) for key in ("synonyms", "attributes", "analogies", "ovo_pairs",
                                                                "ovo_phrases", "texts")}
        totals["ovo_texts"] = len(self.layout().ovo_texts)
        return {"source": self.source, "classes": len(rows), "counts": rows, "totals": totals,
                "bare": [r["class"] for r in rows if r["bare"]],
                "templates": {kind: list(self.template(kind)) for kind in TEMPLATE_FIELDS}}

    def to_dict(self) -> dict:
        """The JSON form (load_bank reads it back to an equal bank)."""
        out: dict = {"format": FORMAT}
        if self.templates:
            out["templates"] = {k: list(v) if len(v) > 1 else v[0] for k, v in self.templates.items()}
        out["classes"] = {name: {kind: list(getattr(entry, kind)) for kind in KINDS if getattr(entry, kind)}
                          for name, entry in self.classes.items()}
        if self.ovo:
            out["ovo"] = {a: {b: list(p) for b, p in others.items()} for a, others in self.ovo.items()}
        return out


def load_bank(path: str | Path) -> TextBank:
    """Read and check a text bank file; TextBankError (one line) for anything wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TextBankError(f"text bank {path} does not exist") from None
    except IsADirectoryError:
        raise TextBankError(f"text bank {path} is a folder, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TextBankError(f"cannot read text bank {path}: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TextBankError(f"text bank {path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
                            ) from None
    return bank_from_dict(data, source=str(path))


def save_bank(bank: TextBank, path: str | Path) -> None:
    """Write the bank as JSON, atomically (a reader sees the old file or the new one)."""
    payload = (json.dumps(bank.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    write_atomically(path, lambda f: f.write(payload))


def bank_from_dict(data: object, *, source: str) -> TextBank:
    """The bank a parsed JSON document describes; TextBankError naming the first problem."""

    def fail(message: str) -> TextBankError:
        return TextBankError(f"text bank {source}: {message}")

    if not isinstance(data, dict):
        raise fail(f"expected a JSON object with \"classes\", got {type(data).__name__}")
    unknown = sorted(set(data) - {"format", "templates", "classes", "ovo"})
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (expected format, templates, classes, ovo)")
    if "format" in data and data["format"] != FORMAT:
        raise fail(f"format {data['format']!r} is not {FORMAT!r}")
    raw_classes = data.get("classes")
    if not isinstance(raw_classes, dict) or not raw_classes:
        raise fail("\"classes\" must be a non-empty object: {class name: {synonyms, attributes, analogies}}")
    classes = {}
    for name, entry in raw_classes.items():
        if not name.strip():
            raise fail("a class has an empty name")
        if entry is None or not isinstance(entry, dict):
            raise fail(f"class {name!r} has an empty or malformed entry ({json.dumps(entry)}): give an object, "
                       "{} for a class known by its name alone")
        extra = sorted(set(entry) - set(KINDS))
        if extra:
            raise fail(f"class {name!r} has an unknown key {extra[0]!r} (expected {', '.join(KINDS)})")
        classes[name] = ClassTexts(**{kind: _phrases(entry.get(kind, []), f"class {name!r}: {kind}", fail)
                                      for kind in KINDS})
    ovo: dict[str, dict[str, tuple[str, ...]]] = {}
    raw_ovo = data.get("ovo", {})
    if not isinstance(raw_ovo, dict):
        raise fail("\"ovo\" must be an object: {class a: {class b: [phrases]}}")
    for a, others in raw_ovo.items():
        if a not in classes:
            raise fail(f"ovo names {a!r}, which is not one of the bank's classes")
        if not isinstance(others, dict):
            raise fail(f"ovo[{a!r}] must be an object: {{class b: [phrases]}}")
        for b, phrases in others.items():
            if b not in classes or b == a:
                raise fail(f"ovo[{a!r}] names {b!r}, which is " + ("the same class" if b == a
                                                                   else "not one of the bank's classes"))
            ovo.setdefault(a, {})[b] = _phrases(phrases, f"ovo[{a!r}][{b!r}]", fail)
    return TextBank(classes=classes, ovo=ovo, templates=_templates(data.get("templates", {}), fail),
                    source=source)


def _phrases(value: object, where: str, fail) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"{where} must be a list of strings")
    for i, phrase in enumerate(value, start=1):
        if not phrase.strip():
            raise fail(f"{where}: entry {i} is empty")
    return tuple(value)


def _templates(value: object, fail) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise fail("\"templates\" must be an object: {text type: template or [templates]}")
    out = {}
    for kind, given in value.items():
        if kind not in TEMPLATE_FIELDS:
            raise fail(f"unknown template type {kind!r} (expected {', '.join(TEMPLATE_FIELDS)})")
        templates = [given] if isinstance(given, str) else given
        if not isinstance(templates, list) or not templates or not all(isinstance(t, str) for t in templates):
            raise fail(f"template {kind!r} must be a string or a non-empty list of strings")
        for template in templates:
            check_template(kind, template, fail)
        out[kind] = tuple(templates)
    return out


def check_template(kind: str, template: str, fail=TextBankError) -> None:
    """A template of `kind` uses exactly its placeholders ({c}; {attribute}, {other}; {a}, {b}, {phrase})."""
    wanted = TEMPLATE_FIELDS[kind]
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise fail(f"template {template!r} cannot be filled ({e}; write {{{{ and }}}} for literal braces)") from None
    if used != wanted:
        names = ", ".join("{" + n + "}" for n in sorted(wanted))
        raise fail(f"the {kind} template {template!r} must use exactly {names}")
