"""``podrec evaluate --served``: replay a split through the real service and score what it
serves, beside the harness's own figure for the same model.

The split is the harness's. Every training event goes into a fresh store (SQLite file) through
the ordinary ingest; the catalog is ingested and enriched (with the vectors the harness
embedded, so both see the same numbers); ``podrec train`` chooses and fits the served model
with the harness's validation protocol and seed; then every test listener's list comes from
``Podrec.recommend`` at the moment of their first test event, and, for a sample, from
``POST /recommendations`` of a real HTTP server. The lists are scored by the harness's own
``score_lists``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from podrec.config import Config
from podrec.enrich.embedders import TextEmbedder
from podrec.evaluate.folds import EvalData, Fold, make_fold
from podrec.evaluate.harness import evaluate, score_lists
from podrec.evaluate.protocols import SplitConfig, split_pairs
from podrec.recommend.balance import calibration_gap, genre_distribution
from podrec.recommend.request import RecommendRequest
from podrec.records import EventRecord

Progress = Callable[[str], None]


class CachedEmbedder:
    """An embedder that answers from vectors already computed for the same texts (the
    harness's), and asks the real one for anything else."""

    def __init__(self, inner: TextEmbedder, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.known = {t: v for t, v in zip(texts, vectors, strict=True) if t}

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.known]
        if missing:
            for t, v in zip(missing, self.inner.embed_passages(missing), strict=True):
                self.known[t] = v
        return np.vstack([self.known[t] for t in texts]) if texts else \
            np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)


def training_events(data: EvalData, events: Sequence[EventRecord], test_mask: np.ndarray,
                    text_evidence: str = "train") -> list[EventRecord]:
    """The events behind the training pairs; with text evidence 'all', the text written about
    test items too, as searches (the listener's own words, with no item to give away)."""
    pairs = data.interactions
    test = {(pairs.user_ids[u], pairs.item_ids[i])
            for u, i in zip(pairs.users[test_mask].tolist(), pairs.items[test_mask].tolist(),
                            strict=True)}
    out = []
    for ev in events:
        if (ev.user_id, ev.item_id) not in test:
            out.append(ev)
        elif text_evidence == "all" and ev.text and (ev.event == "search" or (
                ev.event == "review" and (ev.value is None or ev.value >= 3))):
            # a favourable review is the listener's own words, as the harness counts them
            out.append(replace(ev, event="search", item_id=None, item_kind=None, value=None))
    return out


def _write_events(events: Sequence[EventRecord], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(json.dumps(ev.to_dict(), ensure_ascii=False) + "\n")


def served_lists(podrec: Any, data: EvalData, fold: Fold, k: int,
                 progress: Progress | None = None, balance: float | None = None
                 ) -> list[np.ndarray]:
    """Each test listener's list from ``Podrec.recommend`` at their request moment, as rows
    of the harness's catalog."""
    lists = []
    for n, (u, now) in enumerate(zip(fold.users.tolist(), fold.batch.now.tolist(),
                                     strict=True)):
        uid = data.interactions.user_ids[u]
        podrec.create_user(uid)  # a listener with no training events still asks
        recs = podrec.recommend(RecommendRequest(
            user_id=uid, k=k, now=datetime.fromtimestamp(now, UTC), balance=balance))
        rows = [data.catalog.row_of(r.id) for r in recs]
        lists.append(np.array([r for r in rows if r is not None], dtype=np.int64))
        if progress and (n + 1) % 200 == 0:
            progress(f"served {n + 1}/{len(fold.users)} lists")
    return lists


def calibration_gap_of(lists: Sequence[np.ndarray], fold: Fold, catalog: Any) -> float:
    """Mean KL between each listener's history genres and their list's (Steck's
    calibration measure; 0: the list mixes genres as the history does)."""
    h = fold.batch.histories
    gaps = []
    for i, rows in enumerate(lists):
        lo, hi = h.indptr[i], h.indptr[i + 1]
        seen, weights = h.indices[lo:hi], np.maximum(h.data[lo:hi], 0)
        history = genre_distribution([catalog.categories[r] for r in seen], weights.tolist())
        if history and len(rows):
            listed = genre_distribution([catalog.categories[r] for r in rows.tolist()])
            gaps.append(calibration_gap(history, listed))
    return float(np.mean(gaps)) if gaps else float("nan")


def balance_study(podrec: Any, data: EvalData, fold: Fold, ks: Sequence[int],
                  balances: Sequence[float], say: Progress) -> dict[str, Any]:
    """NDCG and the calibration gap of the served lists at each ``balance``."""
    out = {}
    for b in balances:
        lists = served_lists(podrec, data, fold, max(ks), balance=b)
        scored = score_lists(lists, fold, ks, data.catalog.vectors, data.interactions.n_users)
        out[str(b)] = {f"ndcg@{k}": scored[f"ndcg@{k}"] for k in ks} | {
            "calibration_gap": round(calibration_gap_of(lists, fold, data.catalog), 4)}
        say(f"balance {b}: {out[str(b)]}")
    return out


def evaluate_served(data: EvalData, events: Sequence[EventRecord], catalog_path: Path,
                    catalog_format: str | None, split: SplitConfig, ks: Sequence[int],
                    embedder: TextEmbedder, cache_dir: Path, workdir: Path, config: Config,
                    parts: Sequence[str] | None = None,
                    text_evidence: str = "train", http_sample: int = 50,
                    progress: Progress | None = None, balances: Sequence[float] = (),
                    runner: Any = None) -> dict[str, Any]:
    """The harness's hybrid and the served lists on one split, side by side. ``runner``
    (``podrec.batch``): where the harness's and the training's grid points and fits run; the
    lists are always asked of the service here, as a listener's would be."""
    from podrec.service import Podrec

    say = progress or (lambda _m: None)
    parts = tuple(parts or config.train.parts)  # the served hybrid's parts by default
    names = [*parts, "hybrid"]
    say("the harness: " + ", ".join(names))
    harness = evaluate(data, split, names, ks, embedder, cache_dir, progress=say,
                       text_evidence=text_evidence, runner=runner)
    pairs = data.interactions
    test_mask = split_pairs(pairs, split)
    fold = make_fold(data, pairs, test_mask, embedder, cache_dir, text_evidence=text_evidence)
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "served.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    cfg = replace(config, database_url=url,
                  tagger=replace(config.tagger, keyphrases=0),
                  train=replace(config.train, model="hybrid", parts=tuple(parts),
                                protocol=split.protocol, test_fraction=split.test_fraction,
                                leave_n=split.leave_n, seed=split.seed + 1,
                                model_seed=split.seed, min_events=1,
                                min_listeners=1))
    cached = CachedEmbedder(embedder, data.catalog.texts, data.catalog.vectors)
    podrec = Podrec(cfg, database_url=url, embedder=cached)  # type: ignore[arg-type]
    timings: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        podrec.ingest_catalog(catalog_path, catalog_format)
        train_events = training_events(data, events, test_mask, text_evidence)
        _write_events(train_events, workdir / "train-events.jsonl")
        podrec.ingest_events(workdir / "train-events.jsonl")
        podrec.enrich()
        timings["ingest_enrich_s"] = time.perf_counter() - t0
        say(f"store: {len(train_events)} training events; training")
        t0 = time.perf_counter()
        report = podrec.train("show", progress=say, runner=runner)
        timings["train_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        lists = served_lists(podrec, data, fold, max(ks), say)
        timings["serve_s"] = time.perf_counter() - t0
        served = score_lists(lists, fold, ks, data.catalog.vectors, pairs.n_users)
        served["calibration_gap"] = round(calibration_gap_of(lists, fold, data.catalog), 4)
        study = balance_study(podrec, data, fold, ks, balances, say) if balances else None
        http = _over_http(podrec, cfg, url, data, fold, lists, max(ks), http_sample, say) \
            if http_sample else None
    finally:
        podrec.close()
    h = harness["models"]["hybrid"]
    ratio = served["ndcg@10"] / h["ndcg@10"] if h["ndcg@10"] else float("nan")
    say(f"harness hybrid ndcg@10 {h['ndcg@10']:.4f}, served {served['ndcg@10']:.4f} "
        f"({ratio:.3f}×)")
    return {"protocol": harness["protocol"], "ks": list(ks), "data": harness["data"],
            "models": harness["models"] | {"served": served | {
                "params": report.meta, "fit_seconds": round(timings["train_s"], 3),
                "inference_seconds": round(timings["serve_s"], 3)}},
            "served": {"ndcg@10 ratio served/harness": ratio, "seconds": timings,
                       "http": http, "train": report.meta, "balance": study}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _over_http(podrec: Any, cfg: Config, url: str, data: EvalData, fold: Fold,
               lists: list[np.ndarray], k: int, sample: int, say: Progress
               ) -> dict[str, Any]:
    """A sample of the lists again, from ``POST /recommendations`` of a real server on this
    store; how many equal the in-process lists."""
    key = podrec.store.create_api_key("evaluate --served", "client")
    port = _free_port()
    from podrec.enrich.embedders import EMBEDDERS

    name = next((n for n, cls in EMBEDDERS.items() if cls.model_id == podrec.embedder_model_id),
                cfg.embedder.name)
    env = os.environ | {"PODREC_DB": url, "PODREC_EMBEDDER": name}
    proc = subprocess.Popen([sys.executable, "-m", "podrec.cli", "serve", "--host",
                             "127.0.0.1", "--port", str(port), "--db", url],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_up(port)
        idx = np.random.default_rng(0).permutation(len(fold.users))[:sample]
        same, total_ms = 0, 0.0
        for i in idx.tolist():
            uid = data.interactions.user_ids[int(fold.users[i])]
            now = datetime.fromtimestamp(float(fold.batch.now[i]), UTC).isoformat()
            body = json.dumps({"user_id": uid, "k": k, "now": now}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/recommendations", body, {
                "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - loopback
                items = json.loads(resp.read())["items"]
            total_ms += (time.perf_counter() - t0) * 1000
            rows = [data.catalog.row_of(it["id"]) for it in items]
            same += [r for r in rows if r is not None] == lists[i].tolist()
        say(f"over HTTP: {same}/{len(idx)} lists equal the in-process ones")
        return {"sample": int(len(idx)), "equal_lists": int(same),
                "mean_ms": round(total_ms / max(len(idx), 1), 2)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_up(port: int, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the server on port {port} did not come up in {seconds:.0f} s")
