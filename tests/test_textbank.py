"""CODER text banks: the JSON format, the restricted unpickler, the authors' layout, `xmore textbank`."""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections import OrderedDict

import pytest

from tests.cli import fails, ok, ok_json
from xmore_db.coder.bank import ClassTexts, TextBank, load_bank, save_bank
from xmore_db.coder.pickles import load_restricted
from xmore_db.coder.wordnet import wordnet_synonyms
from xmore_db.errors import TextBankError
from xmore_db.toy import TASKS
from xmore_db.toy.textbank import toy_bank, write_toy_banks

LABELS = ["golden retriever", "tabby cat", "goldfish"]

# What the tiny authors' layout below must import to, written by hand.
HAND_WRITTEN = {
    "format": "xmore-textbank/1",
    "classes": {
        "golden retriever": {"synonyms": ["golden"], "attributes": ["a long golden coat", "floppy ears"],
                             "analogies": ["labrador"]},
        "tabby cat": {"attributes": ["striped fur"], "analogies": ["tiger", "lynx"]},
        "goldfish": {},
    },
    "ovo": {"golden retriever": {"tabby cat": ["a long snout"]}, "tabby cat": {"golden retriever": ["whiskers"]}},
}


class Evil:
    """A pickle that runs a shell command when loaded with pickle.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_authors_layout(root, *, dataset="pets", attribute=None):
    """The authors' released files for a 3-class dataset (their class names use '_')."""
    knowledge = root / "expert_knowledge"
    for sub in ("attribute", "simile_class", "synonym", "ovo_attribute"):
        (knowledge / sub).mkdir(parents=True, exist_ok=True)
    (root / "datasets" / "class_name").mkdir(parents=True, exist_ok=True)
    (root / "datasets" / "class_name" / f"{dataset}.txt").write_text("golden_retriever\ntabby_cat\ngoldfish\n")
    attribute = attribute if attribute is not None else [["a long golden coat", "floppy ears"], ["striped fur"], []]
    (knowledge / "attribute" / f"{dataset}.pkl").write_bytes(pickle.dumps(attribute))
    (knowledge / "simile_class" / f"{dataset}.pkl").write_bytes(pickle.dumps([["labrador"], ("tiger", "lynx"), []],
                                                                             protocol=2))
    (knowledge / "synonym" / f"{dataset}.json").write_text(json.dumps([{"syno": ["golden"]}, {"syno": []},
                                                                       {"syno": []}]))
    (knowledge / "ovo_attribute" / f"{dataset}.json").write_text(json.dumps(
        {"golden_retriever": {"tabby_cat": ["a long snout"]}, "tabby_cat": {"golden_retriever": ["whiskers"],
                                                                            "goldfish": []}}))
    return root


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("XMORE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XMORE_DEBUG", raising=False)
    monkeypatch.delenv("XMORE_CODER_THRESHOLD", raising=False)
    return tmp_path


def test_a_bank_round_trips_through_json(tmp_path):
    bank = TextBank(classes={"a": ClassTexts(synonyms=("x",)), "b": ClassTexts(attributes=("y", "z"))},
                    ovo={"a": {"b": ("p",)}}, templates={"name": ("a photo of a {c}.",),
                                                         "ovo": ("{a} has {phrase}, {b} not", "{phrase}: {a}, {b}")})
    save_bank(bank, tmp_path / "bank.json")
    assert load_bank(tmp_path / "bank.json") == bank
    data = json.loads((tmp_path / "bank.json").read_text())
    assert data["templates"]["name"] == "a photo of a {c}." and data["classes"]["a"] == {"synonyms": ["x"]}


def test_the_authors_layout_imports_to_the_hand_written_bank(tmp_path, home):
    root = write_authors_layout(tmp_path / "release")
    (tmp_path / "hand.json").write_text(json.dumps(HAND_WRITTEN))
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    ok("textbank", "import-coder", root, "--dataset", "pets", "--labels", tmp_path / "labels.txt",
       "--out", tmp_path / "bank.json")
    hand = load_bank(tmp_path / "hand.json")
    assert load_bank(tmp_path / "bank.json") == hand
    # Without --labels the authors' class names are used, '_' read as a space: the same bank here.
    ok("textbank", "import-coder", root, "--dataset", "pets", "--out", tmp_path / "bank2.json")
    assert load_bank(tmp_path / "bank2.json") == hand


def test_show_counts_per_class_and_type_and_names_the_bare_classes(tmp_path, home):
    (tmp_path / "hand.json").write_text(json.dumps(HAND_WRITTEN))
    shown = ok("textbank", "show", tmp_path / "hand.json").stdout
    assert "nothing beyond the name: goldfish" in shown
    assert "3 classes, 10 class texts and 14 one-vs-one texts to encode" in shown
    summary = ok_json("textbank", "show", tmp_path / "hand.json")
    rows = {r["class"]: r for r in summary["counts"]}
    assert rows["golden retriever"] == {"class": "golden retriever", "synonyms": 1, "attributes": 2, "analogies": 1,
                                        "ovo_pairs": 1, "ovo_phrases": 1, "texts": 5, "bare": False}
    assert rows["goldfish"]["texts"] == 1 and summary["bare"] == ["goldfish"]
    assert summary["templates"]["attribute"] == ["{c} which has {attribute}"]


@pytest.mark.parametrize(("content", "message"), [
    ('{"classes": {"a": {}, "b": {}', "is not valid JSON: Expecting"),
    ('{"classes": {"a": null, "b": {}}}', "class 'a' has an empty or malformed entry (null)"),
    ('{"classes": {"a": {"attributes": ["fur", "  "]}, "b": {}}}', "class 'a': attributes: entry 2 is empty"),
    ('{"classes": {" ": {}, "b": {}}}', "a class has an empty name"),
    ('{"classes": {}}', '"classes" must be a non-empty object'),
    ('{"classes": {"a": {"colour": []}}}', "class 'a' has an unknown key 'colour'"),
    ('{"classes": {"a": {}}, "ovo": {"a": {"c": ["x"]}}}', "ovo['a'] names 'c', which is not one of the bank's"),
    ('{"classes": {"a": {}}, "templates": {"name": "a photo"}}', "the name template 'a photo' must use exactly {c}"),
    ('[1, 2]', 'expected a JSON object with "classes"'),
])
def test_a_bad_bank_is_one_line(tmp_path, home, content, message):
    (tmp_path / "bank.json").write_text(content)
    line = fails("textbank", "show", tmp_path / "bank.json")
    assert message in line, line


def test_a_bank_that_does_not_match_the_labels_names_the_differences(tmp_path, home):
    (tmp_path / "hand.json").write_text(json.dumps(HAND_WRITTEN))
    (tmp_path / "labels.txt").write_text("golden retriever\ntabby cat\nhamster\n")
    line = fails("textbank", "show", tmp_path / "hand.json", "--labels", tmp_path / "labels.txt")
    assert "does not match the labels (missing from the bank: hamster; not in the labels: goldfish)" in line


def test_the_restricted_unpickler_reads_lists_and_refuses_globals(tmp_path):
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps([["a", "b"], ("c",), {"d": "e"}, 1, None]))
    assert load_restricted(tmp_path / "ok.pkl") == [["a", "b"], ("c",), {"d": "e"}, 1, None]
    marker = tmp_path / "pwned"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps([["fine"], Evil(marker)]))
    with pytest.raises(TextBankError, match=r"refers to (posix|os|nt)\.system \(a global\): refused"):
        load_restricted(tmp_path / "evil.pkl")
    assert not marker.exists()
    (tmp_path / "class.pkl").write_bytes(pickle.dumps([OrderedDict(a="b")], protocol=2))
    with pytest.raises(TextBankError, match="collections.OrderedDict"):
        load_restricted(tmp_path / "class.pkl")
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps([["a"]])[:-3])
    with pytest.raises(TextBankError, match="not a readable pickle"):
        load_restricted(tmp_path / "cut.pkl")


def test_import_refuses_a_pickle_with_a_global_and_writes_nothing(tmp_path, home):
    marker = tmp_path / "pwned"
    root = write_authors_layout(tmp_path / "release", attribute=[["a"], Evil(marker), []])
    line = fails("textbank", "import-coder", root, "--dataset", "pets", "--out", tmp_path / "bank.json")
    assert "attribute/pets.pkl refers to" in line and "refused" in line
    assert not marker.exists() and not (tmp_path / "bank.json").exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda root: (root / "datasets/class_name/pets.txt").write_text("a\nb\n"), "phrase lists for 2 classes"),
    (lambda root: (root / "expert_knowledge/attribute/pets.pkl").write_bytes(pickle.dumps([["a"], "b", []])),
     "entry 2 is not a list of strings"),
    (lambda root: (root / "expert_knowledge/ovo_attribute/pets.json").write_text('{"hamster": {}}'),
     "names classes that are not in the labels: hamster"),
    (lambda root: (root / "expert_knowledge/synonym/pets.json").write_text("[{"), "is not valid JSON"),
])
def test_bad_author_files_are_one_line_and_write_nothing(tmp_path, home, change, message):
    root = write_authors_layout(tmp_path / "release")
    change(root)
    line = fails("textbank", "import-coder", root, "--dataset", "pets", "--out", tmp_path / "bank.json")
    assert message in line, line
    assert not (tmp_path / "bank.json").exists()


def test_import_checks_the_labels_against_the_authors_class_names(tmp_path, home):
    root = write_authors_layout(tmp_path / "release")
    (tmp_path / "labels.txt").write_text("golden retriever\ngoldfish\ntabby cat\n")
    line = fails("textbank", "import-coder", root, "--dataset", "pets", "--labels", tmp_path / "labels.txt",
                 "--out", tmp_path / "bank.json")
    assert "the labels differ from" in line and "2: 'tabby_cat' vs 'goldfish'" in line
    line = fails("textbank", "import-coder", root, "--dataset", "flowers", "--out", tmp_path / "bank.json")
    assert "no knowledge files for dataset 'flowers'" in line
    assert not (tmp_path / "bank.json").exists()


def test_wordnet_is_optional_and_never_downloaded(tmp_path, home, monkeypatch):
    (tmp_path / "labels.txt").write_text("dog\ncat\n")
    if "nltk" not in sys.modules:
        monkeypatch.setitem(sys.modules, "nltk", None)  # an import of nltk now fails, as when it is absent
        line = fails("textbank", "from-labels", tmp_path / "labels.txt", "--out", tmp_path / "b.json", "--wordnet")
        assert "WordNet synonyms need the nltk package" in line and "nothing is downloaded" in line
        assert not (tmp_path / "b.json").exists()
    summary = ok_json("textbank", "from-labels", tmp_path / "labels.txt", "--out", tmp_path / "b.json")
    assert summary["bare"] == ["dog", "cat"] and load_bank(tmp_path / "b.json").classes["dog"] == ClassTexts()


def test_wordnet_synonyms_take_the_first_noun_sense():
    class Sense:
        def __init__(self, *lemmas):
            self.lemmas = lemmas

        def lemma_names(self):
            return list(self.lemmas)

    class Reader:
        def synsets(self, word, pos):
            assert pos == "n"
            return {"dog": [Sense("dog", "domestic_dog", "Canis_familiaris"), Sense("frump", "dog")],
                    "star": [Sense("star")], "golden_retriever": [Sense("golden_retriever")]}.get(word, [])

    assert wordnet_synonyms(["dog", "star", "unicorn", "golden retriever"], Reader()) == {
        "dog": ["domestic dog", "Canis familiaris"], "star": [], "unicorn": [], "golden retriever": []}


def test_threshold_out_of_range_is_one_line(tmp_path, home, monkeypatch):
    (tmp_path / "labels.txt").write_text("dog\ncat\n")
    args = ("classify", tmp_path / "x.png", "--labels", tmp_path / "labels.txt", "--method", "coder-star",
            "--textbank", tmp_path / "b.json")
    line = fails("--coder-threshold", "1.5", *args)
    assert "CODER* threshold (--coder-threshold, XMORE_CODER_THRESHOLD) must be between 0 and 1" in line
    monkeypatch.setenv("XMORE_CODER_THRESHOLD", "-0.1")
    assert "got -0.1" in fails(*args)
    assert not (home / "home").exists()


def test_the_toy_banks_hold_their_tasks_labels(tmp_path):
    paths = write_toy_banks(tmp_path)
    assert set(paths) == set(TASKS)
    for task, path in paths.items():
        bank = load_bank(path).for_labels(list(TASKS[task].labels))
        assert bank == toy_bank(task) and not any(entry.bare for entry in bank.classes.values())
    assert toy_bank("texture").classes["striped"].synonyms == ("stripes", "stripy")
    assert load_bank(paths["shape"]) == load_bank(paths["shape-sketch"])
    assert "a stripy circle" in toy_bank("shape").layout().texts
