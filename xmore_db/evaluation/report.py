"""Writing the results: results.md (shaped like the paper's Table 1), results.csv, results.json."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from .scoring import CASES, METHOD_NAMES


def _pct(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def _num(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main_table(results: dict) -> str:
    """The Table-1-shaped markdown table: rows methods, columns datasets and Avg."""
    names = list(results["datasets"])
    lines = [_row(["Method", *names, "Avg"]), _row(["---"] + ["---:"] * (len(names) + 1))]
    for m, row in results["table"].items():
        lines.append(_row([METHOD_NAMES[m], *(_pct(row[n]) for n in [*names, "Avg"])]))
    return "\n".join(lines)


def _delta(interval: dict) -> str:
    """+5.40 [+3.70, +7.20]: a difference in accuracy points and its interval; * when the interval excludes 0."""
    mark = "*" if interval["low"] > 0 or interval["high"] < 0 else ""
    return (f"{100 * interval['difference']:+.2f} [{100 * interval['low']:+.2f}, "
            f"{100 * interval['high']:+.2f}]{mark}")


def difference_table(results: dict, baseline: str) -> str:
    """Each method minus `baseline`, in accuracy points, with its 95 % interval, per dataset and on Avg."""
    names = list(results["datasets"])
    lines = [_row(["Method", *names, "Avg"]), _row(["---"] + ["---:"] * (len(names) + 1))]
    for m, row in results.get("comparisons", {}).get(baseline, {}).items():
        lines.append(_row([METHOD_NAMES[m], *(_delta(row[n]) for n in [*names, "Avg"])]))
    return "\n".join(lines)


def difference_tables(results: dict) -> str:
    """The difference tables against every baseline evaluated, each with a title line."""
    out = []
    for baseline in results.get("comparisons", {}):
        out += [f"Difference against {METHOD_NAMES[baseline]} (points, 95 % interval; * excludes 0)",
                difference_table(results, baseline), ""]
    return "\n".join(out).rstrip("\n")


def diagnosis_table(results: dict) -> str:
    """Per dataset: retrieval's class agreement (where the corpus is labelled), caption accuracy, the cases."""
    lines = [_row(["Dataset", "attribute", "coarse same class", "fine same class", "caption accuracy",
                   "captions read right", *CASES]),
             _row(["---", "---"] + ["---:"] * (4 + len(CASES)))]
    for n, d in results["datasets"].items():
        g = d["diagnosis"]
        lines.append(_row([n, g.get("attribute") or "unknown", _pct(g.get("coarse_same_class")),
                           _pct(g.get("fine_same_class")), _pct(g.get("caption_accuracy")),
                           _pct(g.get("captions_read_right")),
                           *(str(d["confidence_by_case"][c]["n"]) for c in CASES)]))
    return "\n".join(lines)


def markdown(results: dict) -> str:
    s = results["settings"]
    names = list(results["datasets"])
    seeds = ", ".join(map(str, s["seeds"]))
    out = [
        "# X-MoRe evaluation", "",
        f"Top-1 accuracy (%) at k = {s['k']} captions, K = {s['coarse_k']} coarse candidates, "
        f"mean over {len(s['seeds'])} query order(s) (seeds {seeds}).", "",
        main_table(results), "",
        difference_tables(results), "",
        f"Intervals: {s.get('intervals', 'n/a')}.", "",
        "Queries with no caption (classified by the image alone; never dropped): "
        + ", ".join(f"{n} {d['no_captions']['fine']}/{d['n']}" for n, d in results["datasets"].items()) + ".",
        "",
        "## Accuracy (%) against k, mean over datasets (the paper's Fig. 4)", "",
        _row(["Method", *(str(k) for k in s["ks"])]), _row(["---"] + ["---:"] * len(s["ks"])),
    ]
    for m, by_k in results["accuracy_vs_k"].items():
        out.append(_row([METHOD_NAMES[m], *(_pct(by_k[k]) for k in s["ks"])]))
    out += ["", "## Mean entropy (nats) by modality and k (the paper's Table 6)", "",
            _row(["Dataset", "image", *(f"text k={k}" for k in s["ks"])]),
            _row(["---"] + ["---:"] * (len(s["ks"]) + 1))]
    for n in names:
        e = results["datasets"][n]["entropy"]
        out.append(_row([n, _num(e["image"]), *(_num(e["text"][k]) for k in s["ks"])]))
    k = s["k"]
    out += ["", f"## Diagnosis at k = {k}", "",
            "coarse / fine same class: the share of the K coarse neighbours and of the k fine captions whose pair "
            "has the query's class (only where the corpus' pairs are labelled: `--corpus-attributes`; the column "
            "used is named); caption accuracy: the share of the k captions the classifier, reading the caption "
            "alone, assigns to the query's class; captions read right: among fine captions of known class, the "
            "share it assigns to their own pair's class (the classifier's text tower, whatever retrieval did); "
            "then the number of queries in each case of the table below.", "",
            diagnosis_table(results)]
    out += ["", f"## Mean adjusted confidence by case, X-MoRe (minmax) at k = {s['k']} (the paper's Table 8)", "",
            "Cases by whether argmax p_I (image) and argmax p_T (text) are right; ĉ_I, ĉ_T are the min-max "
            "adjusted confidences; ratio is the mean of ĉ_I/ĉ_T (> 1: the ensemble leans on the image). "
            "Queries without captions are in no case.", "",
            _row(["Dataset", "case", "n", "ĉ_I", "ĉ_T", "ĉ_I/ĉ_T"]),
            _row(["---", "---", "---:", "---:", "---:", "---:"])]
    for n in names:
        for case in CASES:
            c = results["datasets"][n]["confidence_by_case"][case]
            out.append(_row([n, case, str(c["n"]), _num(c["c_image"]), _num(c["c_text"]), _num(c["ratio"])]))
    out += ["", "## Settings", "",
            f"- models: coarse `{s['models']['coarse']}`, fine `{s['models']['fine']}`, "
            f"classifier `{s['models']['classifier']}`",
            f"- store: {s['store']['backend']} at {s['store']['location']}, {s['store']['counts']}",
            f"- template: `{s['template']}`", f"- query order: {s['query_order']}", f"- history: {s['history']}",
            "- datasets: " + "; ".join(_described(n, d) for n, d in results["datasets"].items()), ""]
    return "\n".join(out)


def _described(name: str, d: dict) -> str:
    """One dataset in the settings list: layout, split, images (and those missing), classes and their source."""
    split = f" split {d['split']}," if d.get("split") else ""
    missing = f" ({d['missing']} missing, left out)" if d.get("missing") else ""
    source = f", class names from the {d['class_source']}" if d.get("class_source") else ""
    return f"{name} ({d['layout']},{split} {d['n']} images{missing}, {d['classes']} classes{source})"


def write_csv(results: dict, path: Path) -> None:
    """Long format: dataset, method, k, seed ('mean' for the mean over seeds), accuracy."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "method", "k", "seed", "accuracy", "n", "no_captions"])
        seeds = results["settings"]["seeds"]
        for name, d in results["datasets"].items():
            for m, by_k in d["accuracy"].items():
                for k, acc in by_k.items():
                    for seed, value in zip(seeds, acc["per_seed"], strict=True):
                        writer.writerow([name, m, k, seed, f"{value:.6f}", d["n"], d["no_captions"]["fine"]])
                    writer.writerow([name, m, k, "mean", f"{acc['mean']:.6f}", d["n"], d["no_captions"]["fine"]])


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_outputs(results: dict, out: Path) -> dict[str, Path]:
    """results.md, results.csv, results.json and the three plots in `out`; returns the paths."""
    from .plots import write_plots

    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "results.md", "csv": out / "results.csv", "json": out / "results.json"}
    paths["markdown"].write_text(markdown(results), encoding="utf-8")
    write_csv(results, paths["csv"])
    paths["json"].write_text(json.dumps(_jsonable(results), indent=2) + "\n", encoding="utf-8")
    paths.update(write_plots(results, out))
    return paths
