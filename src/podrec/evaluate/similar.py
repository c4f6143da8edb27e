"""Item-to-item evaluation against Apple's "listeners also subscribed to" lists.

The catalog (Apple's podcast pages) goes through podrec's own ingest and enrich into a store;
each source podcast's list of co-subscribed podcasts in the catalog is its ground truth. Source
podcasts are split at random, with a seed, into a validation half (where the fused score's
weights are learned) and a test half (where every method is scored). Baselines run in the same
process on the same split: most popular, most popular in the same genre, TF-IDF cosine on the
same text the embedder sees (``catalog.texts``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from podrec.evaluate.metrics import ndcg_at_k, recall_at_k
from podrec.index.vector_index import top_k
from podrec.model.base import CatalogData, norm_name
from podrec.model.content import ContentModel, ContentWeights, fit_weights

APPLE_DIR = "apple_podcasts_peterchong_2021"


@dataclass
class SimilarResult:
    ks: tuple[int, ...]
    n_items: int
    n_validation: int
    n_test: int
    weights: dict[str, float]
    embedder: str
    seed: int
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"task": "item-to-item vs Apple 'also subscribed'", "ks": list(self.ks),
                "n_items": self.n_items, "n_validation_sources": self.n_validation,
                "n_test_sources": self.n_test, "embedder": self.embedder, "seed": self.seed,
                "learned_weights": self.weights, "methods": self.rows,
                "seconds": self.seconds}

    def markdown(self) -> str:
        cols = [f"recall@{k}" for k in self.ks] + [f"ndcg@{k}" for k in self.ks if k == 10]
        lines = ["| method | " + " | ".join(cols) + " |",
                 "|---|" + "---|" * len(cols)]
        for name, metrics in self.rows.items():
            lines.append(f"| {name} | " + " | ".join(f"{metrics[c]:.3f}" for c in cols) + " |")
        return "\n".join(lines)


def load_truth(data_dir: Path, catalog: CatalogData) -> dict[int, set[int]]:
    """Source row → rows of its co-subscribed podcasts, both in the catalog, matched by title."""
    by_title: dict[str, int] = {}
    pop = np.nan_to_num(np.asarray(catalog.popularity, dtype=np.float64))
    for row in np.argsort(-pop, kind="stable"):  # a duplicated title means its popular one
        by_title.setdefault(norm_name(catalog.titles[row]), int(row))
    subs = json.loads((data_dir / APPLE_DIR / "podcast_subs.json").read_text(encoding="utf-8"))
    truth: dict[int, set[int]] = {}
    for entry in subs:
        src = by_title.get(norm_name(entry.get("title")))
        if src is None:
            continue
        related = {by_title[t] for t in (norm_name(s) for s in entry.get("subs") or [])
                   if t in by_title} - {src}
        if related:
            truth.setdefault(src, set()).update(related)
    return truth


def _score(ranker: Callable[[int], np.ndarray], truth: dict[int, set[int]],
           sources: list[int], ks: tuple[int, ...]) -> dict[str, float]:
    kmax = max(ks)
    sums: dict[str, float] = {}
    for src in sources:
        ranked = ranker(src)[:kmax].tolist()
        for k in ks:
            sums[f"recall@{k}"] = sums.get(f"recall@{k}", 0.0) + recall_at_k(ranked, truth[src], k)
            sums[f"ndcg@{k}"] = sums.get(f"ndcg@{k}", 0.0) + ndcg_at_k(ranked, truth[src], k)
    return {name: value / len(sources) for name, value in sums.items()}


def _baselines(catalog: CatalogData, kmax: int) -> dict[str, Callable[[int], np.ndarray]]:
    """The reference rankers: most popular, most popular in the seed's genre, TF-IDF."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    pop = np.nan_to_num(np.asarray(catalog.popularity, dtype=np.float64))
    genre = [norm_name(c[0]) if c else "" for c in catalog.categories]
    genre_arr = np.array(genre)

    def popular(src: int) -> np.ndarray:
        return top_k(pop.astype(np.float32), kmax, np.array([src]))[0]

    def popular_genre(src: int) -> np.ndarray:
        boost = (genre_arr == genre[src]) & (genre_arr != "")
        return top_k((pop + boost * (pop.max() + 1)).astype(np.float32), kmax,
                     np.array([src]))[0]

    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2).fit_transform(
        catalog.texts)

    def tfidf_rank(src: int) -> np.ndarray:
        sims = np.asarray((tfidf @ tfidf[src].T).toarray()).ravel().astype(np.float32)
        return top_k(sims, kmax, np.array([src]))[0]

    return {"most popular (num_ratings)": popular,
            "most popular in the same genre": popular_genre,
            "TF-IDF cosine (same text)": tfidf_rank}


def evaluate_similar(catalog: CatalogData, data_dir: Path, ks: tuple[int, ...] = (10, 20),
                     seed: int = 0, embedder_name: str = "",
                     default_weights: ContentWeights | None = None,
                     progress: Callable[[str], None] | None = None) -> SimilarResult:
    import time

    truth = load_truth(data_dir, catalog)
    sources = sorted(truth)
    rng = np.random.default_rng(seed)
    rng.shuffle(sources)
    half = len(sources) // 2
    validation, test = sorted(sources[:half]), sorted(sources[half:])
    kmax = max(ks)
    n = len(catalog)
    baselines = _baselines(catalog, kmax)
    cosine_only = ContentModel(ContentWeights(1.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0)).fit(catalog)
    t0 = time.perf_counter()
    learned, _ = fit_weights(cosine_only, [(s, truth[s]) for s in validation],
                             progress=progress)
    fit_seconds = time.perf_counter() - t0
    fused = ContentModel(learned).fit(catalog)
    no_expansion = ContentModel(replace(learned, expand_k=0, expand_weight=0.0)).fit(catalog)
    defaults = ContentModel(default_weights or ContentWeights()).fit(catalog)

    methods: dict[str, Callable[[int], np.ndarray]] = baselines | {
        "podrec embedding cosine only": lambda s: cosine_only.similar_items(s, kmax).rows,
        "podrec fused, no neighbour expansion":
            lambda s: no_expansion.similar_items(s, kmax).rows,
        "podrec fused (learned on validation)": lambda s: fused.similar_items(s, kmax).rows,
        "podrec fused (shipped default weights)": lambda s: defaults.similar_items(s, kmax).rows,
    }
    result = SimilarResult(ks=ks, n_items=n, n_validation=len(validation), n_test=len(test),
                           weights=learned.to_dict(), embedder=embedder_name, seed=seed)
    result.seconds["fit_weights"] = round(fit_seconds, 3)
    for name, ranker in methods.items():
        if progress:
            progress(name)
        t0 = time.perf_counter()
        result.rows[name] = _score(ranker, truth, test, ks)
        result.seconds[name] = round(time.perf_counter() - t0, 3)
    return result


def write_report(result: SimilarResult, out: Path) -> list[Path]:
    """results.json, results.md and a bar chart (PNG) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "similar.json", out / "similar.md"]
    paths[0].write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    paths[1].write_text(result.markdown() + "\n", encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    names = list(result.rows)
    metrics = [f"recall@{k}" for k in result.ks] + ["ndcg@10"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(np.arange(len(metrics)) + i * width, [result.rows[name][m] for m in metrics],
               width, label=name)
    ax.set_xticks(np.arange(len(metrics)) + 0.4 - width / 2, metrics)
    ax.set_title(f"Similar podcasts vs Apple 'also subscribed' ({result.n_test} test sources)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "similar.png", dpi=120)
    plt.close(fig)
    paths.append(out / "similar.png")
    return paths
