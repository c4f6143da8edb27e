"""Where a cache-miss list's CPU goes in `podrec serve`: py-spy samples the server under load.

The HTTP throughput of ``POST /recommendations`` (list cache off) is the CPU a list costs end
to end; ``Podrec.recommend`` is only part of it. This script serves a copy of the trained
store (``bench_server.py``'s, 5,114 shows, wordllama) with one worker, drives it with
``bench_server.py``'s load generator (``recommend:100`` by default) and records the server with
``py-spy record`` (sampling from outside, ``--nonblocking``, so the server is not paused). It
then prints the share of the server's samples, and the CPU milliseconds per list, spent in
each part of the request path (inclusive), and the hottest frames outside ``recommend``.

With ``--stub SRC`` (repeatable) the server is the app of that ``src/`` folder with
``recommend`` answering one fixed list, so the CPU per list it prints is the HTTP path's alone;
several folders (this checkout's, an older commit's worktree) are measured in turn, side by
side, ``--rounds`` times.

Needs py-spy (``pip install py-spy``) and the trained store ``bench_server.py`` builds::

    .venv/bin/python benchmarks/profile_server.py \\
        --db .cache/bench-server/bench-server-wordllama-trained-2000-0.db [--python OTHER]
    .venv/bin/python benchmarks/profile_server.py --stub src --stub ../old/src --rounds 2 \\
        --no-profile
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_server as bs  # noqa: E402
from trained_store import LISTENER_PREFIX  # noqa: E402

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

# (label, substrings of a frame: a sample belongs to the part when any frame matches one)
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("Podrec.recommend(_many) (the request thread's compute)", (
        "recommend (podrec/service/", "recommend_many (podrec/service/")),
    ("request thread hand-off (anyio or the pool)", (
        "run_in_threadpool", "run_sync_in_worker_thread", "anyio/_backends/_asyncio.py",
        "concurrent/futures", "threading.py")),
    ("request body: read + JSON + pydantic validation", (
        "request_body_to_args", "_extract_form_body", "Request.json", "Request.body",
        "validate_python", "_validate_value", "ModelField.validate")),
    ("response: recommendation_json + pydantic serialise", (
        "to_dict (podrec/recommend/results", "model_validate", "model_dump_json",
        "serialize_response", "dump_json", "to_json")),
    ("auth (HTTPBearer + key check)", ("HTTPBearer.__call__", "require.<locals>.check",
                                       "check_api_key")),
    ("dependency solving (FastAPI)", ("solve_dependencies",)),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("ServeMiddleware (own code)", ("ServeMiddleware.__call__",)),
    ("routing (starlette Router)", ("Router.app", "Route.matches", "APIRoute.matches")),
    ("uvicorn protocol (httptools, headers, send)", ("uvicorn/protocols",)),
    ("event loop (uvloop / asyncio)", ("uvloop", "asyncio/")),
    ("refresh (catalog version, once a second)", ("refresh (podrec/service",)),
    ("garbage collector", ("<gc>", "gc_collect")),
]


def record(pid: int, seconds: float, rate: int, out: Path, subprocesses: bool
           ) -> subprocess.Popen:
    """py-spy sampling the server (and its workers) into ``out`` (collapsed stacks)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate",
           str(rate), "--format", "raw", "--output", str(out), "--nonblocking"]
    if subprocesses:
        cmd.append("--subprocesses")
    # only the thread holding the GIL: what bounds one worker's lists/s (GIL-free native
    # work, BLAS and SQLite's reads, is not seen)
    cmd.append("--gil")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """py-spy's raw output: ``frame;frame;... count`` per line."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def report(stacks: Counter[tuple[str, ...]], lists: int, rate: int, top: int) -> None:
    """Each part's share of the samples and its CPU ms per list; the hottest frames."""
    total = sum(stacks.values()) or 1
    ms = 1000 / rate / max(lists, 1)  # one sample's CPU milliseconds, per list served
    print(f"\n{total} samples at {rate} Hz, {lists} lists: "
          f"{total * ms:.2f} ms of sampled CPU per list")
    print(f"{'part (inclusive; parts overlap where nested)':60} {'share':>7} {'ms/list':>8}")
    for label, needles in PARTS:
        n = sum(c for s, c in stacks.items() if any(x in f for f in s for x in needles))
        print(f"{label:60} {n / total:7.1%} {n * ms:8.3f}")
    outside = Counter()
    leaves = Counter()
    for s, c in stacks.items():
        if any(x in f for f in s for x in PARTS[0][1]):
            continue
        for f in set(s):
            outside[f] += c
        leaves[s[-1]] += c
    print(f"\nhottest frames outside Podrec.recommend (inclusive, top {top}):")
    for f, c in outside.most_common(top):
        print(f"  {c / total:6.1%} {c * ms:7.3f} ms  {f}")
    print(f"\nhottest leaf frames outside Podrec.recommend (self time, top {top}):")
    for f, c in leaves.most_common(top):
        print(f"  {c / total:6.1%} {c * ms:7.3f} ms  {f}")


def serve_stub(url: str, config: str, port: int) -> None:
    """``--serve-stub``: the real app under uvicorn (as `podrec serve` runs one worker), with
    ``recommend`` answering one fixed list: what is left is the HTTP path's own cost."""
    import uvicorn

    from podrec.config import load_config
    from podrec.server.app import create_app
    from podrec.server.worker import ServedPodrec

    real = ServedPodrec.recommend
    fixed: list[Any] = []

    def recommend(self: ServedPodrec, *args: Any, **kwargs: Any) -> Any:
        if not fixed:
            fixed.extend(real(self, user_id=f"{LISTENER_PREFIX}0000", k=10))
        return list(fixed)

    ServedPodrec.recommend = recommend  # type: ignore[method-assign]
    app = create_app(load_config(Path(config)), database_url=url, warm=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=10)


class StubServer(bs.Server):
    """``serve_stub`` in a subprocess, with ``src`` (another checkout's) first on the path."""

    def __init__(self, url: str, config: Path, log: Path, src: Path | None) -> None:

        self.port = bs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log, self._out = log, log.open("wb")
        env = bs.embedder_env() | {v: "1" for v in THREAD_VARS}
        if src is not None:
            env["PYTHONPATH"] = str(src.resolve())
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-stub", url, str(config), str(self.port)],
            stdout=self._out, stderr=subprocess.STDOUT, env=env)
        self.wait_healthy(180.0)


def drive(server: bs.Server, key: str, spec: dict[str, Any], profile: Path | None,
          rate: int, workers: int) -> dict[str, Any]:
    """The load generator against ``server`` (after warming it up); py-spy records the
    measured seconds into ``profile`` when given. The raw load results."""
    bs.prepare(server, key, [], workers, users=spec["listeners"],
               search=spec["scenario"] == "search")
    spec = spec | {"url": server.url, "key": key, "server_pid": server.proc.pid}
    load = subprocess.Popen([sys.executable, bs.__file__, "--load"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert load.stdin is not None and load.stdout is not None
    load.stdin.write(json.dumps(spec))
    load.stdin.close()
    spy = None
    if profile is not None:
        time.sleep(spec["warmup"])
        spy = record(server.proc.pid, spec["duration"], rate, profile, workers > 1)
    output = load.stdout.read()
    load.wait()
    if spy is not None:
        _, err = spy.communicate()
        if not profile.exists():
            sys.exit(f"py-spy wrote nothing: {err.decode()}")
    if load.returncode != 0:
        sys.exit(f"the load generator failed; the server's log:\n"
                 f"{server.log.read_text()[-3000:]}")
    return json.loads(output)


def line(name: str, scenario: str, res: dict[str, Any]) -> str:
    cpu_ms = res["server_cpu"] * 1000 / max(res["req_per_s"], 1e-9)
    return (f"{name:24} {scenario}: {res['req_per_s']:7.1f} lists/s, p50 {res['p50_ms']:5.0f} "
            f"ms, p99 {res['p99_ms']:5.0f} ms, server CPU {res['server_cpu']:.2f} cores = "
            f"{cpu_ms:.2f} ms a list, statuses {res['statuses']}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path,
                    default=Path(".cache/bench-server/bench-server-wordllama-trained-2000-0.db"))
    ap.add_argument("--python", help="another checkout's venv python (profile its server)")
    ap.add_argument("--stub", action="append", type=Path, default=[], metavar="SRC",
                    help="serve with recommend answering one fixed list, from this src/ "
                    "folder (repeatable: each is measured in turn, side by side); the CPU "
                    "per list is then the HTTP path's alone")
    ap.add_argument("--no-profile", action="store_true", help="measure only, no py-spy")
    ap.add_argument("--scenario", default="recommend:100")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cache", default="off", choices=["off", "read"])
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=1, help="with --stub: rounds over them")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--listeners", type=int, default=2000)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--keep", type=Path, help="also keep the collapsed stacks here")
    ap.add_argument("--serve-stub", nargs=3, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.serve_stub:
        url, config, port = args.serve_stub
        serve_stub(url, config, int(port))
        return
    if not args.db.exists():
        sys.exit(f"{args.db} is missing: run bench_server.py --baseline-python ... once (it "
                 "builds the trained store) or pass --db")
    scenario, conc = args.scenario.split(":")
    tmp = Path(tempfile.mkdtemp(prefix="podrec-profile-server-"))
    try:
        cfg = tmp / "podrec.toml"
        cfg.write_text(f'[embedder]\nname = "{bs.EMBEDDER}"\n\n[server]\nreports_dir = '
                       f'"{tmp}"\n' + ("cache_mb = 0\n" if args.cache == "off" else ""))
        db = tmp / "run.db"
        bs.copy_sqlite(args.db, db)
        url = f"sqlite:///{db}"
        _, items = bs.catalog_ids(url)
        spec = {"scenario": scenario, "concurrency": int(conc), "duration": args.duration,
                "warmup": args.warmup, "timeout": 60.0, "seed": 0, "items": items,
                "listeners": [f"{LISTENER_PREFIX}{u:04d}" for u in range(args.listeners)],
                "serial_start": 9 * 10**8}
        key = bs.create_key(url, args.python)
        out = None if args.no_profile else tmp / "stacks.txt"
        runs = [(str(src), src) for src in args.stub] * args.rounds if args.stub else [
            (args.python or "podrec serve", None)]
        for n, (name, src) in enumerate(runs):
            log = tmp / f"serve-{n}.log"
            server = (StubServer(url, cfg, log, src) if args.stub
                      else bs.Server(url, args.workers, cfg, log, python=args.python))
            try:
                raw = drive(server, key, spec | {"serial_start": (9 + n) * 10**8},
                            out if n == 0 else None, args.rate, args.workers)
            finally:
                server.stop()
            print(line(name, args.scenario, bs.summarise(raw)), flush=True)
            if n == 0 and out is not None:
                if args.keep:
                    shutil.copy(out, args.keep)
                report(read_stacks(out), raw["completed"], args.rate, args.top)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
