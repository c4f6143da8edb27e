"""Collaborative models through podrec against their raw kernels, on the same matrix.

Per data set: the data path (read_catalog / read_events / build_interactions vs pandas), fit
time of each model (EASE vs a bare numpy inverse, iALS / BPR vs ``implicit`` itself) and
recommendations per second for a batch of users (``Recommender.recommend`` vs a batched numpy
top-k, or implicit's own ``recommend``). Each podrec step runs right beside its reference,
alternating, best of ``--repeats`` (``--rec-repeats`` for the cheap recommend calls).
Run from the repository root: ``python benchmarks/bench_models.py --data ../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from rich.console import Console
from rich.table import Table
from scipy import sparse
from threadpoolctl import threadpool_limits

from podrec.ingest.datasets import read_catalog
from podrec.ingest.events import read_events
from podrec.model.base import Recommender, Scored, UserBatch
from podrec.model.collaborative import ALSModel, BPRModel, EASEModel, ItemKNNModel, PopularityModel
from podrec.model.interactions import Interactions, build_interactions
from podrec.records import IngestReport

K = 10
ALS_KW: dict[str, Any] = {"factors": 64, "regularization": 0.05, "alpha": 2.0, "iterations": 15}
BPR_KW: dict[str, Any] = {"factors": 64, "learning_rate": 0.05, "regularization": 0.01,
                          "iterations": 100}
EASE_KW: dict[str, Any] = {"l2": 200.0, "max_items": 8000}


class Spec(NamedTuple):
    folder: str
    events: str
    event_fmt: str
    catalog: str
    catalog_fmt: str
    cols: tuple[str, str]  # user and item columns of the events file, for the pandas reference


SPECS = {
    "movielens": Spec("movielens_latest_small_2016", "ratings.csv", "movielens", "movies.csv",
                      "movielens", ("userId", "movieId")),
    "lastfm": Spec("lastfm_hetrec2011_2k", "user_artists.dat", "lastfm", "artists.dat", "lastfm",
                   ("userID", "artistID")),
    "apple": Spec("apple_itunes_reviews_mille055_2023", "reviews.csv", "apple-reviews",
                  "podcasts.csv", "apple-csv", ("user", "itunes_id")),
}


def race(fns: dict[str, Callable[[], Any]], repeats: int, out: dict[str, Any] | None = None
         ) -> tuple[dict[str, float], dict[str, Any]]:
    """Best-of-``repeats`` seconds per function, called in turn so all see the same load.
    Results land in ``out`` as they come (a later function may use an earlier one's)."""
    best, out = dict.fromkeys(fns, float("inf")), {} if out is None else out
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, out


def pd_read(path: Path) -> pd.DataFrame:
    sep = "\t" if path.suffix == ".dat" else ","
    return pd.read_csv(path, sep=sep, encoding_errors="replace", low_memory=False)


def pd_matrix(frame: pd.DataFrame, cols: tuple[str, str]) -> sparse.csr_matrix:
    """The reference of build_interactions: factorize both id columns, sum duplicate pairs."""
    users, _ = pd.factorize(frame[cols[0]].astype(str))
    items, _ = pd.factorize(frame[cols[1]].astype(str))
    ones = np.ones(len(users), np.float32)
    return sparse.coo_matrix((ones, (users, items))).tocsr()


def batch_topk(scores: np.ndarray, seen: sparse.csr_matrix, k: int = K
               ) -> tuple[np.ndarray, np.ndarray]:
    """The raw top-k: seen items to -inf in place, argpartition, sort the k best per row."""
    scores[np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr)), seen.indices] = -np.inf
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, 1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, 1), np.take_along_axis(vals, order, 1)


def raw_ease(xb: sparse.csr_matrix, items: np.ndarray, l2: float) -> np.ndarray:
    xs = xb[:, items]
    g = np.asarray((xs.T @ xs).todense(), dtype=np.float64)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = p / -np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b


def raw_ease_recommend(x: sparse.csr_matrix, b: np.ndarray, items: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Raw EASE top-k: histories on the modelled items times B, then the batched top-k."""
    xs = x[:, items]
    top, vals = batch_topk(np.asarray(xs @ b), xs)
    return items[top], vals


def raw_implicit(cls: type, m: sparse.csr_matrix, kw: dict[str, Any]) -> Any:
    with threadpool_limits(1, "blas"):
        model = cls(**kw, random_state=0)
        model.fit(m, show_progress=False)
    return model


def same(podrec: list[Scored], ref: tuple[np.ndarray, np.ndarray]) -> float:
    """Share of users whose top-k scores match the reference's (ties make item ids unstable)."""
    return float(np.mean([len(s.scores) == len(r) and np.allclose(s.scores, r, rtol=1e-3,
                                                                  atol=1e-5)
                          for s, r in zip(podrec, ref[1], strict=True)]))


def bench_dataset(spec: Spec, data: Path, repeats: int, rec_repeats: int, batch: int
                  ) -> dict[str, Any]:
    """Data path, fit and recommend figures of one data set."""
    cat_path, ev_path = data / spec.folder / spec.catalog, data / spec.folder / spec.events
    rep = IngestReport()
    t, o = race({"catalog": lambda: list(read_catalog(cat_path, rep, spec.catalog_fmt)),
                 "catalog_ref": lambda: pd_read(cat_path),
                 "events": lambda: list(read_events(ev_path, rep, spec.event_fmt)),
                 "events_ref": lambda: pd_read(ev_path)}, repeats)
    ids, events = list(dict.fromkeys(r.id for r in o["catalog"])), o["events"]
    tb, ob = race({"build": lambda: build_interactions(events, ids),
                   "build_ref": lambda: pd_matrix(o["events_ref"], spec.cols)}, repeats)
    inter: Interactions = ob["build"]
    res: dict[str, Any] = {
        "users": inter.n_users, "items": inter.n_items, "positive_pairs": inter.matrix().nnz,
        "data": {"read_catalog": [t["catalog"], t["catalog_ref"]],
                 "read_events": [t["events"], t["events_ref"]],
                 "build_interactions": [tb["build"], tb["build_ref"]]},
        "fit": {}, "recommend": {}}
    m = inter.matrix()  # positive pairs only, so the binary matrix is its pattern
    xb = m.copy()
    xb.data = np.ones_like(xb.data)
    models: dict[str, Callable[[], Recommender]] = {
        "pop": PopularityModel, "itemknn": ItemKNNModel, "ease": lambda: EASEModel(**EASE_KW),
        "ials": lambda: ALSModel(**ALS_KW), "bpr": lambda: BPRModel(**BPR_KW)}
    rows = np.sort(np.random.default_rng(0).choice(inter.n_users, min(batch, inter.n_users),
                                                   replace=False))
    ub = UserBatch(m[rows], user_rows=rows)
    hist = ub.histories
    for name, make in models.items():
        fitted: dict[str, Any] = {}
        fit: dict[str, Callable[[], Any]] = {"podrec": lambda make=make: make().fit(None, inter)}
        ui = (m if name == "ials" else xb)[rows]
        if name == "ease":  # raw EASE inverts on the items the podrec fit just chose
            fit["raw"] = lambda f=fitted: raw_ease(xb, f["podrec"].items, EASE_KW["l2"])
        elif name in ("ials", "bpr"):
            cls, kw = (AlternatingLeastSquares, ALS_KW) if name == "ials" else \
                (BayesianPersonalizedRanking, BPR_KW)
            fit["raw"] = lambda c=cls, k=kw, x=(m if name == "ials" else xb): raw_implicit(c, x, k)
        tf, _ = race(fit, repeats, fitted)
        res["fit"][name] = [tf["podrec"], tf.get("raw")]
        model: Any = fitted["podrec"]
        rec: dict[str, Callable[[], Any]] = {
            "podrec": lambda model=model: model.recommend(ub, k=K),
            "score": lambda model=model: model.score(ub),
            "slices": lambda: [hist[i].indices for i in range(hist.shape[0])],
            "slices_indptr": lambda: [hist.indices[hist.indptr[i]:hist.indptr[i + 1]]
                                      for i in range(hist.shape[0])],
            "batched": lambda model=model: batch_topk(model.score(ub), hist)}
        if name == "ease":
            b32 = fitted["raw"].astype(np.float32)
            rec["raw"] = lambda b=b32, it=model.items, x=ui: raw_ease_recommend(x, b, it)
        elif name in ("ials", "bpr"):
            rec["raw"] = lambda raw=fitted["raw"], ui=ui: raw.recommend(rows, ui, N=K)
        tr, orec = race(rec, rec_repeats)
        # the same scores as the reference: implicit's recommend on podrec's own fitted factors
        # (two BPR fits differ: implicit's SGD runs hogwild), the raw EASE lists as they are
        check = model._model.recommend(rows, ui, N=K) if name in ("ials", "bpr") \
            else orec.get("raw")
        res["recommend"][name] = {
            **tr, "n": len(rows), "same_as_batched": same(orec["podrec"], orec["batched"]),
            "same_as_raw": None if check is None else same(orec["podrec"], check)}
    return res


def ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}×" if b else "—"


def show(console: Console, name: str, r: dict[str, Any]) -> None:
    """One table per data set: seconds for data and fit, users/s for recommend."""
    tab = Table(title=f"{name}: {r['users']} users × {r['items']} items, "
                f"{r['positive_pairs']} positive pairs", title_justify="left")
    for col in ("step", "podrec", "reference", "podrec/ref", "notes"):
        tab.add_column(col, justify="left" if col in ("step", "notes") else "right")
    for step, (p, ref) in r["data"].items():
        tab.add_row(f"{step} (s)", f"{p:.3f}", f"{ref:.3f}", ratio(p, ref), "ref: pandas")
    refs = {"ease": "numpy inv", "ials": "implicit ALS", "bpr": "implicit BPR"}
    for model, (p, ref) in r["fit"].items():
        tab.add_row(f"fit {model} (s)", f"{p:.3f}", "—" if ref is None else f"{ref:.3f}",
                    ratio(p, ref), refs.get(model, ""))
    for model, x in r["recommend"].items():
        n, rec = x["n"], x["podrec"]
        loop = max(rec - x["score"] - x["slices"], 0.0)
        note = (f"score {x['score'] / rec:.0%} · row slices {x['slices'] / rec:.0%} "
                f"(indptr {x['slices_indptr'] / rec:.1%}) · top_k {loop / rec:.0%} | batched "
                f"{n / x['batched']:,.0f}/s, same {x['same_as_batched']:.0%}")
        if x["same_as_raw"] is not None:
            note += f" | = ref {x['same_as_raw']:.0%}"
        tab.add_row(f"recommend {model} (users/s)", f"{n / rec:,.0f}",
                    f"{n / x['raw']:,.0f}" if "raw" in x else "—",
                    ratio(rec, x.get("raw")), note)
    console.print(tab)


def summary(console: Console, results: dict[str, dict[str, Any]]) -> None:
    tab = Table(title="summary (podrec/ref: >1 means podrec slower)", title_justify="left")
    for col in ("data set", "model", "fit podrec/ref", "recommend users/s", "ref users/s",
                "rec podrec/ref", "score+batched top-k users/s"):
        tab.add_column(col, justify="left" if col in ("data set", "model") else "right")
    for ds, r in results.items():
        for model, x in r["recommend"].items():
            n = x["n"]
            tab.add_row(ds, model, ratio(*r["fit"][model]), f"{n / x['podrec']:,.0f}",
                        f"{n / x['raw']:,.0f}" if "raw" in x else "—",
                        ratio(x["podrec"], x.get("raw")), f"{n / x['batched']:,.0f}")
    console.print(tab)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--datasets", default=",".join(SPECS))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rec-repeats", type=int, default=5, help="repeats of recommend timings")
    ap.add_argument("--batch", type=int, default=1000, help="users per recommend batch")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    if unknown := [n for n in names if n not in SPECS]:
        sys.exit(f"error: unknown data set(s) {', '.join(unknown)}; choose from {', '.join(SPECS)}")
    paths = [args.data / SPECS[n].folder / f for n in names for f in SPECS[n][1:5:2]]
    if missing := [str(p) for p in paths if not p.is_file()]:
        sys.exit(f"error: {', '.join(missing)} not found. Pass --data DIR, the shared data "
                 "folder (it holds movielens_latest_small_2016/ and the others).")
    console = Console(width=200)
    console.print(f"{platform.node()} · {platform.processor() or platform.machine()} · "
                  f"{os.cpu_count()} cores · numpy {np.__version__} · best of {args.repeats} "
                  f"(recommend: of {args.rec_repeats})")
    results = {}
    for n in names:
        results[n] = bench_dataset(SPECS[n], args.data, args.repeats, args.rec_repeats,
                                   args.batch)
        show(console, n, results[n])
    summary(console, results)
    if args.json:
        args.json.write_text(json.dumps({"cores": os.cpu_count(), "repeats": args.repeats,
                                         "rec_repeats": args.rec_repeats,
                                         "batch": args.batch, "results": results}, indent=1))


if __name__ == "__main__":
    main()
