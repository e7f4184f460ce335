"""The three figures, with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .scoring import CASES, METHOD_NAMES


def write_plots(results: dict, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["datasets"])
    ks = results["settings"]["ks"]
    paths = {}

    # Accuracy against k, one panel per dataset plus the average (Fig. 4).
    panels = [*names, "Avg"]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for m in results["settings"]["methods"]:
            if panel == "Avg":
                ys = [results["accuracy_vs_k"][m][k] for k in ks]
            else:
                ys = [results["datasets"][panel]["accuracy"][m][k]["mean"] for k in ks]
            style = "--" if m in ("zeroshot", "captions") else "-"
            ax.plot(ks, [100 * y for y in ys], style, marker="o", markersize=3, label=METHOD_NAMES[m])
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_title(panel if panel != "Avg" else "average over datasets")
        ax.set_xlabel("k (captions)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 if rows > 1 else 0.14, 1, 1))
    paths["accuracy_vs_k"] = out / "accuracy_vs_k.png"
    fig.savefig(paths["accuracy_vs_k"], dpi=110)
    plt.close(fig)

    # Mean ĉ_I and ĉ_T by correctness case (Table 8).
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    x = np.arange(len(CASES))
    for ax, name in zip(axes.flat, names, strict=True):
        cases = results["datasets"][name]["confidence_by_case"]
        ci = [cases[c]["c_image"] for c in CASES]
        ct = [cases[c]["c_text"] for c in CASES]
        ax.bar(x - 0.2, np.nan_to_num(ci), 0.4, label="ĉ_I (image)")
        ax.bar(x + 0.2, np.nan_to_num(ct), 0.4, label="ĉ_T (text)")
        ax.set_xticks(x, [f"{c.replace(', ', chr(10))}\n(n={cases[c]['n']})" for c in CASES], fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(f"{name}, k={results['settings']['k']}")
        ax.set_ylabel("mean adjusted confidence")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    paths["confidence_by_case"] = out / "confidence_by_case.png"
    fig.savefig(paths["confidence_by_case"], dpi=110)
    plt.close(fig)

    # Mean entropy by modality and k (Table 6).
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, name in enumerate(names):
        e = results["datasets"][name]["entropy"]
        colour = f"C{i}"
        text = [e["text"][k] for k in ks]
        if any(t is not None and not math.isnan(t) for t in text):
            ax.plot(ks, text, "-o", color=colour, markersize=3, label=f"{name}: text p_T")
        ax.axhline(e["image"], color=colour, linestyle=":", label=f"{name}: image p_I")
    ax.set_xlim(min(ks) / 1.2, max(ks) * 1.2)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (captions)")
    ax.set_ylabel("mean entropy (nats)")
    ax.set_title("entropy of p_I (dotted) and p_T (by k)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths["entropy_by_k"] = out / "entropy_by_k.png"
    fig.savefig(paths["entropy_by_k"], dpi=110)
    plt.close(fig)
    return paths
