"""Cache-miss lists over HTTP on the trained stores ``bench_scale.py`` leaves in ``--work``:
one `podrec serve` worker (SQLite, kept lists off, no generator) answering
``GET /users/{id}/recommendations`` one at a time and from 8 clients at once, beside the same
lists computed in-process by ``Podrec.recommend`` on the same listeners (the reference). Prints
p50/p99, lists/s and the HTTP / in-process ratio.

Run from the repository root after ``bench_scale.py --work DIR``:
``python benchmarks/bench_scale_http.py --work DIR --sizes 10000 100000``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import config, listeners_with_events  # noqa: E402

SERVE_CONFIG = ('[llm]\nbackend = "none"\nreasons = false\nsummaries = false\n'
                '[server]\ncache_mb = 0\n')


def pct(seconds: list[float], wall: float) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"requests": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "lists_per_s": round(len(ms) / wall, 1)}


def in_process(url: str, users: list[str]) -> dict[str, float]:
    """The reference: the same lists from ``Podrec.recommend``, one thread."""
    from podrec.service import Podrec

    p = Podrec(config(url))
    try:
        p.recommend(user_id=users[0], kind="episode")
        seconds = []
        t0 = time.perf_counter()
        with threadpool_limits(1):
            for u in users:
                t = time.perf_counter()
                p.recommend(user_id=u, kind="episode")
                seconds.append(time.perf_counter() - t)
        return pct(seconds, time.perf_counter() - t0)
    finally:
        p.close()


def over_http(url: str, users: list[str], port: int, clients: list[int], log: Path
              ) -> dict[str, Any]:
    """The lists from a real `podrec serve` over loopback."""
    py = sys.executable
    key = subprocess.run([py, "-m", "podrec.cli", "keys", "create", "--name", "bench-http",
                          "--db", url], capture_output=True, text=True, check=True
                         ).stdout.strip().split()[-1]
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as cfg:
        cfg.write(SERVE_CONFIG)
    server = subprocess.Popen([py, "-m", "podrec.cli", "serve", "--db", url, "--port",
                               str(port), "--workers", "1", "--no-warm", "--no-access-log",
                               "-c", cfg.name], stdout=subprocess.DEVNULL,
                              stderr=log.open("w"))
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
    params = {"k": 10, "kind": "episode"}
    out: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server did not start: see {log}")
            time.sleep(0.5)
        t0 = time.perf_counter()
        httpx.get(f"{base}/users/{users[0]}/recommendations", params=params, headers=headers,
                  timeout=600).raise_for_status()
        out["first_list_s"] = round(time.perf_counter() - t0, 1)
        with httpx.Client(headers=headers, timeout=120) as warm:
            for u in users[1:21]:
                warm.get(f"{base}/users/{u}/recommendations", params=params)
        for n in clients:
            conns = [httpx.Client(headers=headers, timeout=120) for _ in range(n)]

            def one(job: tuple[int, str], conns: list[httpx.Client] = conns) -> float:
                t = time.perf_counter()
                conns[job[0] % len(conns)].get(f"{base}/users/{job[1]}/recommendations",
                                               params=params).raise_for_status()
                return time.perf_counter() - t

            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                seconds = list(pool.map(one, enumerate(users)))
            out[f"clients_{n}"] = pct(seconds, time.perf_counter() - t0)
            for c in conns:
                c.close()
    finally:
        server.terminate()
        server.wait(30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True,
                    help="bench_scale.py's --work folder (one trained store per size)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--requests", type=int, default=150)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--port", type=int, default=8790)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    for n in args.sizes:
        url = f"sqlite:///{args.work / str(n) / 'podrec.db'}"
        users = listeners_with_events(url, args.requests, seed=n)
        # in a process of its own, which gives its memory back before the server starts
        # (at 1M episodes two workers' worth would not fit beside each other)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            reference = pool.submit(in_process, url, users).result()
        row: dict[str, Any] = {"episodes": n, "in_process": reference}
        row["http"] = over_http(url, users, args.port, args.clients,
                                args.work / f"serve-{n}.log")
        ref = row["in_process"]["p50_ms"]
        for fig in row["http"].values():
            if isinstance(fig, dict):
                fig["p50_over_in_process"] = round(fig["p50_ms"] / ref, 2)
        print(json.dumps(row), flush=True)
        results.append(row)
    print(f"{'episodes':>9} {'in-process p50':>15} {'HTTP 1 client p50/p99, lists/s':>32} "
          f"{'HTTP 8 clients p50/p99, lists/s':>33}")
    for r in results:
        h1, h8 = r["http"].get("clients_1", {}), r["http"].get("clients_8", {})
        print(f"{r['episodes']:>9} {r['in_process']['p50_ms']:>12} ms "
              f"{h1.get('p50_ms')}/{h1.get('p99_ms')} ms, {h1.get('lists_per_s')}/s "
              f"(x{h1.get('p50_over_in_process')})".rjust(32) + " "
              + f"{h8.get('p50_ms')}/{h8.get('p99_ms')} ms, {h8.get('lists_per_s')}/s".rjust(33))
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"),
                                         "results": results}, indent=1))


if __name__ == "__main__":
    main()
