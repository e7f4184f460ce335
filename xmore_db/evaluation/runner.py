"""`xmore eval`'s core: datasets in, scored results out; no rendering, no Typer.

Evaluation is an offline replay: it reads the vector store and never writes
the SQL confidence history. Each query order (seed) is its own fresh stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import DEFAULT_TEMPLATE
from ..errors import ConfigError
from ..methods import MethodInputs, registry
from ..methods.inputs import MethodFiles, check_files, extra_inputs
from . import scoring, statistics
from .cache import EvalCache, compute_arrays, setup_key
from .datasets import EvalDataset
from .diagnosis import diagnose, read_corpus_attributes

if TYPE_CHECKING:
    from ..workspace import Workspace


@dataclass
class EvalOptions:
    methods: Sequence[str] = scoring.METHODS
    ks: Sequence[int] = scoring.DEFAULT_KS
    k: int = 16
    coarse_k: int = 128
    seeds: Sequence[int] = (0,)
    template: str = DEFAULT_TEMPLATE
    refresh: bool = False
    resamples: int = statistics.DEFAULT_RESAMPLES
    bootstrap_seed: int = statistics.DEFAULT_SEED
    # {corpus name: attribute CSV}: the pairs' ground truth, for the retrieval diagnosis.
    corpus_attributes: dict[str, Path] = field(default_factory=dict)
    files: MethodFiles = field(default_factory=MethodFiles)

    def check(self) -> None:
        unknown = [m for m in self.methods if m not in scoring.METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"unknown methods {', '.join(unknown) or '(none given)'}: "
                              f"choose from {', '.join(scoring.METHODS)}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigError(f"--ks must be positive integers, got {list(self.ks)}")
        if self.k not in self.ks:
            self.ks = sorted({*self.ks, self.k})
        if max(self.ks) > self.coarse_k:
            raise ConfigError(f"the largest k ({max(self.ks)}) cannot exceed K ({self.coarse_k}): "
                              "the captions are ranked among the K coarse candidates")
        if not self.seeds:
            raise ConfigError("--seeds needs at least one seed")
        if self.resamples < 100:
            raise ConfigError(f"--resamples must be at least 100 for a 95 % interval, got {self.resamples}")


@dataclass
class DatasetResult:
    name: str
    layout: str
    source: str
    n: int
    classes: int
    no_captions: dict[str, int]
    cache: dict[str, object]
    scores: dict = field(default_factory=dict)
    diagnosis: dict = field(default_factory=dict)
    split: str | None = None  # the CoOp split's list evaluated
    missing: int = 0  # images of the split left out because they do not exist (--skip-missing)
    class_names: list[str] = field(default_factory=list)  # as the prompts got them ('_' written as ' ')
    class_source: str = ""


def evaluate(
    workspace: Workspace, datasets: Sequence[EvalDataset], options: EvalOptions, *,
    progress: Callable[[str], object] | None = None,
) -> dict:
    """Score every method on every dataset; returns the results as plain data (results.json)."""
    from ..models import class_embeddings

    options.check()
    max_k = max(options.ks)
    settings = workspace.settings
    results = []
    started = time.perf_counter()
    setup = setup_key(workspace, coarse_k=options.coarse_k, max_k=max_k)
    attributes: dict[str, dict[str, str]] = {}
    for corpus, path in options.corpus_attributes.items():
        for column, values in read_corpus_attributes(corpus, path).items():
            attributes.setdefault(column, {}).update(values)
    known = registry()
    needs = set().union(*(known[m].needs for m in options.methods))
    check_files(workspace, needs, options.files)
    for dataset in datasets:
        cache = EvalCache(settings.home / "cache", dataset, setup)
        arrays = None if options.refresh else cache.load()
        hit = arrays is not None
        if arrays is None:
            bar = progress(f"encoding {dataset.name}") if progress else None
            with bar if bar is not None else _Null() as b:
                arrays = compute_arrays(workspace, dataset, coarse_k=options.coarse_k, max_k=max_k,
                                        on_start=getattr(b, "start", lambda t: None),
                                        on_progress=getattr(b, "advance", lambda n: None))
            cache.save(arrays)
        # The prompts get the class names with '_' written as ' ', as CoOp does (EvalDataset.prompt_labels).
        names = dataset.prompt_labels
        prompts = cache.prompts(names, options.template, lambda labels=names: class_embeddings(
            workspace.encoder("classifier"), labels, options.template, workspace.prompt_cache_dir))
        inputs = MethodInputs(
            image_embeddings=arrays.image_embeddings, prompts=prompts, logit_scale=arrays.logit_scale,
            captions=scoring.gather(arrays.fine_slots, arrays.caption_embeddings),
            indirect_captions=scoring.gather(arrays.indirect_slots, arrays.caption_embeddings),
            **extra_inputs(workspace, needs, labels=dataset.labels, template=options.template,
                           files=options.files.for_dataset(dataset.name)))
        scores = scoring.score_dataset(inputs, np.asarray(dataset.targets), methods=options.methods,
                                       ks=options.ks, seeds=options.seeds, case_k=options.k)
        diagnosis = diagnose(slots=arrays.fine_slots, fine_pairs=arrays.fine_pairs, coarse_pairs=arrays.coarse_pairs,
                             pair_ids=arrays.pair_ids.tolist(), caption_embeddings=arrays.caption_embeddings,
                             prompts=prompts, logit_scale=arrays.logit_scale, truth=np.asarray(dataset.targets),
                             labels=dataset.labels, k=options.k, attributes=attributes or None)
        results.append(DatasetResult(
            name=dataset.name, layout=dataset.layout, source=str(dataset.source), n=len(dataset.images),
            classes=len(dataset.labels), split=dataset.split, missing=dataset.missing,
            class_names=dataset.prompt_labels, class_source=dataset.class_source,
            no_captions={"fine": int((arrays.fine_slots[:, 0] < 0).sum()),
                         "indirect": int((arrays.indirect_slots[:, 0] < 0).sum())},
            cache={"hit": hit, "path": str(cache.folder)}, scores=scores, diagnosis=diagnosis,
        ))
    return _summary(results, options, setup, time.perf_counter() - started)


def _comparisons(results: list[DatasetResult], options: EvalOptions) -> dict:
    """{baseline: {method: {dataset | "Avg": Interval dict}}}: each method minus each baseline, image by image."""
    out: dict = {}
    for baseline in (b for b in scoring.BASELINES if b in options.methods):
        out[baseline] = {}
        for m in (m for m in options.methods if m != baseline):
            row = {}
            pairs = [(np.asarray(r.scores["outcomes"][m]), np.asarray(r.scores["outcomes"][baseline]))
                     for r in results]
            for r, (a, b) in zip(results, pairs, strict=True):
                row[r.name] = statistics.paired_difference(
                    [a], [b], resamples=options.resamples, seed=options.bootstrap_seed).to_dict()
            row["Avg"] = statistics.paired_difference(
                [a for a, _ in pairs], [b for _, b in pairs], resamples=options.resamples,
                seed=options.bootstrap_seed).to_dict()
            out[baseline][m] = row
    return out


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _summary(results: list[DatasetResult], options: EvalOptions, setup: dict, seconds: float) -> dict:
    table = {}
    for m in options.methods:
        row = {r.name: r.scores["accuracy"][m][options.k]["mean"] for r in results}
        row["Avg"] = float(np.mean(list(row.values())))
        table[m] = row
    by_k = {m: {k: float(np.mean([r.scores["accuracy"][m][k]["mean"] for r in results])) for k in options.ks}
            for m in options.methods}
    comparisons = _comparisons(results, options)
    return {
        "settings": {
            "methods": list(options.methods), "k": options.k, "ks": list(options.ks), "coarse_k": options.coarse_k,
            "template": options.template, "seeds": list(options.seeds),
            "query_order": "numpy.random.default_rng(seed).permutation(N) per seed; accuracies are the mean "
                           "over seeds; each order is replayed as a fresh stream",
            "models": setup["models"], "store": setup["store"],
            "history": "not written: eval replays streams offline",
            "intervals": f"{int(statistics.LEVEL * 100)} % paired percentile bootstrap over test images "
                         f"({options.resamples} resamples, seed {options.bootstrap_seed}; datasets resampled "
                         "separately, Avg as the mean over datasets) of each image's correctness averaged over "
                         "the query orders: it covers the choice of test images, not the query order nor the "
                         "models' training",
            "corpus_attributes": {c: str(p) for c, p in options.corpus_attributes.items()},
        },
        "table": table,
        "comparisons": comparisons,
        "accuracy_vs_k": by_k,
        "datasets": {r.name: {"layout": r.layout, "source": r.source, "split": r.split, "n": r.n,
                              "missing": r.missing, "classes": r.classes, "class_names": r.class_names,
                              "class_source": r.class_source, "no_captions": r.no_captions, "cache": r.cache,
                              "diagnosis": r.diagnosis, **r.scores} for r in results},
        "seconds": round(seconds, 2),
    }
