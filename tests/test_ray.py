"""Batch work on a real local Ray cluster (two CPUs, started once for the module): enrich,
generated tags, training and evaluate give what they give in this process; a task that
fails once is retried; a re-run after a partial run does only what is left."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FIXTURES, SAMPLE, import_extra

from podrec.batch import BatchError, InProcessRunner, RayRunner, make_runner
from podrec.batch.enrich import EnrichChunk, enrich_chunk
from podrec.config import Config
from podrec.enrich.generated import generate_tags
from podrec.evaluate.harness import evaluate, prepare
from podrec.evaluate.protocols import SplitConfig
from podrec.ingest.datasets import read_catalog
from podrec.ingest.events import read_events
from podrec.records import IngestReport
from podrec.service import Podrec

ray = import_extra("ray")
ML = FIXTURES / "movielens_40users"


@pytest.fixture(scope="module")
def cluster():
    # the tasks below that wrap the real ones are defined here: sent by value, since the
    # workers cannot import this test module
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def runner(cluster) -> RayRunner:
    return RayRunner(max_retries=1)


def _config(chunk_items: int = 64, **train: Any) -> Config:
    cfg = Config()
    return replace(cfg, llm=replace(cfg.llm, reasons=False, summaries=False),
                   ray=replace(cfg.ray, chunk_items=chunk_items),
                   train=replace(cfg.train, **train))


def _catalog(tmp_path: Path, n: int) -> Path:
    """The first ``n`` shows of the sample catalog."""
    path = tmp_path / f"catalog-{n}.jsonl"
    lines = (SAMPLE / "catalog.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _stored(app: Podrec) -> tuple[dict[str, np.ndarray], dict[str, list[tuple[str, str]]]]:
    """Every item's vector and tags, by item id."""
    pks, vectors = app.store.load_vectors(app.embedder_model_id, kind=None)
    items = app.store.items_by_pk(pks.tolist())
    tags = app.store.tags_for(pks.tolist())
    by_id = {items[int(pk)].id: vec for pk, vec in zip(pks, vectors, strict=True)}
    tag_rows = {items[int(pk)].id: sorted((t["source"], t["tag"], round(t["score"], 6))
                                          for t in tags[int(pk)]) for pk in pks}
    return by_id, tag_rows


# -- enrich and generated tags ----------------------------------------------------------------

def test_enrich_on_ray_stores_what_enrich_here_stores(runner, wordllama, sqlite_url,
                                                      postgres_url):
    here = Podrec(_config(), database_url=sqlite_url, embedder=wordllama)
    there = Podrec(_config(), database_url=postgres_url, embedder=wordllama)  # workers reach it
    try:
        for app in (here, there):
            app.ingest_catalog(SAMPLE / "catalog.jsonl")
        seen: list[int] = []
        a = here.enrich()
        b = there.enrich(runner=runner, progress=seen.append)
        assert a.summary() == b.summary() and b.tagged == 276
        assert sum(seen) == 276 and len(seen) == 5  # one progress step per 64-item chunk
        vec_a, tags_a = _stored(here)
        vec_b, tags_b = _stored(there)
        assert vec_a.keys() == vec_b.keys() and len(vec_a) == 276
        assert all(np.array_equal(vec_a[i], vec_b[i]) for i in vec_a)
        assert tags_a == tags_b
        assert {s for rows in tags_b.values() for s, _, _ in rows} >= {"taxonomy",
                                                                       "keyphrase"}
        assert there.enrich(runner=runner).summary()["unchanged"] == 276  # nothing left
    finally:
        here.close()
        there.close()


class _TagServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that tags a show by its first two title words."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server interface
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        words = [w.strip(".,:!?") for w in text.split()[:6] if len(w) > 3][:2]
        answer = {"genres": ["Comedy"], "topics": [f"{w.lower()} stories" for w in words]}
        reply = json.dumps({"choices": [{"message": {"content": json.dumps(answer)}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tag_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TagServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_generated_tags_on_ray_are_the_ones_made_here(runner, wordllama, tmp_path,
                                                      tag_endpoint):
    cfg = _config(chunk_items=10)
    cfg = replace(cfg, llm=replace(cfg.llm, backend="endpoint", endpoint=tag_endpoint))
    reports, stored = [], []
    for name, run_on in (("here", None), ("ray", runner)):
        app = Podrec(cfg, database_url=f"sqlite:///{tmp_path / name}.db", embedder=wordllama)
        try:
            app.ingest_catalog(_catalog(tmp_path, 40))
            from podrec.llm import make_generator

            generator = make_generator(cfg, app.store)
            reports.append(generate_tags(app.store, generator, limit=30, runner=run_on,
                                         llm=cfg.llm, chunk_items=cfg.ray.chunk_items))
            tags = app.store.tags_for([i.pk for i in app.store.iter_items()])
            stored.append({pk: [(t["tag"], t["score"]) for t in rows if t["source"] ==
                                "generated"] for pk, rows in tags.items()})
        finally:
            app.close()
    here, there = reports
    assert (here.items, here.generated, here.fell_back) == (there.items, there.generated,
                                                            there.fell_back) == (30, 30, 0)
    assert stored[0] == stored[1] and sum(bool(v) for v in stored[1].values()) >= 25


# -- failures, retries, resume ----------------------------------------------------------------

def crash_once(marker: Path, pk: int) -> Any:
    """The real chunk task, whose worker dies the first time it meets item ``pk``."""
    def task(chunk: EnrichChunk) -> dict[str, int]:
        if pk in chunk.pks and not marker.exists():
            marker.write_text("crashed")
            os._exit(1)
        return enrich_chunk(chunk)
    return task


def raise_once(marker: Path, pk: int) -> Any:
    """The real chunk task, which raises the first time it meets item ``pk``."""
    def task(chunk: EnrichChunk) -> dict[str, int]:
        if pk in chunk.pks and not marker.exists():
            marker.write_text("raised")
            raise OSError("the network went away")
        return enrich_chunk(chunk)
    return task


def always_fail(marker: Path, pk: int) -> Any:
    """The real chunk task, which always raises for the chunk of item ``pk``."""
    def task(chunk: EnrichChunk) -> dict[str, int]:
        if pk in chunk.pks:
            marker.write_text("failed")
            raise OSError("the disk is full")
        return enrich_chunk(chunk)
    return task


class _Swapped(RayRunner):
    """A runner that runs ``task`` in place of the function it is given."""

    def __init__(self, task: Any, max_retries: int = 1) -> None:
        super().__init__(max_retries=max_retries)
        self.task = task

    def map(self, fn: Any, tasks: Any, *args: Any, **kwargs: Any) -> Any:
        return super().map(self.task, tasks, *args, **kwargs)


def _small_app(tmp_path: Path, wordllama: Any, n: int = 96) -> tuple[Podrec, list[int]]:
    app = Podrec(_config(chunk_items=32), database_url=f"sqlite:///{tmp_path / 'a.db'}",
                 embedder=wordllama)
    app.ingest_catalog(_catalog(tmp_path, n))
    return app, sorted(i.pk for i in app.store.iter_items())


@pytest.mark.parametrize("failing", [crash_once, raise_once])
def test_a_task_that_fails_once_is_retried(cluster, wordllama, tmp_path, failing):
    app, pks = _small_app(tmp_path, wordllama)
    marker = tmp_path / "failed-once"
    try:
        report = app.enrich(runner=_Swapped(failing(marker, pks[0])))
        assert marker.exists()  # it did fail once
        assert report.tagged == 96 and len(_stored(app)[0]) == 96
    finally:
        app.close()


def test_a_rerun_after_a_partial_run_does_only_the_failed_chunk(cluster, wordllama,
                                                                tmp_path):
    app, pks = _small_app(tmp_path, wordllama)
    try:
        with pytest.raises(BatchError, match=r"1 of 3 enrich chunks failed after 1 retries.*"
                                             r"OSError: the disk is full"):
            app.enrich(runner=_Swapped(always_fail(tmp_path / "failed", pks[40])))
        assert len(_stored(app)[0]) == 64  # the two other chunks are stored
        again = app.enrich(runner=RayRunner(max_retries=1))
        assert (again.unchanged, again.tagged) == (64, 32)
        assert len(_stored(app)[0]) == 96
    finally:
        app.close()


# -- training and evaluate ----------------------------------------------------------------------

def _copy_db(src_url: str, dst: Path) -> str:
    with sqlite3.connect(src_url.removeprefix("sqlite:///")) as src, sqlite3.connect(dst) as out:
        src.backup(out)
    return f"sqlite:///{dst}"


@pytest.fixture(scope="module")
def movielens_db(tmp_path_factory, wordllama) -> str:
    db = tmp_path_factory.mktemp("ray-train") / "ml.db"
    app = Podrec(_config(), database_url=f"sqlite:///{db}", embedder=wordllama)
    app.ingest_catalog(ML / "movies.csv")
    app.ingest_events(ML / "ratings.csv")
    app.enrich()
    app.close()
    return f"sqlite:///{db}"


def test_training_on_ray_chooses_what_training_here_chooses(runner, wordllama, movielens_db,
                                                           tmp_path):
    parts = ("pop", "itemknn", "ials", "content", "profile")  # the profile on content's choice
    metas, blends = [], []
    for name, run_on in (("here", None), ("ray", runner)):
        app = Podrec(_config(parts=parts),
                     database_url=_copy_db(movielens_db, tmp_path / f"{name}.db"),
                     embedder=wordllama)
        try:
            report = app.train("show", runner=run_on)
            assert report.fallback is None
            metas.append(report.meta)
            _, blob = app.store.get_artifact(f"model/show/{report.version}")
            blends.append(pickle.loads(blob)["blend"])  # noqa: S301 - our own artefact
        finally:
            app.close()
    here, there = metas
    assert here["params"] == there["params"] and here["validation"] == there["validation"]
    assert blends[0] == blends[1] and blends[0] is not None
    assert set(here["params"]) == set(parts)


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_evaluate_on_ray_gives_the_same_figures(runner, wordllama, tmp_path):
    report = IngestReport()
    records = list(read_catalog(ML / "movies.csv", report))
    events = list(read_events(ML / "ratings.csv", report))
    data = prepare(records, events, wordllama, tmp_path / "cache")
    args = (data, SplitConfig("random", seed=0), ["pop", "itemknn", "ials", "content",
                                                  "hybrid"],
            [5, 10], wordllama, tmp_path / "cache")
    here = evaluate(*args, mmr_levels=(0.5,))
    messages: list[str] = []
    there = evaluate(*args, mmr_levels=(0.5,), runner=runner, progress=messages.append)
    assert _without_timings(here) == _without_timings(there)
    assert "ials mmr=0.5" in there["models"] and "blend" in there["models"]["hybrid"]["params"]
    assert sum(m.startswith("validation ") for m in messages) == 1 + 2 + 3 + 2


def test_the_platform_study_on_ray_gives_the_same_figures(runner, wordllama, tmp_path):
    from podrec.evaluate.harness import evaluate_platforms

    report = IngestReport()
    data = prepare(list(read_catalog(ML / "movies.csv", report)),
                   list(read_events(ML / "ratings.csv", report)), wordllama, tmp_path / "cache")
    args = (data, SplitConfig("random", seed=0), ["itemknn", "ease", "content"], [5, 10],
            wordllama, tmp_path / "cache")
    here = evaluate_platforms(*args)
    there = evaluate_platforms(*args, runner=runner)
    assert list(here["models"]) == list(there["models"])  # the same order, task by task
    assert _without_timings(here) == _without_timings(there)


# -- choosing the runner ------------------------------------------------------------------------

def test_no_address_runs_here(cluster):
    assert isinstance(make_runner("", Config()), InProcessRunner)
    assert isinstance(make_runner(None, Config()), InProcessRunner)
    runner = make_runner("local", Config())  # Ray is already up here: that cluster is used
    assert runner.distributed and runner.workers == 2
    runner.close()
    assert ray.is_initialized()  # not stopped: this runner did not start it


def test_enrich_command_with_ray(cluster, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from podrec.cli import app

    monkeypatch.setenv("PODREC_EMBEDDER", "wordllama")
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    cli = CliRunner()
    assert cli.invoke(app, ["ingest", "catalog", str(_catalog(tmp_path, 40)), "--db", db]
                      ).exit_code == 0
    out = cli.invoke(app, ["enrich", "--ray", "local", "--db", db, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout.strip().splitlines()[-1])["tagged"] == 40


def test_without_ray_installed_ray_is_one_clear_error(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from podrec.cli import app; "
            f"sys.argv = ['podrec', 'train', '--ray', 'local', '--db', "
            f"'sqlite:///{tmp_path / 'x.db'}']; app()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2
    assert "running on Ray needs the ray package: pip install 'podrec[ray]'" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(("address", "says"), [
    ("127.0.0.1:1", "cannot reach a Ray cluster at '127.0.0.1:1' (Connection refused)"),
    ("nonsense", "expected local, auto, host:port or ray://host:port")])
def test_an_address_that_does_not_answer_is_one_clear_error_at_once(tmp_path, address, says):
    out = subprocess.run([sys.executable, "-m", "podrec.cli", "enrich", "--ray", address,
                          "--db", f"sqlite:///{tmp_path / 'x.db'}"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr


def test_the_server_trains_on_the_configured_cluster(cluster, wordllama, movielens_db,
                                                     tmp_path, monkeypatch):
    """``ray.address`` set: the server's training (schedule and POST /models/train) fits its
    grid points and models as Ray tasks."""
    from podrec.server.training import train_kind

    maps: list[str] = []
    real_map = RayRunner.map

    def counted(self: RayRunner, fn: Any, tasks: Any, *args: Any, **kwargs: Any) -> Any:
        maps.append(kwargs.get("what", "tasks"))
        return real_map(self, fn, tasks, *args, **kwargs)

    monkeypatch.setattr(RayRunner, "map", counted)
    cfg = _config(parts=("pop", "itemknn"))
    app = Podrec(replace(cfg, ray=replace(cfg.ray, address="local")),
                 database_url=_copy_db(movielens_db, tmp_path / "server.db"),
                 embedder=wordllama)
    try:
        report = train_kind(app, "show")
        assert report.fallback is None and set(report.meta["params"]) == {"pop", "itemknn"}
        assert app.served_model("show")["version"] == report.version
    finally:
        app.close()
    assert maps, "no work went to the Ray cluster"
    assert ray.is_initialized()  # the test's cluster: the training's runner did not stop it
