"""A serving worker's memory per episode, by component, on bench_scale.py's trained stores.

For each catalog size (episodes; default 10k and 100k) a SQLite store is built and trained the
way ``bench_scale.py`` does it (its ``build_store``, then ``Podrec.train("episode")``, the
default hybrid), or reused from ``--work`` when it is already there. Then worker processes
(nothing but ``Podrec`` on that store, as ``podrec serve`` runs one) are started: one on an
empty catalog cache folder (it reads the catalog and the trained model from the store and
saves them; its peak is reported), one that loads them (its modules are imported before the
measured worker's first stage, so that libraries are counted apart), and the measured one,
which answers a first list and ``--lists`` more and reports:

- its RSS, private (anonymous) RSS, PSS and peak (VmHWM), per episode;
- each component's bytes and share of that RSS, read off the objects the worker holds (numpy
  and scipy buffers, counted once however many objects share them; memory-mapped files by
  their resident pages in /proc/self/smaps; Python objects by ``sys.getsizeof`` over their
  contents; hnswlib's graph by its layout);
- the RSS and peak after each stage (catalog arrays, index, served model, pipeline, lists).

A run under tracemalloc gives the Python allocations per stage and the top lines (JSON only).
With ``--baseline-src`` (another checkout's ``src/``, e.g. a ``git worktree``) the same
workers run with podrec imported from there, on the same store: the reference, side by side
with the ratio.

Run from the repository root:
``python benchmarks/bench_memory.py --data ../shared/data --work /tmp/podrec-mem
--baseline-src ../baseline/src --baseline-label BASE --json docs/results/bench-memory.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402
from bench_scale import build_store, config, listeners_with_events, say  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# -- the stores -------------------------------------------------------------------------------
def prepare(work: Path, n: int, pools: synthetic.TextPools, per_episode: int,
            validation_users: int) -> str:
    """A trained SQLite store of ``n`` synthetic episodes in ``work`` (built once)."""
    from podrec.service import Podrec

    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'podrec.db'}"
    done = work / "trained.json"
    if done.is_file():
        return url
    for f in work.glob("podrec.db*"):
        f.unlink()
    plan = synthetic.plan_catalog(n, pools, seed=0)
    synthetic.write_catalog(plan, pools, work / "catalog.jsonl")
    synthetic.write_events(plan, work / "events.csv", n * per_episode, seed=1)
    built = build_store(url, work, plan, pools, work / "events.csv")
    p = Podrec(config(url))
    try:
        t0 = time.perf_counter()
        report = p.train("episode", max_validation_users=validation_users)
        built["train_s"] = round(time.perf_counter() - t0, 1)
        built["model"] = {"params": report.meta.get("params"), "data": report.meta.get("data")}
    finally:
        p.close()
    done.write_text(json.dumps(built, indent=2), encoding="utf-8")
    say(f"  store of {n:,} episodes trained in {built['train_s']} s")
    return url


# -- the worker ------------------------------------------------------------------------------
def proc_status() -> dict[str, int]:
    """RSS (anonymous and file-backed) and its peak, bytes, from /proc/self/status."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    with open("/proc/self/smaps_rollup") as f:  # shared pages split between their users
        for line in f:
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1]) * 1024
    return out


def mapped_rss(folder: Path) -> dict[str, int]:
    """Resident bytes of every file under ``folder`` this process maps (smaps)."""
    out: dict[str, int] = {}
    path = None
    prefix = str(folder.resolve())
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                path = head[5] if len(head) > 5 and head[5].startswith(prefix) else None
            elif path is not None and head and head[0] == "Rss:":
                out[path] = out.get(path, 0) + int(head[1]) * 1024
    return out


class Ledger:
    """Bytes held per component; every buffer and Python object is counted once, by the
    first component that claims it (so shared arrays are not counted twice)."""

    def __init__(self, *excluded: Any) -> None:
        self.seen: set[int] = set()
        self.alive: list[Any] = list(excluded)  # keeps ids unique while counting
        self.seen.update(id(o) for o in excluded)
        self.parts: dict[str, dict[str, int]] = {}

    def claim(self, name: str, *objects: Any) -> dict[str, int]:
        import mmap
        import types

        import numpy as np

        row = self.parts.setdefault(name, {"heap": 0, "mapped": 0, "python": 0})
        stack = list(objects)
        skip = (type, types.ModuleType, types.FunctionType, types.MethodType,
                types.BuiltinFunctionType)
        while stack:
            o = stack.pop()
            if o is None or id(o) in self.seen or isinstance(o, skip):
                continue
            self.seen.add(id(o))
            self.alive.append(o)
            if isinstance(o, np.ndarray):
                root: Any = o
                while isinstance(root, np.ndarray) and root.base is not None:
                    root = root.base
                if id(root) in self.seen and root is not o:
                    continue
                self.seen.add(id(root))
                self.alive.append(root)
                if isinstance(root, memoryview) and isinstance(root.obj, mmap.mmap):
                    row["mapped"] += root.nbytes  # unpickled out of band (model_files.py)
                elif isinstance(root, mmap.mmap):
                    row["mapped"] += len(root)
                elif isinstance(root, np.ndarray):
                    row["heap"] += root.nbytes
                else:
                    row["heap"] += o.nbytes
                if o.dtype == object:
                    stack.extend(o.ravel().tolist())
                continue
            row["python"] += sys.getsizeof(o)
            if isinstance(o, dict):
                stack.extend(o.keys())
                stack.extend(o.values())
            elif isinstance(o, (list, tuple, set, frozenset)):
                stack.extend(o)
            elif hasattr(o, "__dict__") and not isinstance(o, (str, bytes, int, float)):
                stack.append(o.__dict__)
        return row


def hnsw_bytes(index: Any) -> int:
    """hnswlib's own memory for a graph (it does not say): per slot, the vector, the level-0
    links (2·m + 1 ints) and the label; per element, upper-level links (1/ln m of them have
    some), a lock and a label-map entry. An estimate from hnswlib 0.8's layout."""
    import math

    g = getattr(index, "_graph", None)
    if g is None:
        return 0
    m, dim, cap, n = index.m, index.dim, g.get_max_elements(), g.get_current_count()
    slot = dim * 4 + (2 * m + 1) * 4 + 8
    upper = n / math.log(max(m, 2)) * (m + 1) * 4
    return int(cap * slot + upper + n * (40 + 48))


def worker(url: str, user: str, n: int, lists: int, trace: bool) -> dict[str, Any]:
    """A fresh worker's first lists, its RSS per stage and the bytes of each component."""
    import gc
    import tracemalloc

    if trace:
        tracemalloc.start(1)
    stages: list[dict[str, Any]] = []

    def stage(name: str) -> None:
        gc.collect()
        row: dict[str, Any] = {"stage": name, **proc_status()}
        if trace:
            row["traced"], row["traced_peak"] = tracemalloc.get_traced_memory()
            row["tracemalloc_overhead"] = tracemalloc.get_tracemalloc_memory()
        stages.append(row)

    stage("interpreter")
    import importlib

    from podrec.service import Podrec
    for name in os.environ.get("BENCH_MEMORY_IMPORTS", "").split(","):
        try:  # what the worker will import anyway, so that libraries are counted apart
            importlib.import_module(name)
        except Exception:  # noqa: BLE001,S112 - a module that imports only in context
            continue
    stage("imports")
    p = Podrec(config(url))
    models = p.models
    data = models.data("episode")
    stage("catalog arrays")
    index = models._vector_index(data, "episode", "cosine")
    stage("vector index")
    served = models.served("episode")
    stage("served model")
    models.served = lambda kind: served  # type: ignore[method-assign]  # not loaded twice
    pipeline = models.pipeline("episode")
    del models.served
    stage("pipeline")
    p.recommend(user_id=user, kind="episode", k=10)
    stage("first list")
    users = listeners_with_events(url, lists, seed=7)
    for u in users:
        p.recommend(user_id=u, kind="episode", k=10)
    stage(f"{len(users) + 1} lists")
    out: dict[str, Any] = {"stages": stages}
    if trace:
        top = tracemalloc.take_snapshot().statistics("lineno")[:25]
        out["traced_top"] = [{"where": f"{s.traceback[0].filename.split('site-packages/')[-1]}"
                                       f":{s.traceback[0].lineno}",
                              "bytes": s.size, "count": s.count} for s in top]
        return out
    out["components"] = components(p, data, index, served, pipeline)
    cache = models.disk_cache
    out["mapped_rss"] = mapped_rss(cache.root) if cache is not None else {}
    out["rss"] = proc_status()
    out["modules"] = sorted({m.split(".")[0] for m in sys.modules if not m.startswith("_")})
    return out


def components(p: Any, data: Any, index: Any, served: Any, pipeline: Any
               ) -> dict[str, dict[str, int]]:
    """Bytes per component of what the worker holds (see ``Ledger``)."""
    from podrec.model.content import attached_arrays
    from podrec.model.hybrid import parts_of

    models = p.models
    led = Ledger(p.store, p.config, models.store, models.config, models.lock, p)
    meta = {"texts": ["texts"], "titles": ["titles"],
            "ids, kinds, id -> row map": ["ids", "kinds", "_row"],
            "categories, authors, languages, shows, platforms, explicit":
                ["categories", "authors", "languages", "show_ids", "platforms", "explicit"]}
    for name, fields in meta.items():
        led.claim(f"catalog: {name}", *[getattr(data, f) for f in fields])
    led.claim("catalog: vectors", data.vectors)
    led.claim("catalog: pks, popularity, durations, published", data.pks, data.popularity,
              data.durations, data.published)
    led.claim("content arrays (TF-IDF, genres, producers)", attached_arrays(data))
    if index is not None:
        led.parts["vector index: HNSW graph (hnswlib, estimated)"] = {
            "heap": hnsw_bytes(index.inner), "mapped": 0, "python": 0}
        led.claim("vector index: its numpy vectors", index.inner)
        led.claim("vector index: row maps", index)
    for name, part in parts_of(served.model).items():
        if hasattr(part, "centred"):
            led.claim(f"served part {name}: centred vectors", part.centred)
        led.claim(f"served part {name}", part)
    led.claim("served model: listeners' training rows", served.users)
    led.claim("served model: hybrid", served)
    led.claim("result cards", models._cards)
    led.claim("titles check, query vectors", models._titles, models._queries)
    led.claim("pipeline, other fitted models", pipeline, models._content, models._profiles)
    return led.parts


def run_worker(url: str, user: str, n: int, lists: int, trace: bool = False,
               imports: list[str] | None = None, src: Path | None = None) -> dict[str, Any]:
    """``worker`` in a fresh Python process (its RSS is the worker's alone); ``imports``:
    top-level modules imported before the first stage is measured; ``src``: another
    checkout's ``src/`` to import podrec from (the reference)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", url, user, str(n),
           str(lists)] + (["--trace"] if trace else [])
    env = os.environ | {"BENCH_MEMORY_IMPORTS": ",".join(imports or [])}
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    done = subprocess.run(cmd, check=True, capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


MAPPED = {"vectors.npy": "catalog: vectors", "/content/": "content arrays (TF-IDF, genres, "
           "producers)", "/models/": "served model: its arrays, memory-mapped (all parts)"}


def summarise(n: int, run: dict[str, Any]) -> dict[str, Any]:
    """RSS per episode and each component's resident bytes, per episode and as a share."""
    rss = run["rss"]["VmRSS"]
    base = next(s for s in run["stages"] if s["stage"] == "imports")["VmRSS"]
    resident: dict[str, int] = {}
    mapped_total: dict[str, int] = {}
    for name, row in run["components"].items():
        resident[name] = row["heap"] + row["python"]
        mapped_total[name] = row["mapped"]
    mapped_total[MAPPED["/models/"]] = sum(row["mapped"] for name, row in
                                           run["components"].items()
                                           if name.startswith("served"))
    for path, size in run["mapped_rss"].items():
        name = next((c for key, c in MAPPED.items() if key in path),
                    "catalog: pks, popularity, durations, published")
        resident[name] = resident.get(name, 0) + size
    rows = [{"component": "interpreter and libraries", "bytes": base}]
    rows += [{"component": k, "bytes": v, "file_mapped_bytes": mapped_total.get(k, 0)}
             for k, v in sorted(resident.items(), key=lambda kv: -kv[1]) if v]
    rows.append({"component": "unattributed (allocator, freed but kept, C libraries)",
                 "bytes": rss - base - sum(resident.values())})
    for r in rows:
        r["bytes_per_episode"] = round(r["bytes"] / n)
        r["share"] = round(r["bytes"] / rss, 4)
    return {"episodes": n, "rss_bytes": rss, "rss_bytes_per_episode": round(rss / n),
            "rss_anon_bytes": run["rss"]["RssAnon"], "rss_file_bytes": run["rss"]["RssFile"],
            "pss_bytes": run["rss"]["Pss"],
            "peak_rss_bytes": run["rss"]["VmHWM"],
            "peak_rss_bytes_per_episode": round(run["rss"]["VmHWM"] / n),
            "stages": [{k: v for k, v in st.items()} for st in run["stages"]],
            "components": rows}


def first_workers(url: str, user: str, n: int, src: Path | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A worker on an empty cache folder (it reads the catalog and the model from the store
    and saves them), then one that loads them: its modules are imported before the measured
    worker's first stage, so that libraries are counted apart from what the worker holds."""
    root = Path(url.removeprefix("sqlite:///") + ".cache")
    shutil.rmtree(root, ignore_errors=True)
    first = run_worker(url, user, n, 0, src=src)
    return first, run_worker(url, user, n, 0, src=src)


def reference(url: str, user: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """The same measure with podrec imported from ``--baseline-src`` (its first worker,
    then a measured one)."""
    first, warm = first_workers(url, user, n, args.baseline_src)
    ref = summarise(n, run_worker(url, user, n, args.lists, imports=warm["modules"],
                                  src=args.baseline_src))
    ref["first_worker_peak_rss_bytes"] = first["rss"]["VmHWM"]
    ref["label"] = args.baseline_label
    return ref


def compare(s: dict[str, Any]) -> None:
    """This checkout against the reference: bytes per episode and the ratio."""
    ref = s["reference"]
    print(f"  this checkout against {ref['label']} (bytes/episode, this / reference):")
    for key, label in (("rss_bytes", "RSS after the lists"), ("pss_bytes", "PSS"),
                       ("rss_anon_bytes", "anonymous (private) RSS"),
                       ("peak_rss_bytes", "peak RSS (VmHWM)"),
                       ("first_worker_peak_rss_bytes", "first worker's peak")):
        a, b = s[key] / s["episodes"], ref[key] / s["episodes"]
        print(f"    {label:<28} {a:10,.0f} {b:10,.0f}   {a / b:5.2f}x")


def show(s: dict[str, Any]) -> None:
    mb = 2 ** 20
    print(f"\n{s['episodes']:,} episodes: RSS {s['rss_bytes'] / mb:,.0f} MB "
          f"({s['rss_bytes_per_episode']:,} B/episode; anon {s['rss_anon_bytes'] / mb:,.0f} MB,"
          f" file-backed {s['rss_file_bytes'] / mb:,.0f} MB, PSS {s['pss_bytes'] / mb:,.0f} MB),"
          f" peak "
          f"{s['peak_rss_bytes'] / mb:,.0f} MB ({s['peak_rss_bytes_per_episode']:,} B/episode)")
    for r in s["components"]:
        extra = f"  (maps {r['file_mapped_bytes'] / mb:.0f} MB of files)" \
            if r.get("file_mapped_bytes") else ""
        print(f"  {r['component']:<62} {r['bytes'] / mb:8.1f} MB {r['bytes_per_episode']:8,} "
              f"B/ep {100 * r['share']:5.1f}%{extra}")
    print("  stage: RSS / peak MB after each")
    for st in s["stages"]:
        traced = f", traced {st['traced'] / mb:.0f} MB" if "traced" in st else ""
        print(f"    {st['stage']:<16} {st['VmRSS'] / mb:8.0f} {st['VmHWM'] / mb:8.0f}{traced}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, user, n, lists = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(worker(url, user, n, lists, "--trace" in sys.argv)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--data", type=Path, default=synthetic.DEFAULT_DATA)
    parser.add_argument("--per-episode", type=int, default=10)
    parser.add_argument("--validation-users", type=int, default=100)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "podrec-mem")
    parser.add_argument("--lists", type=int, default=20, help="lists after the first")
    parser.add_argument("--baseline-src", type=Path,
                        help="src/ of another checkout (git worktree): the reference worker")
    parser.add_argument("--baseline-label", default="reference")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--measure-only", action="store_true",
                        help="measure the stores already in --work (never build)")
    parser.add_argument("--no-trace", action="store_true",
                        help="skip the tracemalloc run (Python allocations per line)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pools = synthetic.load_pools(args.data)
    results = []
    load = os.getloadavg()
    for n in args.sizes:
        say(f"{n:,} episodes")
        if args.measure_only:
            url = f"sqlite:///{args.work / str(n) / 'podrec.db'}"
        else:
            url = prepare(args.work / str(n), n, pools, args.per_episode,
                          args.validation_users)
        if args.build_only:
            continue
        user = listeners_with_events(url, 1, seed=n)[0]
        first, warm = first_workers(url, user, n)
        say(f"  first worker (cache empty): peak {first['rss']['VmHWM'] / 2**20:.0f} MB")
        summary = summarise(n, run_worker(url, user, n, args.lists, imports=warm["modules"]))
        summary["first_worker_peak_rss_bytes"] = first["rss"]["VmHWM"]
        if not args.no_trace:  # before the reference, which empties the cache folder
            traced = run_worker(url, user, n, args.lists, trace=True, imports=warm["modules"])
            summary["traced_stages"] = traced["stages"]
            summary["traced_top"] = traced["traced_top"]
        if args.baseline_src is not None:
            summary["reference"] = reference(url, user, n, args)
        show(summary)
        if "reference" in summary:
            compare(summary)
        results.append(summary)
    if args.json and results:
        out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, shared",
               "python": platform.python_version(),
               "load_average_at_start": [round(x, 2) for x in load],
               "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
               "date": datetime.now(UTC).date().isoformat(), "sizes": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
