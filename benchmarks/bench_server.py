"""The REST API under load: `podrec serve` answering a second process over loopback.

Latency p50/p95/p99 and throughput of ``POST /recommendations``, ``GET /search``,
``POST /events/batch`` and ``POST /events`` at a fixed concurrency, for SQLite and PostgreSQL
and for 1 and 2 uvicorn workers, on the full Apple catalog plus the Listen Notes shows and
episodes. The reference is the same recommendation computed in-process by ``Podrec.recommend``
(no HTTP). Items are embedded with **wordllama** (e5 would take ~50 minutes on 2 cores; the
serving path is the same).

Run from the repository root: ``python benchmarks/bench_server.py --data ../shared/data``.
The load generator is this script again (``--load``, spec on stdin) in a separate process: an
asyncio HTTP/1.1 client with one keep-alive connection per concurrent client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

APPLE = "apple_podcasts_peterchong_2021/podcast_info.json"
LISTENNOTES = "listennotes_dec2017_subset/podcasts.csv"
EMBEDDER = "wordllama"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PODREC = [sys.executable, "-m", "podrec.cli"]
SCENARIOS = ["recommend:1", "recommend:10", "recommend:100", "feedback:100", "search:10",
             "batch:4", "event:10"]
QUERIES = ["true crime but funny", "history of the roman empire", "daily news briefing",
           "startup founders interviews", "meditation and sleep", "football tactics analysis",
           "learn spanish for beginners", "science for kids", "comedy improv",
           "personal finance and investing", "horror fiction stories", "cooking at home",
           "jazz history", "parenting teenagers", "space exploration and astronomy"]
POSITIVE = ["subscribe", "play", "like", "complete"]
EVENT_MIX = (["subscribe"] * 25 + ["play"] * 30 + ["like"] * 15 + ["complete"] * 15
             + ["skip"] * 10 + ["dislike"] * 5)
DEVICES = ["phone", "car", "desktop", "speaker"]


# -- the load generator (a separate process) --------------------------------------------------
class Connection:
    """One keep-alive HTTP/1.1 connection; the smallest client that reads uvicorn's answers
    (Content-Length or chunked bodies), so the load generator costs the server little CPU."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {key}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n").encode() \
            + self.auth
        if body is not None:
            head += (f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     ).encode()
        self.writer.write(head + b"\r\n" + (body or b""))
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            data = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        else:
            data = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, data


def _event(rng: random.Random, users: list[str], items: list[tuple[str, str]],
           serial: int) -> dict[str, Any]:
    """One new event: a distinct timestamp per event, so none is a duplicate."""
    item_id, kind = rng.choice(items)
    ts = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=serial * 0.001
                                                      + rng.random() * 1e-4)
    return {"user_id": rng.choice(users), "item_id": item_id, "item_kind": kind,
            "event": rng.choice(EVENT_MIX), "timestamp": ts.isoformat(),
            "device": rng.choice(DEVICES)}


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(cpu.get(p, 0.0) for p in tree)


async def _run_load(spec: dict[str, Any]) -> dict[str, Any]:
    scenario, concurrency = spec["scenario"], spec["concurrency"]
    rng = random.Random(spec["seed"])
    listeners, items = spec["listeners"], [tuple(i) for i in spec["items"]]
    load_users = [f"bench-load-{i:04d}" for i in range(2000)]
    serial = spec["serial_start"]
    url = urllib.parse.urlsplit(spec["url"])
    assert url.hostname is not None and url.port is not None

    def make() -> list[tuple[str, str, bytes | None]]:
        """The requests of one step; the latency measured is that of the last one."""
        nonlocal serial
        if scenario == "recommend":
            body: Any = {"user_id": rng.choice(listeners), "k": 10}
            return [("POST", "/recommendations", json.dumps(body).encode())]
        if scenario == "feedback":  # a new event, then that listener's (changed) list
            serial += 1
            listener = rng.choice(listeners)
            event = json.dumps(_event(rng, [listener], items, serial)).encode()
            body = {"user_id": listener, "k": 10}
            return [("POST", "/events", event),
                    ("POST", "/recommendations", json.dumps(body).encode())]
        if scenario == "search":
            q = urllib.parse.quote(rng.choice(QUERIES))
            return [("GET", f"/search?q={q}&k=10", None)]
        if scenario == "event":
            serial += 1
            return [("POST", "/events", json.dumps(_event(rng, load_users, items, serial)
                                                   ).encode())]
        if scenario == "batch":
            n = rng.randint(spec.get("batch_min", 100), spec.get("batch_max", 500))
            events = []
            for _ in range(n):
                serial += 1
                events.append(_event(rng, load_users, items, serial))
            return [("POST", "/events/batch", json.dumps({"events": events}).encode())]
        raise ValueError(f"unknown scenario {scenario!r}")

    loop = asyncio.get_running_loop()
    start = loop.time()
    warm_end = start + spec["warmup"]
    end = warm_end + spec["duration"]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    completed = 0
    events_added = 0
    marks: dict[str, float] = {}

    async def client(index: int) -> None:
        nonlocal completed, events_added
        # Clients connect one after another during the warm-up: a burst of connections at
        # once would mostly be accepted by whichever worker process woke first.
        await asyncio.sleep(index * min(0.02, spec["warmup"] / 2 / concurrency))
        conn = Connection(url.hostname, url.port, spec["key"])
        while loop.time() < end:
            for method, path, body in make():
                t0 = loop.time()
                try:
                    status, data = await asyncio.wait_for(conn.request(method, path, body),
                                                          spec["timeout"])
                except (TimeoutError, OSError, asyncio.IncompleteReadError,
                        asyncio.LimitOverrunError, ValueError) as exc:
                    status, data = 0, type(exc).__name__.encode()
                    await conn.close()
                if status != 200:
                    break
            t1 = loop.time()
            if t0 >= warm_end:
                latencies.append(t1 - t0)
                statuses[str(status) if status else f"transport {data.decode()}"] += 1
            if warm_end <= t1 <= end:
                completed += 1
                if status == 200 and scenario in ("event", "batch"):
                    events_added += json.loads(data)["added"]
        await conn.close()

    async def lists_served() -> tuple[float, float]:
        conn = Connection(url.hostname, url.port, spec["key"])
        try:
            status, data = await conn.request("GET", "/metrics", None)
        finally:
            await conn.close()
        return cached_share(data.decode()) if status == 200 else (0.0, 0.0)

    async def marker() -> None:
        await asyncio.sleep(max(warm_end - loop.time(), 0))
        marks["cpu0"], marks["server0"] = time.process_time(), _proc_cpu(spec["server_pid"])
        marks["lists0"] = await lists_served()
        await asyncio.sleep(max(end - loop.time(), 0))
        marks["cpu1"], marks["server1"] = time.process_time(), _proc_cpu(spec["server_pid"])
        marks["lists1"] = await lists_served()

    await asyncio.gather(marker(), *(client(i) for i in range(concurrency)))
    duration = spec["duration"]
    (cached0, all0), (cached1, all1) = marks["lists0"], marks["lists1"]
    return {"cached_share": (cached1 - cached0) / (all1 - all0) if all1 > all0 else None,
            "latencies_s": latencies, "statuses": dict(statuses), "completed": completed,
            "events_added": events_added, "duration_s": duration,
            "client_cpu": (marks["cpu1"] - marks["cpu0"]) / duration,
            "server_cpu": (marks["server1"] - marks["server0"]) / duration}


def cached_share(metrics: str) -> tuple[float, float]:
    """(lists served from the cache, lists served) so far, from the server's /metrics."""
    got = {"cached": 0.0, "all": 0.0}
    for line in metrics.splitlines():
        if line.startswith('podrec_cached_lists_total{endpoint="recommendations"}'):
            got["cached"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith('podrec_recommendations_total{endpoint="recommendations"}'):
            got["all"] = float(line.rsplit(" ", 1)[1])
    return got["cached"], got["all"]


def load_main() -> None:
    """``--load``: read the spec (JSON) on stdin, run it, print the raw results (JSON)."""
    spec = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_run_load(spec))))


# -- building and copying the databases --------------------------------------------------------
def embedder_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PODREC_", "PROMETHEUS_"))}
    env["PODREC_EMBEDDER"] = EMBEDDER
    return env


def bench_config():  # noqa: ANN201 - podrec's Config, imported late
    from podrec.config import Config, EmbedderConfig

    return Config(embedder=EmbedderConfig(name=EMBEDDER))


def build_sqlite(data: Path, cache: Path, console: Any) -> Path:
    """The catalog database (ingested and embedded with wordllama), built once and cached."""
    from sqlalchemy import func, select

    from podrec.service import Podrec
    from podrec.storage import Store, schema

    db = cache / f"bench-server-{EMBEDDER}.db"
    if db.exists():
        store = Store(f"sqlite:///{db}")
        with store.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(schema.embeddings)).scalar()
        store.close()
        if n:
            console.print(f"using the cached catalog database {db} ({n} embedded items)")
            return db
    for rel in (APPLE, LISTENNOTES):
        if not (data / rel).is_file():
            sys.exit(f"error: {data / rel} is missing: pass --data DIR, the shared data folder "
                     f"holding {APPLE} and {LISTENNOTES}")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = db.with_suffix(".building.db")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    console.print(f"building {db}: ingest {APPLE} and {LISTENNOTES} (+ episodes.csv), enrich "
                  f"with {EMBEDDER} (about 1.5 minutes on 2 cores) ...")
    t0 = time.perf_counter()
    app = Podrec(bench_config(), database_url=f"sqlite:///{tmp}")
    for rel, fmt in ((APPLE, "apple"), (LISTENNOTES, "listennotes")):
        report = app.ingest_catalog(data / rel, fmt)
        console.print(f"  {rel}: {report.added} added, {report.failed} failed, "
                      f"{report.duplicates} duplicates")
    summary = app.enrich().summary()
    app.close()
    copy_sqlite(tmp, db)
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    console.print(f"  enrich: {summary}; built in {time.perf_counter() - t0:.0f}s")
    return db


def copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database in WAL mode (the backup API)."""
    dst.unlink(missing_ok=True)
    s, d = sqlite3.connect(src), sqlite3.connect(dst)
    with d:
        s.backup(d)
    s.close()
    d.close()


def pg_url(admin: str, name: str) -> str:
    return admin.rsplit("/", 1)[0] + f"/{name}"


def drop_pg(admin: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def copy_to_pg(src: Path, admin: str, name: str) -> str:
    """A fresh PostgreSQL database ``name`` holding every table of the SQLite file."""
    from sqlalchemy import create_engine, select, text

    from podrec.storage import Store, schema

    drop_pg(admin, name)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = pg_url(admin, name)
    Store(url).close()  # the schema, by podrec's own migrations
    s, d = create_engine(f"sqlite:///{src}"), create_engine(url)
    with s.connect() as sc, d.begin() as dc:
        for table in schema.metadata.sorted_tables:
            rows = [dict(r) for r in sc.execute(select(table)).mappings()]
            for i in range(0, len(rows), 5000):
                dc.execute(table.insert(), rows[i:i + 5000])
            if "pk" in table.c:
                dc.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'pk'), "
                                f"(SELECT coalesce(max(pk), 1) FROM {table.name}))"))
    s.dispose()
    d.dispose()
    return url


def catalog_ids(url: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(embedded show ids, every embedded (item id, kind))."""
    from sqlalchemy import select

    from podrec.storage import Store, schema

    store = Store(url)
    it, emb = schema.items, schema.embeddings
    with store.engine.connect() as conn:
        rows = conn.execute(select(it.c.id, it.c.kind).join(emb, emb.c.item_pk == it.c.pk)
                            .order_by(it.c.pk)).all()
    store.close()
    return [i for i, k in rows if k == "show"], [(i, k) for i, k in rows]


def listener_events(shows: list[str], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` synthetic listeners with 5-30 events each on random shows (the same every run)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for u in range(n):
        for _ in range(rng.randint(5, 30)):
            out.append({"user_id": f"bench-listener-{u:04d}", "item_id": rng.choice(shows),
                        "item_kind": "show", "event": rng.choice(EVENT_MIX),
                        "timestamp": (now - timedelta(days=rng.random() * 365)).isoformat(),
                        "device": rng.choice(DEVICES)})
    return out


# -- the server ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`podrec serve` in a subprocess, ready once /health answers."""

    def __init__(self, url: str, workers: int, config: Path, log: Path,
                 extra: list[str] | None = None, python: str | None = None) -> None:
        """``python``: the interpreter of another checkout's venv (its own podrec), e.g. a
        baseline commit's; default this one."""

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [*podrec_cmd(python), "serve", "--db", url, "--config", str(config), "--port",
             str(self.port), "--workers", str(workers), "--log-level", "warning",
             *(extra or [])],
            stdout=self._out, stderr=subprocess.STDOUT, env=embedder_env(),
            cwd=checkout_of(python))
        self.wait_healthy(180.0)

    def wait_healthy(self, seconds: float) -> None:
        """Return once /health answers 200; stop the server and raise, with its log, if it
        exits or does not answer within ``seconds``."""
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


def podrec_cmd(python: str | None = None) -> list[str]:
    """The podrec CLI of this checkout, or of the one whose venv ``python`` belongs to."""
    return [python, "-m", "podrec.cli"] if python else PODREC


def checkout_of(python: str | None) -> str | None:
    """The repository root of a venv's interpreter (``ROOT/.venv/bin/python``); None: here."""
    if not python:
        return None
    root = Path(python).absolute().parent.parent.parent
    return str(root) if (root / "src" / "podrec").is_dir() else None


def create_key(url: str, python: str | None = None) -> str:
    out = subprocess.run([*podrec_cmd(python), "keys", "create", "--scope", "client", "--name",
                          "bench", "--db", url], capture_output=True, text=True,
                         env=embedder_env(), timeout=120, cwd=checkout_of(python))
    if out.returncode != 0:
        raise RuntimeError(f"podrec keys create failed: {out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def prepare(server: Server, key: str, events: list[dict[str, Any]], workers: int,
            users: list[str] | None = None, search: bool = True) -> None:
    """Send the listeners' events (POST /events/batch) and warm every worker up: each one
    fits its model and loads the embedder on its first requests (``users``: the listeners
    to warm with, default those of ``events``). Without ``search`` no /search is sent: each
    query sent queues its reading for the local generative model, whose background work
    (seconds of both cores a query) would otherwise run through the measured seconds."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as c:
        for i in range(0, len(events), 1000):
            r = c.post("/events/batch", json={"events": events[i:i + 1000]})
            r.raise_for_status()
    users = users or sorted({e["user_id"] for e in events})
    for round_ in range(8 * workers):  # new connections land on different workers
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as c:
            for j in range(5):
                c.post("/recommendations", json={"user_id": users[(round_ * 5 + j) % len(users)],
                                                 "k": 10}).raise_for_status()
            if search:
                c.get("/search", params={"q": QUERIES[round_ % len(QUERIES)]}
                      ).raise_for_status()


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--load"], input=json.dumps(spec),
                         capture_output=True, text=True,
                         timeout=spec["warmup"] + spec["duration"] + 4 * spec["timeout"])
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr}")
    return json.loads(out.stdout)


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    lat = np.array(raw["latencies_s"]) * 1000
    ok = sum(n for s, n in raw["statuses"].items() if s == "200")
    p50, p95, p99 = np.percentile(lat, [50, 95, 99]) if len(lat) else (np.nan,) * 3
    d = raw["duration_s"]
    return {"requests": len(lat), "errors": len(lat) - ok, "statuses": raw["statuses"],
            "req_per_s": raw["completed"] / d, "events_per_s": raw["events_added"] / d,
            "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            "max_ms": float(lat.max()) if len(lat) else float("nan"),
            "server_cpu": raw["server_cpu"], "client_cpu": raw["client_cpu"],
            "cached_share": raw["cached_share"]}


# -- the in-process reference ------------------------------------------------------------------
def in_process(url: str, listeners: list[str], n: int, seed: int) -> dict[str, Any]:
    """``Podrec.recommend(user_id=..., k=10)`` called directly, one at a time, on one BLAS
    thread as the server's workers are."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from podrec.service import Podrec

    rng = random.Random(seed)
    app = Podrec(bench_config(), database_url=url)
    with threadpool_limits(1):
        app.model("show")
        for u in listeners[:30]:
            app.recommend(user_id=u, k=10)
        times = []
        for _ in range(n):
            u = rng.choice(listeners)
            t0 = time.perf_counter()
            app.recommend(user_id=u, k=10)
            times.append(time.perf_counter() - t0)
    app.close()
    ms = np.array(times) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": n, "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            "mean_ms": float(ms.mean())}


# -- the trained hybrid against a baseline checkout ------------------------------------------
def build_trained(cached: Path, data: Path, listeners: int, seed: int, console: Any) -> Path:
    """A copy of the catalog database with events and a trained hybrid (``trained_store.py``:
    the Apple reviews plus ``listeners`` synthetic co-subscription listeners, then
    ``Podrec.train``), built once and cached beside it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from trained_store import describe, ensure_trained, served_summary

    from podrec.service import Podrec

    db = cached.with_name(f"{cached.stem}-trained-{listeners}-{seed}.db")
    if not db.exists():
        tmp = db.with_suffix(".building.db")
        copy_sqlite(cached, tmp)
        app = Podrec(bench_config(), database_url=f"sqlite:///{tmp}")
        ensure_trained(app, data, listeners, seed, console.print, force=True)
        app.close()
        copy_sqlite(tmp, db)
        for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            p.unlink(missing_ok=True)
    app = Podrec(bench_config(), database_url=f"sqlite:///{db}")
    summary = served_summary(app)
    app.close()
    console.print(f"trained store {db}:\n{describe(summary)}")
    return db


def compare_main(args: argparse.Namespace, console: Any,
                 scenarios: list[tuple[str, int]]) -> None:
    """This checkout's server (trained hybrid served) and ``--baseline-python``'s server, each
    on its own copy of the same store, under the same load, scenario by scenario, alternating
    which goes first each round."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from trained_store import LISTENER_PREFIX, served_summary

    from podrec.service import Podrec

    cached = build_sqlite(args.data, args.db_cache, console)
    trained = build_trained(cached, args.data, args.trained_listeners, args.trained_seed,
                            console)
    app = Podrec(bench_config(), database_url=f"sqlite:///{trained}")
    served = served_summary(app)
    app.close()
    shows, items = catalog_ids(f"sqlite:///{trained}")
    listeners = [f"{LISTENER_PREFIX}{u:04d}" for u in range(args.trained_listeners)]
    label = args.baseline_label
    console.print(f"catalog: {len(shows)} shows and {len(items) - len(shows)} episodes "
                  f"({EMBEDDER}); load on {len(listeners)} trained listeners; baseline "
                  f"{label}: {args.baseline_python}")
    quiet = wait_for_quiet(args.wait, console)
    worker_counts = [int(w) for w in args.workers.split(",")]
    caches = [c.strip() for c in args.cache.split(",") if c.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="podrec-bench-compare-"))
    cfg = tmp / "podrec.toml"
    cfg.write_text(f'[embedder]\nname = "{EMBEDDER}"\n\n[server]\nreports_dir = "{tmp}"\n')
    for mode, line in (("off", "cache_mb = 0"), ("read", 'cache_sync = "read"')):
        cfg.with_name(f"podrec-{mode}.toml").write_text(cfg.read_text() + line + "\n")
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    try:
        for workers in worker_counts:
            for cache in caches:
                servers: dict[str, tuple[Server, str]] = {}
                try:
                    for name, python in (("current", None), (label, args.baseline_python)):
                        db = tmp / f"{name}-{workers}-{cache}.db"
                        copy_sqlite(trained, db)
                        url = f"sqlite:///{db}"
                        key = create_key(url, python)
                        server = Server(url, workers, cfg.with_name(f"podrec-{cache}.toml"),
                                        tmp / f"serve-{name}-{workers}-{cache}.log",
                                        extra=args.serve_arg, python=python)
                        servers[name] = (server, key)
                        t0 = time.perf_counter()
                        prepare(server, key, [], workers, users=listeners,
                                search=any(s == "search" for s, _ in scenarios))
                        console.print(f"{name}: {workers} worker(s), list cache {cache}, warm "
                                      f"({time.perf_counter() - t0:.0f}s)")
                    for i, (scenario, conc) in enumerate(scenarios):
                        for rnd in range(args.rounds):
                            order = list(servers) if rnd % 2 == 0 else list(servers)[::-1]
                            for name in order:
                                server, key = servers[name]
                                spec = {"url": server.url, "key": key, "scenario": scenario,
                                        "concurrency": conc, "duration": args.duration,
                                        "warmup": args.warmup, "timeout": 60.0,
                                        "seed": args.seed + i + 100 * rnd,
                                        "listeners": listeners, "items": items,
                                        "server_pid": server.proc.pid,
                                        "serial_start": (workers * 100 + i * 10 + rnd) * 10**7,
                                        "batch_min": args.batch_min,
                                        "batch_max": args.batch_max}
                                res = summarise(run_load(spec))
                                row = {"backend": f"sqlite {name}", "server": name,
                                       "workers": workers, "cache": cache,
                                       "scenario": scenario, "concurrency": conc,
                                       "round": rnd, **res, "loadavg": os.getloadavg()}
                                rows.append(row)
                                errs = {s: n for s, n in res["statuses"].items() if s != "200"}
                                console.print(
                                    f"  {name:8} w={workers} cache={cache:4} {scenario:9} "
                                    f"c={conc:<3} {res['req_per_s']:7.1f} lists/s  p50 "
                                    f"{res['p50_ms']:7.1f}  p99 {res['p99_ms']:7.1f} ms"
                                    + (f"  errors {errs}" if errs else "")
                                    + f"  (load {os.getloadavg()[0]:.1f})")
                finally:
                    for server, _ in servers.values():
                        server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(console, rows, f"Trained hybrid (this checkout) vs {label}, "
                f"{len(shows)} shows, {args.duration:.0f}s per run after {args.warmup:.0f}s "
                "warm-up")
    console.print(loadavg() + ("" if quiet else "; `podrec evaluate` was running"))
    ratios = []
    for workers in worker_counts:
        for cache in caches:
            for scenario, conc in scenarios:
                def pick(name: str, w: int = workers, c: str = cache, sc: str = scenario,
                         cc: int = conc) -> list[dict[str, Any]]:
                    return [r for r in rows if r["server"] == name and r["workers"] == w
                            and r["cache"] == c and r["scenario"] == sc
                            and r["concurrency"] == cc]
                cur, base = pick("current"), pick(label)
                if not cur or not base:
                    continue
                mean = {n: {m: sum(r[m] for r in rs) / len(rs)
                            for m in ("req_per_s", "p50_ms", "p99_ms")}
                        for n, rs in (("current", cur), (label, base))}
                ratio = mean["current"]["req_per_s"] / mean[label]["req_per_s"]
                ratios.append({"workers": workers, "cache": cache, "scenario": scenario,
                               "concurrency": conc, **{f"{n}_{m}": v for n, d in mean.items()
                                                       for m, v in d.items()},
                               "lists_per_s_ratio": ratio})
                console.print(
                    f"{scenario}:{conc}, {workers} worker(s), cache {cache}: current "
                    f"{mean['current']['req_per_s']:.1f} lists/s (p50 "
                    f"{mean['current']['p50_ms']:.0f}, p99 {mean['current']['p99_ms']:.0f} ms)"
                    f" vs {label} {mean[label]['req_per_s']:.1f} lists/s (p50 "
                    f"{mean[label]['p50_ms']:.0f}, p99 {mean[label]['p99_ms']:.0f} ms): "
                    f"{ratio:.2f}x; aim >= 5x -> {'met' if ratio >= 5 else 'NOT met'}")
    console.print(f"total {time.perf_counter() - t_start:.0f}s")
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
                "cpus": os.cpu_count(), "loadavg_end": os.getloadavg(), "embedder": EMBEDDER,
                "shows": len(shows), "episodes": len(items) - len(shows),
                "listeners": len(listeners), "duration_s": args.duration,
                "warmup_s": args.warmup, "rounds": args.rounds,
                "evaluate_running": not quiet, "serve_args": args.serve_arg,
                "baseline": {"label": label, "python": args.baseline_python},
                "served": served}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": rows, "ratios": ratios},
                                        indent=2, default=str) + "\n")
        console.print(f"wrote {args.json}")


# -- main ------------------------------------------------------------------------------------
def wait_for_quiet(max_wait: float, console: Any) -> bool:
    """Wait (polling every 30 s) while `podrec evaluate` jobs run; True when none is left."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = subprocess.run(["pgrep", "-f", "podrec evaluate"], capture_output=True,
                              text=True).stdout.split()
        if not busy:
            return True
        if time.monotonic() >= deadline:
            console.print(f"[yellow]notice:[/] `podrec evaluate` still running (pids "
                          f"{', '.join(busy)}) after waiting {max_wait:.0f}s: measuring anyway")
            return False
        console.print(f"waiting for `podrec evaluate` (pids {', '.join(busy)}) to finish; "
                      f"load average {os.getloadavg()[0]:.1f}")
        time.sleep(30)


def loadavg() -> str:
    return "load average " + " / ".join(f"{x:.2f}" for x in os.getloadavg()) + \
        f" (1/5/15 min) on {os.cpu_count()} CPUs"


def print_table(console: Any, rows: list[dict[str, Any]], title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    cols = ("backend", "workers", "cache", "scenario", "conc", "requests", "errors", "req/s",
            "events/s", "cached", "p50 ms", "p95 ms", "p99 ms", "server CPU", "client CPU",
            "load")
    for col in cols:
        table.add_column(col, justify="left" if col in ("backend", "scenario") else "right")
    for r in rows:
        table.add_row(r["backend"], str(r["workers"]), r["cache"],
                      r["scenario"], str(r["concurrency"]),
                      str(r["requests"]), str(r["errors"]), f"{r['req_per_s']:,.1f}",
                      f"{r['events_per_s']:,.0f}" if r["events_per_s"] else "",
                      f"{r['cached_share']:.0%}" if r["cached_share"] is not None else "",
                      f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['p99_ms']:.1f}",
                      f"{r['server_cpu']:.2f}", f"{r['client_cpu']:.2f}",
                      f"{r['loadavg'][0]:.1f}")
    console.print(table)


def run_config(backend: str, workers: int, cache: str, db_url: str, cfg: Path, tmp: Path,
               events: list[dict[str, Any]], listeners: list[str],
               items: list[tuple[str, str]], scenarios: list[tuple[str, int]],
               args: argparse.Namespace, console: Any) -> list[dict[str, Any]]:
    key = create_key(db_url)
    cfg = cfg.with_name(f"podrec-{cache}.toml")
    server = Server(db_url, workers, cfg, tmp / f"serve-{backend}-{workers}-{cache}.log",
                    extra=args.serve_arg)
    rows = []
    try:
        t0 = time.perf_counter()
        prepare(server, key, events, workers)
        console.print(f"{backend}, {workers} worker(s), list cache {cache}: "
                      f"{len(listeners)} listeners with "
                      f"{len(events)} events sent, workers warm ({time.perf_counter() - t0:.0f}s)")
        for i, (scenario, conc) in enumerate(scenarios):
            spec = {"url": server.url, "key": key, "scenario": scenario, "concurrency": conc,
                    "duration": args.duration, "warmup": args.warmup, "timeout": 60.0,
                    "seed": args.seed + i, "listeners": listeners, "items": items,
                    "server_pid": server.proc.pid, "serial_start": (workers * 100 + i) * 10**7,
                    "batch_min": args.batch_min, "batch_max": args.batch_max}
            res = summarise(run_load(spec))
            row = {"backend": backend, "workers": workers, "cache": cache,
                   "scenario": scenario, "concurrency": conc, **res,
                   "loadavg": os.getloadavg()}
            rows.append(row)
            errs = {s: n for s, n in res["statuses"].items() if s != "200"}
            console.print(f"  {scenario:9} c={conc:<3} {res['req_per_s']:8.1f} req/s  p50 "
                          f"{res['p50_ms']:7.1f}  p99 {res['p99_ms']:7.1f} ms"
                          + (f"  {res['events_per_s']:,.0f} events/s"
                             if res["events_per_s"] else "")
                          + (f"  cached {res['cached_share']:.0%}"
                             if res["cached_share"] is not None else "")
                          + (f"  errors {errs}" if errs else "")
                          + f"  (load {os.getloadavg()[0]:.1f})")
    finally:
        server.stop()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"),
                    help="shared data folder (Apple catalog and Listen Notes)")
    ap.add_argument("--db-cache", type=Path, default=Path(".cache/bench-server"),
                    help="where the built catalog database is kept between runs")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--workers", default="1,2", help="uvicorn worker counts to run")
    ap.add_argument("--cache", default="read,notify",
                    help="list cache modes to run: off (server.cache_mb = 0), read or notify "
                    "(server.cache_sync; notify runs on PostgreSQL only)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="scenario:concurrency,... (recommend, search, batch, event)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds measured per scenario")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds discarded first")
    ap.add_argument("--listeners", type=int, default=300, help="synthetic listeners")
    ap.add_argument("--batch-min", type=int, default=100)
    ap.add_argument("--batch-max", type=int, default=500)
    ap.add_argument("--reference-requests", type=int, default=500,
                    help="in-process Podrec.recommend calls (the reference)")
    ap.add_argument("--pg-admin", default=PG_ADMIN,
                    help="URL of an existing PostgreSQL database to create the bench one from")
    ap.add_argument("--pg-db", default="podrec_bench", help="the PostgreSQL database created "
                    "(and dropped) for the run")
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="extra `podrec serve` argument (repeatable)")
    ap.add_argument("--wait", type=float, default=2400.0,
                    help="seconds to wait for running `podrec evaluate` jobs to finish")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--baseline-python",
                    help="the python of another checkout's venv (e.g. "
                    "/work/baseline-d1f194a/.venv/bin/python): run its `podrec serve` beside "
                    "this one's, on copies of one store with a trained hybrid, SQLite only")
    ap.add_argument("--baseline-label", default="baseline", help="its name in the output")
    ap.add_argument("--trained-listeners", type=int, default=2000,
                    help="synthetic listeners the compared store is trained on")
    ap.add_argument("--trained-seed", type=int, default=0,
                    help="seed of those synthetic listeners (the trained store is cached per "
                    "listeners and seed)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="with --baseline-python: runs of each scenario per server")
    args = ap.parse_args(argv)
    if args.load:
        load_main()
        return
    from rich.console import Console

    logging.getLogger("alembic").setLevel(logging.WARNING)
    console = Console() if sys.stdout.isatty() else Console(width=150)
    scenarios = [(s.split(":")[0], int(s.split(":")[1])) for s in args.scenarios.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    worker_counts = [int(w) for w in args.workers.split(",")]
    caches = [c.strip() for c in args.cache.split(",") if c.strip()]
    if bad := set(caches) - {"off", "read", "notify"}:
        ap.error(f"--cache: expected off, read or notify, got {', '.join(sorted(bad))}")
    if args.baseline_python:
        if "notify" in caches:
            ap.error("--baseline-python runs on SQLite: --cache off and/or read")
        compare_main(args, console, scenarios)
        return

    cached = build_sqlite(args.data, args.db_cache, console)
    shows, items = catalog_ids(f"sqlite:///{cached}")
    events = listener_events(shows, args.listeners, args.seed)
    listeners = sorted({e["user_id"] for e in events})
    n_shows, n_eps = len(shows), len(items) - len(shows)
    console.print(f"catalog: {n_shows} shows and {n_eps} episodes embedded with {EMBEDDER} "
                  f"(recommendations rank the {n_shows} shows)")
    quiet = wait_for_quiet(args.wait, console)

    results: list[dict[str, Any]] = []
    references: dict[str, dict[str, Any]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="podrec-bench-server-"))
    cfg = tmp / "podrec.toml"
    cfg.write_text(f'[embedder]\nname = "{EMBEDDER}"\n\n[server]\nreports_dir = "{tmp}"\n')
    for mode, line in (("off", "cache_mb = 0"), ("read", 'cache_sync = "read"'),
                       ("notify", 'cache_sync = "notify"')):
        cfg.with_name(f"podrec-{mode}.toml").write_text(cfg.read_text() + line + "\n")
    t_start = time.perf_counter()
    try:
        for backend in backends:
            for workers, cache in [(w, c) for w in worker_counts for c in caches
                                   if c != "notify" or backend == "postgresql"]:
                if backend == "sqlite":
                    copy_sqlite(cached, tmp / "run.db")
                    url = f"sqlite:///{tmp / 'run.db'}"
                else:
                    try:
                        url = copy_to_pg(cached, args.pg_admin, args.pg_db)
                    except Exception as exc:  # noqa: BLE001 - no server: skip the backend
                        console.print(f"[yellow]skipping PostgreSQL:[/] {exc}")
                        break
                try:
                    results += run_config(backend, workers, cache, url, cfg, tmp, events, listeners,
                                          items, scenarios, args, console)
                    if backend not in references:
                        references[backend] = in_process(url, listeners,
                                                         args.reference_requests, args.seed)
                        r = references[backend]
                        console.print(f"  in-process Podrec.recommend ({backend}): p50 "
                                      f"{r['p50_ms']:.1f}  p99 {r['p99_ms']:.1f} ms")
                finally:
                    if backend != "sqlite":
                        drop_pg(args.pg_admin, args.pg_db)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    title = (f"REST API under load, {n_shows} shows + {n_eps} episodes ({EMBEDDER}), "
             f"{args.duration:.0f}s per scenario after {args.warmup:.0f}s warm-up")
    print_table(console, results, title)
    console.print(loadavg() + ("" if quiet else "; `podrec evaluate` was running"))
    console.print("server CPU / client CPU: cores used by `podrec serve` (all workers) and by "
                  "the load generator during the measured seconds; load: the 1-minute load "
                  "average after the scenario (it counts the server's own busy threads).")
    for backend, ref in references.items():
        ones = [r for r in results if r["backend"] == backend and r["workers"] == 1
                and r["scenario"] == "recommend" and r["concurrency"] == 1]
        ratio = "".join(f"; HTTP at concurrency 1, cache {one['cache']} / "
                        f"in-process: p50 {one['p50_ms'] / ref['p50_ms']:.2f}x, p99 "
                        f"{one['p99_ms'] / ref['p99_ms']:.2f}x" for one in ones)
        console.print(f"reference, Podrec.recommend(user_id, k=10) in-process on {backend} "
                      f"({ref['n']} calls, one at a time): p50 {ref['p50_ms']:.1f} ms, p95 "
                      f"{ref['p95_ms']:.1f} ms, p99 {ref['p99_ms']:.1f} ms{ratio}")
        bound = (os.cpu_count() or 1) * 1000 / ref["mean_ms"]
        console.print(f"  at its mean of {ref['mean_ms']:.1f} ms a list (all of it CPU on this "
                      f"box, the database included), {os.cpu_count()} cores give at most "
                      f"~{bound:.0f} lists/s, so 100 requests in flight wait at least "
                      f"{100 / bound * 1000:.0f} ms on average (Little's law)")
    recs100 = [r for r in results if r["scenario"] == "recommend" and r["concurrency"] == 100]
    batches = [r for r in results if r["scenario"] == "batch"]
    for r in recs100:
        console.print(f"aim p99 <= 50 ms at 100 concurrent ({r['backend']}, {r['workers']} "
                      f"worker(s), list cache {r['cache']}): p99 "
                      f"{r['p99_ms']:.0f} ms -> "
                      f"{'met' if r['p99_ms'] <= 50 else 'NOT met'}")
    for r in batches:
        console.print(f"aim >= 2,000 events/s in batches ({r['backend']}, {r['workers']} "
                      f"worker(s)): {r['events_per_s']:,.0f}/s -> "
                      f"{'met' if r['events_per_s'] >= 2000 else 'NOT met'}")
    console.print(f"total {time.perf_counter() - t_start:.0f}s")
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
                "cpus": os.cpu_count(), "loadavg_end": os.getloadavg(), "embedder": EMBEDDER,
                "shows": n_shows, "episodes": n_eps, "listeners": len(listeners),
                "listener_events": len(events), "duration_s": args.duration,
                "warmup_s": args.warmup, "evaluate_running": not quiet,
                "serve_args": args.serve_arg}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results,
                                         "in_process": references}, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
