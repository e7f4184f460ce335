"""`xmore eval`: every method on labelled test sets, over one cached retrieval per dataset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..workspace import Workspace
from . import options as opt
from .render import echo_json, progress_bar


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=option) from None
    if not values:
        raise typer.BadParameter("expected at least one integer", param_hint=option)
    return values


def eval_command(
    ctx: typer.Context,
    dataset: Annotated[list[str], typer.Option(
        "--dataset", "-d", help="[NAME=]PATH of a test set: an ImageFolder directory (one sub-folder per class) "
        "or a CoOp split_zhou_*.json. Repeat for several; NAME defaults to the folder or split name.")],
    labels: Annotated[list[str] | None, typer.Option(
        "--labels", "-l", help="[NAME=]FILE of class names, one per line. A bare FILE applies to every dataset. "
        "ImageFolder: default labels.txt in the folder. CoOp: default the split file's class names; a file given "
        "must agree with them in label-index order. In prompts '_' is written as ' ', as CoOp does.")] = None,
    images_root: Annotated[list[str] | None, typer.Option(
        "--images-root", help="[NAME=]DIR the CoOp split's paths are relative to "
        "(default: the split's folder/images, or its folder).")] = None,
    split: Annotated[str, typer.Option(
        "--split", help="Which list of a CoOp split file to evaluate (train, val, test); recorded in the results.")
    ] = "test",
    skip_missing: Annotated[bool, typer.Option(
        "--skip-missing", help="Evaluate the images of a CoOp split that exist and count the missing ones in the "
        "results (default: a missing image is an error naming the path tried).")] = False,
    methods: Annotated[str | None, typer.Option(
        "--methods", "-m", help="Comma-separated methods (see `xmore classify --help` for what each is); "
        "xmore-l1, xmore-none and xmore-indirect are X-MoRe's ablations. Default: every method whose "
        "inputs are given (the CODER methods with --textbank, reco with --fusion).")] = None,
    textbank: Annotated[list[str] | None, typer.Option(
        "--textbank", help="[NAME=]FILE: a CODER text bank (JSON) for the CODER methods. A bare FILE applies to "
        "every dataset; NAME=FILE to one (each bank must hold exactly its dataset's classes).")] = None,
    fusion: opt.Fusion = None,
    fine_k: opt.FineK = None,
    ks: Annotated[str, typer.Option("--ks", help="The k sweep; every image is retrieved once at the largest.")] = (
        "1,2,4,8,16,32,64"),
    coarse_k: Annotated[int | None, typer.Option(
        "--coarse-k", "-K", envvar="XMORE_COARSE_K", min=1, help="Corpus images kept by the coarse stage.",
        show_default="XMORE_COARSE_K (128), or the largest k of --ks when larger")] = None,
    device: opt.Device = None,
    seeds: Annotated[str, typer.Option(
        "--seeds", help="Query-order seeds: each is one stream order (numpy default_rng(seed).permutation); "
        "accuracies are averaged over them.")] = "0",
    template: opt.Template = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder (default: XMORE_HOME/eval/<name>).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Run name for the default output folder (default: a timestamp).")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Ignore cached embeddings and retrievals.")] = False,
    resamples: Annotated[int, typer.Option(
        "--resamples", help="Bootstrap resamples of the test images for the 95 % intervals.")] = 2000,
    bootstrap_seed: Annotated[int, typer.Option("--bootstrap-seed", help="Seed of the bootstrap.")] = 0,
    corpus_attributes: Annotated[list[str] | None, typer.Option(
        "--corpus-attributes", help="CORPUS=FILE: a CSV with the ingest `key` of each pair of CORPUS and attribute "
        "columns (its ground truth, e.g. the attributes.csv the demo corpus comes with). The diagnosis then reports "
        "how many retrieved pairs have the query's class. Repeat for several corpora.")] = None,
    diagnose: Annotated[bool, typer.Option(
        "--diagnose", help="Also print the diagnosis table (always in results.md): retrieval's class agreement, "
        "the classifier's accuracy on the retrieved captions, the Table-8 cases.")] = False,
    json: opt.Json = False,
):
    """Evaluate zero-shot, caption ensemble and X-MoRe variants on labelled test sets.

    Each image is encoded and retrieved once, at K and the largest k; the arrays
    are cached per dataset, models and store, so a rerun with other methods, k
    or seeds encodes nothing. Writes results.md (the paper's Table 1 shape),
    results.csv, results.json and three PNG plots, and prints the table and
    each method's difference against zero-shot and the caption ensemble with a
    95 % paired bootstrap interval over the test images.
    Nothing is written to the confidence history: streams are replayed offline.
    """
    from ..coder.encode import check_banks
    from ..evaluation import EvalOptions, dataset_name, evaluate, load_dataset
    from ..evaluation.datasets import parse_named
    from ..evaluation.report import diagnosis_table, difference_tables, main_table, write_outputs
    from ..methods import registry
    from ..methods.base import TEXTBANK
    from ..methods.inputs import MethodFiles, available_methods
    from .base import settings_from

    settings = settings_from(ctx, template=template, device=device)
    k = fine_k if fine_k is not None else settings.fine_k
    sweep = _ints(ks, "--ks")
    big_k = coarse_k if coarse_k is not None else max(settings.coarse_k, max(sweep))
    attribute_files = {}
    for value in corpus_attributes or []:
        corpus, sep, path = value.partition("=")
        if not sep or not corpus or not path:
            raise typer.BadParameter(f"expected CORPUS=FILE, got {value!r}", param_hint="--corpus-attributes")
        if not Path(path).is_file():
            raise typer.BadParameter(f"no such file: {path}", param_hint="--corpus-attributes")
        attribute_files[corpus] = Path(path)
    bank_files, default_bank = parse_named(textbank, "--textbank")
    files = MethodFiles(textbank=Path(default_bank) if default_bank else None,
                        textbanks={n: Path(p) for n, p in bank_files.items()}, fusion=fusion)
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods is not None else available_methods(files)
    unknown = [m for m in chosen if m not in registry()]
    if unknown or not chosen:  # a usage error, like every enumerated option: the valid names, exit 2
        raise typer.BadParameter(f"unknown methods {', '.join(unknown) or '(none given)'}: choose from "
                                 f"{', '.join(registry())}", param_hint="--methods")
    options = EvalOptions(methods=chosen, files=files, ks=sweep, k=k,
                          coarse_k=big_k, seeds=_ints(seeds, "--seeds"), template=settings.template, refresh=refresh,
                          resamples=resamples, bootstrap_seed=bootstrap_seed, corpus_attributes=attribute_files)
    options.check()

    label_files, default_labels = parse_named(labels, "--labels")
    roots, default_root = parse_named(images_root, "--images-root")
    specs = []
    for value in dataset:
        named, sep, path = value.partition("=")
        if not sep or "/" in named or not named:
            named, path = None, value
        specs.append((named or dataset_name(Path(path)), Path(path)))
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise typer.BadParameter(f"two datasets are named alike ({', '.join(names)}): use NAME=PATH",
                                 param_hint="--dataset")
    for option, given in (("--labels", label_files), ("--images-root", roots), ("--textbank", bank_files)):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise typer.BadParameter(f"no dataset named {', '.join(unknown)}", param_hint=option)
    loaded = [load_dataset(n, p, Path(label_files.get(n) or default_labels) if (label_files.get(n) or default_labels)
                           else None, images_root=Path(roots.get(n) or default_root) if (roots.get(n) or default_root)
                           else None, split=split, skip_missing=skip_missing) for n, p in specs]
    if any(TEXTBANK in registry()[m].needs for m in chosen):  # every bank read and checked before any work
        check_banks({d.name: (files.for_dataset(d.name).textbank, d.labels) for d in loaded})

    with Workspace(settings) as ws:
        results = evaluate(ws, loaded, options, progress=lambda label: progress_bar(label, unit="image"))
    folder = out or settings.home / "eval" / (name or time.strftime("%Y%m%d-%H%M%S"))
    paths = write_outputs(results, folder)
    if json:
        echo_json(results | {"outputs": {key: str(p) for key, p in paths.items()}})
        return
    s = results["settings"]
    typer.echo(f"Accuracy (%) at k = {s['k']}, K = {s['coarse_k']}, mean over seeds {', '.join(map(str, s['seeds']))}")
    typer.echo(main_table(results))
    typer.echo("")
    typer.echo(difference_tables(results))
    if diagnose:
        typer.echo(f"\nDiagnosis at k = {s['k']} (results.md explains the columns)")
        typer.echo(diagnosis_table(results))
    typer.echo("no-caption queries (image only): " + ", ".join(
        f"{n} {d['no_captions']['fine']}/{d['n']}" for n, d in results["datasets"].items()))
    missing = [f"{n} {d['missing']} of {d['n'] + d['missing']}" for n, d in results["datasets"].items()
               if d.get("missing")]
    if missing:
        typer.echo("missing images left out (--skip-missing): " + ", ".join(missing))
    cached = [n for n, d in results["datasets"].items() if d["cache"]["hit"]]
    typer.echo(f"Wrote {folder}/results.md, results.csv, results.json, accuracy_vs_k.png, confidence_by_case.png, "
               f"entropy_by_k.png ({results['seconds']:.1f} s" + (f"; cached: {', '.join(cached)}" if cached else "")
               + ")", err=True)


def register(app: typer.Typer) -> None:
    app.command(name="eval")(eval_command)
