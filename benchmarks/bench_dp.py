"""What Laplace noise on popularity counts (``privacy.dp_epsilon``) costs in ranking quality.

On real listening data (Last.fm HetRec 2011 play counts and the Apple podcast reviews of
../shared/data; ``--data``), pairs are split at random (``--test-fraction``, seeded), the
popularity model's counts (listeners with a positive pair per item) are taken from the
training pairs, and each held-out listener's top-10 (items they already had left out) is
scored by NDCG@10. The counts are then replaced by podrec's noisy release
(``podrec.privacy.noise.noisy_counts``: OpenDP's discrete Laplace, clamped at zero) for
each ε, ``--draws`` fresh draws each; the table gives the mean NDCG@10, its spread over the
draws and the ratio to the exact counts (the reference, ε = ∞).

    .venv/bin/python benchmarks/bench_dp.py --data ../shared/data [--draws 5] [--json out.json]

Only the popularity model is measured: it is the part of the served hybrid the noise enters
(pop, pop-recent and the cold-item flags); the other parts do not read the counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from podrec.evaluate.metrics import ndcg_at_k
from podrec.evaluate.protocols import SplitConfig, split_pairs
from podrec.ingest.events import read_events
from podrec.model.interactions import Interactions, build_interactions
from podrec.privacy.noise import noisy_counts
from podrec.records import IngestReport

K = 10
EPSILONS = (0.1, 0.5, 1.0, 5.0, float("inf"))
DATASETS = {
    "lastfm": ("lastfm_hetrec2011_2k/user_artists.dat", "lastfm"),
    "apple-reviews": ("apple_itunes_reviews_mille055_2023/reviews.csv", "apple-reviews"),
}


def load(data: Path, name: str) -> Interactions:
    rel, fmt = DATASETS[name]
    path = data / rel
    if not path.exists():
        sys.exit(f"bench_dp: {path} not found (pass --data, the shared data folder)")
    return build_interactions(read_events(path, IngestReport(), fmt), [])


def ndcg_of(counts: np.ndarray, train: Interactions, test: Interactions) -> float:
    """Mean NDCG@10 over held-out listeners of the popularity ranking ``counts``."""
    order = np.argsort(-counts, kind="stable")
    seen: dict[int, set[int]] = {}
    for u, i in zip(train.users.tolist(), train.items.tolist(), strict=True):
        seen.setdefault(u, set()).add(i)
    relevant: dict[int, set[int]] = {}
    pos = test.confidence > 0
    for u, i in zip(test.users[pos].tolist(), test.items[pos].tolist(), strict=True):
        relevant.setdefault(u, set()).add(i)
    scores = []
    for u, rel in relevant.items():
        mine = seen.get(u, set())
        top: list[int] = []
        for i in order.tolist():
            if i not in mine:
                top.append(i)
                if len(top) == K:
                    break
        scores.append(ndcg_at_k(top, rel, K))
    return float(np.mean(scores)) if scores else 0.0


def run(pairs: Interactions, draws: int, seed: int, test_fraction: float) -> list[dict]:
    mask = split_pairs(pairs, SplitConfig("random", test_fraction, seed=seed))
    train, test = pairs.subset(~mask), pairs.subset(mask)
    exact = train.item_popularity().astype(np.float64)
    reference = ndcg_of(exact, train, test)
    rows = []
    for eps in EPSILONS:
        if not np.isfinite(eps):
            rows.append({"epsilon": "inf", "ndcg@10": reference, "sd": 0.0, "ratio": 1.0,
                         "mean_abs_noise": 0.0})
            continue
        got, noise = [], []
        for _ in range(draws):
            noisy = noisy_counts(exact, eps, integer=True)
            noise.append(float(np.abs(noisy - exact).mean()))
            got.append(ndcg_of(noisy, train, test))
        rows.append({"epsilon": eps, "ndcg@10": float(np.mean(got)), "sd": float(np.std(got)),
                     "ratio": float(np.mean(got)) / reference if reference else float("nan"),
                     "mean_abs_noise": float(np.mean(noise))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--datasets", default="lastfm,apple-reviews")
    ap.add_argument("--draws", type=int, default=5, help="noise draws per epsilon")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {}
    for name in args.datasets.split(","):
        t0 = time.perf_counter()
        pairs = load(args.data, name)
        rows = run(pairs, args.draws, args.seed, args.test_fraction)
        out[name] = {"listeners": pairs.n_users, "items": pairs.n_items,
                     "pairs": int(len(pairs.users)), "rows": rows,
                     "seconds": round(time.perf_counter() - t0, 1)}
        print(f"\n{name}: {pairs.n_users} listeners, {pairs.n_items} items, "
              f"{len(pairs.users)} pairs; random {args.test_fraction:.0%} held out, "
              f"{args.draws} draws per ε ({out[name]['seconds']} s)")
        print(f"{'ε':>6} | {'NDCG@10':>8} | {'sd':>7} | {'vs exact':>8} | mean |noise|")
        for r in rows:
            eps = r["epsilon"] if r["epsilon"] == "inf" else f"{r['epsilon']:g}"
            print(f"{eps:>6} | {r['ndcg@10']:8.4f} | {r['sd']:7.4f} | {r['ratio']:8.3f} | "
                  f"{r['mean_abs_noise']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
