"""`xmore textbank`: CODER text banks: import the authors' files, start one from labels, show one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as opt
from .base import make_app
from .render import echo_json, echo_table

app = make_app("CODER text banks (JSON): what CODER knows about a label set. Import the authors' knowledge files, "
               "start one from a labels file, show one.")

Out = Annotated[Path, typer.Option("--out", "-o", help="Where to write the bank (JSON); written only on success.")]
Wordnet = Annotated[bool, typer.Option(
    "--wordnet", help="Add synonyms from a local WordNet (needs nltk and a WordNet corpus; nothing is downloaded).")]
WordnetDir = Annotated[Path | None, typer.Option(
    "--wordnet-dir", help="A WordNet 3.0 database folder to read instead of nltk's data path (implies --wordnet).")]


def _with_wordnet(bank, wordnet: bool, wordnet_dir: Path | None):
    if not (wordnet or wordnet_dir):
        return bank
    from ..coder.wordnet import open_wordnet, wordnet_synonyms

    return bank.with_synonyms(wordnet_synonyms(bank.classes, open_wordnet(wordnet_dir)))


def _written(bank, out: Path, json: bool) -> None:
    from ..coder import save_bank

    save_bank(bank, out)
    summary = bank.describe() | {"source": str(out)}
    if json:
        echo_json(summary)
        return
    t = summary["totals"]
    typer.echo(f"Wrote {out}: {summary['classes']} classes, {t['synonyms']} synonyms, {t['attributes']} attributes, "
               f"{t['analogies']} analogies, {t['ovo_pairs']} one-vs-one pairs ({t['texts'] + t['ovo_texts']} texts "
               "to encode)", err=True)


@app.command("import-coder")
def import_coder(
    folder: Annotated[Path, typer.Argument(
        help="The authors' release (YCaigogogo/CVPR24-CODER): the folder holding expert_knowledge/ and datasets/.")],
    dataset: Annotated[str, typer.Option(
        "--dataset", "-d", help="The authors' dataset name, as in their file names (e.g. oxford_flowers, DTD).")],
    out: Out,
    labels: Annotated[Path | None, typer.Option(
        "--labels", "-l", help="Class names, one per line, in the authors' label order: the bank's class names "
        "(default: datasets/class_name/DATASET.txt, '_' read as a space).")] = None,
    wordnet: Wordnet = False,
    wordnet_dir: WordnetDir = None,
    json: opt.Json = False,
):
    """Convert the CODER authors' knowledge files for one dataset into a text bank.

    Reads expert_knowledge/attribute/DATASET.pkl and simile_class/DATASET.pkl (pickles, with an unpickler
    that admits only lists, tuples, dicts and strings), synonym/DATASET.json and ovo_attribute/DATASET.json.
    """
    from ..coder.authors import import_coder as run
    from ..labels import read_labels

    bank = run(folder, dataset, read_labels(labels) if labels is not None else None)
    _written(_with_wordnet(bank, wordnet, wordnet_dir), out, json)


@app.command("from-labels")
def from_labels(
    labels: Annotated[Path, typer.Argument(help="Class names, one per line.")],
    out: Out,
    wordnet: Wordnet = False,
    wordnet_dir: WordnetDir = None,
    json: opt.Json = False,
):
    """Start a text bank from a labels file: each class by its name (and WordNet synonyms with --wordnet)."""
    from ..coder import ClassTexts, TextBank
    from ..labels import read_labels

    bank = TextBank(classes={name: ClassTexts() for name in read_labels(labels)}, source=str(out))
    _written(_with_wordnet(bank, wordnet, wordnet_dir), out, json)


@app.command()
def show(
    bank_file: Annotated[Path, typer.Argument(help="A text bank (JSON).")],
    labels: Annotated[Path | None, typer.Option(
        "--labels", "-l", help="Also check that the bank holds exactly these classes.")] = None,
    json: opt.Json = False,
):
    """Counts per class and text type, and the classes with nothing beyond their name."""
    from ..coder import load_bank
    from ..labels import read_labels

    bank = load_bank(bank_file)
    if labels is not None:
        bank = bank.for_labels(read_labels(labels))
    summary = bank.describe()
    if json:
        echo_json(summary)
        return
    echo_table(["class", "synonyms", "attributes", "analogies", "ovo pairs", "ovo phrases", "texts"],
               [[r["class"], r["synonyms"], r["attributes"], r["analogies"], r["ovo_pairs"], r["ovo_phrases"],
                 r["texts"]] for r in summary["counts"]])
    t = summary["totals"]
    typer.echo(f"{summary['classes']} classes, {t['texts']} class texts and {t['ovo_texts']} one-vs-one texts "
               "to encode")
    typer.echo("nothing beyond the name: " + (", ".join(summary["bare"]) or "none"))
    for kind, templates in summary["templates"].items():
        typer.echo(f"template {kind}: " + " | ".join(templates))
