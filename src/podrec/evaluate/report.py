"""Write an evaluation's results: results.json, results.md and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def markdown(results: dict[str, Any]) -> str:
    if results["protocol"]["protocol"] == "intent":
        return intent_markdown(results)
    ks = results["ks"]
    models = results["models"]
    cols = [f"{m}@{k}" for k in ks for m in ("ndcg", "recall")] + \
        [f"{m}@{ks[0]}" for m in ("map", "mrr", "hit", "coverage", "diversity", "novelty",
                                   "top10%share")]
    lines = [f"Protocol `{results['protocol']['protocol']}`, seed {results['protocol']['seed']};"
             f" {results['data']['users']} listeners, {results['data']['items']} items, "
             f"{results['data']['test_users']} test listeners.", "",
             "| model | " + " | ".join(cols) + " | fit s |", "|---" * (len(cols) + 2) + "|"]
    for name, r in models.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[c]:.4f}" for c in cols)
                     + f" | {r['fit_seconds']:.1f} |")
    slice_names = sorted({s for r in models.values() for s in r["slices"]})
    if slice_names:
        k = ks[0]
        lines += ["", f"Slices (ndcg@{k}; cold items: recall@{k}; listeners in brackets):", "",
                  "| model | " + " | ".join(slice_names) + " |",
                  "|---" * (len(slice_names) + 1) + "|"]
        for name, r in models.items():
            cells = []
            for s in slice_names:
                sl = r["slices"].get(s)
                metric = f"recall@{k}" if s == "cold items" else f"ndcg@{k}"
                cells.append(f"{sl[metric]:.4f} ({sl['users']})" if sl else "–")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def intent_markdown(results: dict[str, Any]) -> str:
    """The intent study (evaluate/intent.py): one row per ranking of the same requests."""
    ks, data, chosen = results["ks"], results["data"], results["chosen"]
    cols = [f"{m}@{k}" for k in ks for m in ("ndcg", "hit")] + [f"mrr@{ks[-1]}",
                                                                "ndcg@10 per listener"]
    lines = [f"Intent study, seed {results['protocol']['seed']}: {data['requests']} requests "
             f"with an intent text from {data['listeners']} listeners; intent_weight "
             f"{chosen['intent_weight']:g} chosen on {data['validation_requests']} validation "
             f"requests, figures on the other {data['test_requests']}."
             + (f" Read by the {data['read_as']['reader']}: "
                f"{data['read_as']['several_topics']} requests of several topics, "
                f"{data['read_as']['exclusions']} with exclusions." if "read_as" in data
                else ""), "",
             "| ranking | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in results["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")
    lines.append("")
    for name, d in results.get("differences", {}).items():
        lines.append(f"- ndcg@10, {name}: {d['ndcg@10']:+.4f} (95% interval "
                     f"{d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f}, listeners resampled)")
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md"]
    paths[0].write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    paths[1].write_text(markdown(results), encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional: the bench extra installs matplotlib
        return paths
    def bars(path: Path, groups: list[str], values: dict[str, list[float]], title: str) -> None:
        """One bar per model in each group."""
        fig, ax = plt.subplots(figsize=(10, 4.5))
        width = 0.8 / len(values)
        for i, (name, vals) in enumerate(values.items()):
            ax.bar(np.arange(len(groups)) + i * width, vals, width, label=name)
        ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups)
        ax.set_title(title)
        ax.legend(fontsize=8, ncols=4)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    models = results["models"]
    ks = results["ks"]
    metrics = [f"{m}@{k}" for k in ks for m in ("ndcg", "recall")]
    if results["protocol"]["protocol"] == "intent":
        metrics = [f"{m}@{k}" for k in ks for m in ("ndcg", "hit")]
    bars(out / "accuracy.png", metrics,
         {name: [r[m] for m in metrics] for name, r in models.items()},
         f"{results['protocol']['protocol']}: accuracy by model")
    slice_names = sorted({s for r in models.values() for s in r.get("slices", {})})
    if slice_names:
        k = ks[0]

        def slice_value(r: dict[str, Any], s: str) -> float:
            metric = f"recall@{k}" if s == "cold items" else f"ndcg@{k}"
            return float(r["slices"].get(s, {}).get(metric, 0.0))

        bars(out / "slices.png", slice_names,
             {name: [slice_value(r, s) for s in slice_names] for name, r in models.items()},
             f"ndcg@{k} by listener activity; recall@{k} of cold items")
    return paths
