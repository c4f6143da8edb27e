"""The served models over HTTP: GET /models, POST /models/train (admin), the training lock
across processes and the retrain schedule (`train.interval`), on real MovieLens ratings (40
listeners, tests/fixtures/movielens_40users) embedded with wordllama. Also a guard: no route
reaches below the ``Podrec`` facade."""

from __future__ import annotations

import csv
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import FIXTURES
from test_server import Server, client, copy_sqlite, detail

ML = FIXTURES / "movielens_40users"
ROUTES = Path(__file__).parents[1] / "src" / "podrec" / "server" / "routes"
TRAINED_PARTS = ("pop", "itemknn")  # quick to choose and fit (seconds, not minutes)
CONFIG = f"""[embedder]
name = "wordllama"
[tagger]
keyphrases = 0
[train]
parts = {list(TRAINED_PARTS)!r}
"""


def _most_active_listener() -> str:
    with (ML / "ratings.csv").open(encoding="utf-8") as f:
        counts = Counter(row["userId"] for row in csv.DictReader(f))
    return f"movielens:{counts.most_common(1)[0][0]}"


@pytest.fixture(scope="module")
def movielens(tmp_path_factory: pytest.TempPathFactory, wordllama) -> dict:
    """The MovieLens catalog and ratings ingested and embedded (nothing trained yet), a
    configuration for the servers, and an admin and a client key."""
    from podrec.config import load_config
    from podrec.service import Podrec

    tmp = tmp_path_factory.mktemp("models")
    config = tmp / "podrec.toml"
    config.write_text(CONFIG)
    db = f"sqlite:///{tmp / 'ml.db'}"
    app = Podrec(load_config(config), database_url=db, embedder=wordllama)
    try:
        app.ingest_catalog(ML / "movies.csv")
        assert app.ingest_events(ML / "ratings.csv").added == 6873
        app.enrich()
        assert app.served_model("show")["version"] is None
        keys = {scope: app.store.create_api_key(f"test {scope}", scope)
                for scope in ("admin", "client")}
    finally:
        app.close()
    return {"db": db, "config": config, "tmp": tmp, **keys}


@pytest.fixture(scope="module")
def server(movielens) -> Iterator[dict]:
    tmp = movielens["tmp"]
    db = copy_sqlite(movielens["db"], tmp / "served.db")
    served = Server("--db", db, "--config", str(movielens["config"]),
                    log=tmp / "server.log").wait()
    try:
        yield {"url": served.url, "log": tmp / "server.log", **movielens}
    finally:
        served.stop()


def _served(c: httpx.Client, kind: str = "show") -> dict:
    r = c.get("/models")
    assert r.status_code == 200, r.text
    return next(m for m in r.json()["models"] if m["kind"] == kind)


def test_training_needs_an_admin_key(server):
    with client(server["url"], server["client"]) as api, client(server["url"]) as anon:
        assert "needs an admin key" in detail(api.post("/models/train", json={}), 403)
        assert anon.post("/models/train").status_code == 401
        assert anon.get("/models").status_code == 401
        assert api.get("/models").status_code == 200  # a client may see what is served
        paths = anon.get("/openapi.json").json()["paths"]
    train, models = paths["/models/train"]["post"], paths["/models"]["get"]
    assert train["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] \
        == "#/components/schemas/TrainReport"
    assert {"401", "403", "404", "409", "422"} <= set(train["responses"])
    assert models["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] \
        == "#/components/schemas/ServedModels"


def test_train_over_http_then_every_list_is_served_by_the_trained_model(server):
    user = _most_active_listener()
    with client(server["url"], server["admin"]) as admin, \
            client(server["url"], server["client"]) as api:
        before = _served(api)
        assert before["version"] is None and "no trained model" in before["fallback"]
        episodes = _served(api, "episode")
        assert episodes["version"] is None and "podrec enrich" in episodes["fallback"]
        untrained = api.post("/recommendations", json={"user_id": user, "k": 10}).json()
        assert not set().union(*(r["components"] for r in untrained["items"])) & {"itemknn"}
        assert "'kind'" in detail(admin.post("/models/train", json={"kind": "movie"}), 422)
        assert "no episode has a" in detail(admin.post("/models/train",
                                                       json={"kind": "episode"}), 404)

        r = admin.post("/models/train", json={"kind": "show"}, timeout=300)
        assert r.status_code == 200, r.text
        report = r.json()
        assert re.fullmatch(r"\d{8}T\d{12}Z", report["version"])
        assert (report["kind"], report["model"], report["fallback"]) == ("show", "hybrid", None)
        assert report["data"]["events"] == 6873 and report["data"]["listeners"] == 40
        assert set(report["validation"]) >= set(TRAINED_PARTS) and report["params"]

        served = _served(api)
        assert served["version"] == report["version"] and served["fallback"] is None
        assert served["model"] == "hybrid" and served["data"] == report["data"]
        assert served["trained_at"].startswith(report["version"][:4])
        recs = api.post("/recommendations", json={"user_id": user, "k": 10}).json()["items"]
        assert len(recs) == 10
        used = set().union(*(r["components"] for r in recs))
        assert "itemknn" in used  # a trained collaborative part scores the list
        assert recs != untrained["items"]
        # The body is optional (show); a second training is a new version.
        again = admin.post("/models/train", timeout=300).json()
        assert again["version"] > report["version"]
        assert _served(api)["version"] == again["version"]


def test_a_training_at_a_time(server):
    """A second training while one runs is a 409, not a queue."""
    answers: list[httpx.Response] = []

    def train() -> None:
        with client(server["url"], server["admin"]) as admin:
            answers.append(admin.post("/models/train", json={"kind": "show"}, timeout=300))

    threads = [threading.Thread(target=train) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    busy = next(a for a in answers if a.status_code == 409)
    assert "a training is running already" in busy.json()["detail"]
    assert "Traceback" not in server["log"].read_text()


def test_the_training_lock_holds_across_processes(tmp_path, postgres_url):
    from podrec.server.training import TrainLock

    for url, dialect in [(f"sqlite:///{tmp_path / 'x.db'}", "sqlite"),
                         (postgres_url, "postgresql")]:
        # Two locks are two processes' (another file description, another session).
        first, second = TrainLock(url, dialect), TrainLock(url, dialect)
        with first.hold() as held:
            assert held
            with second.hold() as other:
                assert not other, dialect
            with first.hold() as again:  # the same process: no second training either
                assert not again
        with second.hold() as held:
            assert held, dialect


def test_the_schedule_trains_once_over_several_workers(movielens, tmp_path):
    """With train.interval set, a due model is trained by one worker only: the others find
    the lock taken or the model fresh; every worker serves the new version."""
    from podrec.storage import Store

    db = copy_sqlite(movielens["db"], tmp_path / "scheduled.db")
    config = tmp_path / "podrec.toml"
    config.write_text(CONFIG + "interval = 3600\n")
    served = Server("--db", db, "--config", str(config), "--workers", "2", "--no-warm",
                    log=tmp_path / "server.log")
    try:
        served.wait()
        deadline = time.monotonic() + 120
        with client(served.url, movielens["client"]) as api:
            while (version := _served(api)["version"]) is None:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.5)
            time.sleep(3)  # the other worker has had its look by now
            for _ in range(6):
                with client(served.url, movielens["client"]) as fresh:  # either worker
                    assert _served(fresh)["version"] == version
    finally:
        served.stop()
    store = Store(db)
    try:
        assert len(store.artifact_versions("model/show/")) == 1
    finally:
        store.close()
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log


def test_no_route_reaches_below_the_facade():
    """Routes call the ``Podrec`` facade only: no store, no storage, no private attribute."""
    for path in sorted(ROUTES.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        assert "podrec.storage" not in source, path.name
        assert not re.search(r"\.store\b", source), path.name
        assert not re.search(r"podrec\._|\.models\._|\._\w+\(", source), path.name


def test_a_training_whose_ray_cluster_is_down_runs_in_the_worker(movielens, tmp_path):
    """With ``ray.address`` set, training fits on that cluster; when it cannot be reached,
    POST /models/train still trains (here) and the log says why."""
    db = copy_sqlite(movielens["db"], tmp_path / "ray-down.db")
    config = tmp_path / "podrec.toml"
    config.write_text(CONFIG + '[ray]\naddress = "127.0.0.1:1"\n')
    served = Server("--db", db, "--config", str(config), "--no-warm",
                    log=tmp_path / "server.log")
    try:
        served.wait()
        with client(served.url, movielens["admin"]) as admin:
            report = admin.post("/models/train", json={"kind": "show"}, timeout=300)
            assert report.status_code == 200, report.text
            assert report.json()["fallback"] is None
            assert _served(admin)["version"] == report.json()["version"]
    finally:
        served.stop()
    log = (tmp_path / "server.log").read_text()
    assert "training show in this worker: cannot reach a Ray cluster at '127.0.0.1:1'" in log
    assert "Traceback" not in log
