"""Training and serving the trained model: `podrec train` on real MovieLens events (40
listeners, tests/fixtures/movielens_40users), versioned artefacts, fold-in of new events,
the fallback, true explanations, and the served lists against the harness's own figure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES

from podrec.config import Config
from podrec.records import EventRecord
from podrec.service import Podrec, RecommendRequest
from podrec.service.errors import NotFoundError

ML = FIXTURES / "movielens_40users"
CF_PARTS = {"pop", "pop-recent", "itemknn", "ease", "ials", "bpr"}


def _config(**train: object) -> Config:
    cfg = Config()
    return replace(cfg, tagger=replace(cfg.tagger, keyphrases=0),
                   llm=replace(cfg.llm, reasons=False, summaries=False),  # template wording
                   train=replace(cfg.train, **train))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, wordllama) -> Podrec:
    db = tmp_path_factory.mktemp("train") / "ml.db"
    app = Podrec(_config(), database_url=f"sqlite:///{db}", embedder=wordllama)
    app.ingest_catalog(ML / "movies.csv")
    app.ingest_events(ML / "ratings.csv")
    app.enrich()
    assert app.served_model()["version"] is None  # nothing trained yet: the fallback
    app.report = app.train("show")
    yield app
    app.close()


def _active_listener(app: Podrec) -> str:
    """The listener with the most positive events (bucket >10 items)."""
    counts: dict[str, int] = {}
    for ev in app.store.iter_events():
        if ev.value is not None and ev.value >= 4:
            counts[ev.user_id] = counts.get(ev.user_id, 0) + 1
    return max(counts, key=lambda u: counts[u])


def test_train_saves_a_versioned_hybrid_that_is_served(trained):
    meta = trained.report.meta
    assert meta["model"] == "hybrid" and trained.report.fallback is None
    assert set(meta["params"]) == set(trained.config.train.parts)
    assert meta["data"]["events"] == 6873 and meta["data"]["listeners"] == 40
    assert meta["validation"]["ease"] is not None and meta["validation"]["blend"]
    served = trained.served_model("show")
    assert served["version"] == trained.report.version
    user = _active_listener(trained)
    recs = trained.recommend(user_id=user, k=10)
    assert len(recs) == 10
    used = set().union(*(r.components for r in recs))
    assert used & CF_PARTS  # collaborative parts score the list, not content alone
    heard = {ev.item_id for ev in trained.store.user_events(user)}
    assert not heard & {r.id for r in recs}  # nothing the listener rated comes back


def test_every_training_is_a_new_version_and_old_ones_are_pruned(trained):
    first = trained.report.version
    versions = [trained.train("show", keep_versions=2).version for _ in range(2)]
    stored = [name for name, _, _ in trained.store.artifact_versions("model/show/")]
    assert len(stored) == 2 and stored[0].endswith(versions[-1])
    assert all(first not in name for name in stored)
    assert trained.served_model("show")["version"] == versions[-1]


def test_a_new_event_changes_the_list_without_retraining(trained):
    user = _active_listener(trained)
    version = trained.served_model()["version"]
    before = [r.id for r in trained.recommend(user_id=user, k=10)]
    trained.store.add_events([EventRecord(user_id=user, item_id=before[0], item_kind="show",
                                          event="rate", value=5.0,
                                          timestamp=datetime.now(UTC))])
    after = [r.id for r in trained.recommend(user_id=user, k=10)]
    assert before[0] not in after and after != before
    assert trained.served_model()["version"] == version  # folded in, not refitted


def test_a_second_worker_picks_up_a_new_model(trained):
    other = Podrec(trained.config, database_url=str(trained.store.url),
                   embedder=trained.embedder)
    try:
        seen = other.served_model()["version"]
        new = trained.train("show").version
        assert new != seen
        other.refresh(force=True)
        assert other.served_model()["version"] == new
    finally:
        other.close()


def test_items_added_after_training_are_scored_by_content(trained, tmp_path):
    catalog = tmp_path / "new.jsonl"
    catalog.write_text('{"id": "new-doc", "title": "Prison break documentary", '
                       '"description": "A crime documentary about a famous prison escape.", '
                       '"categories": ["Documentary", "Crime"]}\n', encoding="utf-8")
    trained.ingest_catalog(catalog)
    trained.enrich()
    recs = trained.recommend(query="prison escape crime documentary", k=3)
    assert recs[0].id == "new-doc"
    user = _active_listener(trained)
    scores = trained.recommend(user_id=user, k=5000)
    new = next(r for r in scores if r.id == "new-doc")
    assert all(abs(new.components.get(p, 0.0)) < 1e-6 for p in ("ease", "itemknn"))


def test_too_few_events_fall_back_to_the_profile_and_say_so(sample_app):
    report = sample_app.train("show")
    assert "fewer than train.min_events" in report.fallback
    served = sample_app.served_model("show")
    assert served["version"] == report.version and "profile" in served["fallback"]
    recs = sample_app.recommend(user_id="demo-listener", k=5, explain=True)
    assert recs and all(set(r.components) <= {"profile", "pop"} for r in recs)


def test_a_listener_known_only_by_their_words_hears_them_in_the_reason(sample_app):
    words = "history of ancient Rome and true crime"
    sample_app.store.add_events([EventRecord(user_id="words-only", event="search",
                                             timestamp=datetime.now(UTC), text=words)])
    recs = sample_app.recommend(user_id="words-only", k=5, explain=True)
    for rec in recs:
        assert f"“{words}”" in rec.reason and "Popular" not in rec.reason
        top = max(rec.evidence, key=lambda e: e.get("share", 0))
        assert top["type"] == "query" and top["text"] == words


def test_collaborative_evidence_names_the_history_items_behind_it(trained):
    user = _active_listener(trained)
    served = trained.models.pipeline("show").served.model
    served.blend = [{"ease": 1.0, "itemknn": 1.0, "pop": 0.2}] * 3  # collaborative parts lead
    try:
        recs = trained.recommend(RecommendRequest(user_id=user, k=10, explain=True))
    finally:
        trained.models.invalidate()  # the trained blend again
    heard = {ev.item_id for ev in trained.store.user_events(user)}
    named = [e for r in recs for e in r.evidence if e["type"] == "collaborative" and "id" in e]
    assert named and all(e["id"] in heard for e in named)
    for rec in recs:
        assert sum(e.get("share", 0.0) for e in rec.evidence) == pytest.approx(1.0, abs=0.01)
        if any(e["type"] == "collaborative" and e["share"] >= 0.3 for e in rec.evidence):
            assert "also like this" in rec.reason


def _with_candidates(app: Podrec, above: int, per_source: int) -> Config:
    saved = app.config
    app.config = replace(saved, recommend=replace(saved.recommend, candidates_above=above,
                                                  candidates_per_source=per_source))
    return saved


def test_candidates_covering_the_catalog_give_the_full_pass_list(trained):
    """Scored on candidates, an item gets the score a full pass gives it: with every item a
    candidate the lists, scores and reasons are the same."""
    user = _active_listener(trained)
    full = trained.recommend(user_id=user, k=10, explain=True)
    saved = _with_candidates(trained, 0, 100_000)
    try:
        assert trained.models.pipeline("show").candidates is not None
        cand = trained.recommend(user_id=user, k=10, explain=True)
        words = trained.recommend(query="space adventure", k=5)
    finally:
        trained.config = saved
    assert [r.id for r in cand] == [r.id for r in full]
    np.testing.assert_allclose([r.score for r in cand], [r.score for r in full], atol=1e-4)
    assert [r.reason for r in cand] == [r.reason for r in full]
    assert [r.id for r in words] == [r.id for r in trained.recommend(query="space adventure",
                                                                     k=5)]


def test_few_candidates_still_find_most_of_the_full_list(trained):
    user = _active_listener(trained)
    full = [r.id for r in trained.recommend(user_id=user, k=10)]
    saved = _with_candidates(trained, 0, 40)
    try:
        sources = trained.models.pipeline("show").candidates
        cand = [r.id for r in trained.recommend(user_id=user, k=10)]
    finally:
        trained.config = saved
    n = len(sources.catalog)
    assert len(set(cand) & set(full)) >= 7, (cand, full)
    assert len(cand) == 10 and n > 400


def test_candidates_come_only_from_parts_the_blend_weighs(trained):
    """A part with no weight in a listener's blend finds no candidates for them: its scores
    would not count, and its search is the dearest (the vector index)."""
    user = _active_listener(trained)
    saved = _with_candidates(trained, 0, 30)
    try:
        pipe = trained.models.pipeline("show")
        sources = pipe.candidates
        request = RecommendRequest(user_id=user)
        events = trained.store.user_events(user)
        history = pipe.history(request, events)
        row = pipe.served.user_row(user, len(history), float(history.confidence.sum()))
        batch = history.batch(len(pipe.catalog), request.moment.timestamp(), None, None, row)
        popular_only = set(sources.rows(batch, events, {"pop"}).tolist())
        every_part = set(sources.rows(batch, events).tolist())
        nearest = set(sources.content.candidates(batch, 30).tolist())
        with_content = set(sources.rows(batch, events, {"pop", "content@cold"}).tolist())
        long_list = sources.rows(batch, events, {"pop"}, k=12)  # 10 a slot: 120 popular
    finally:
        trained.config = saved
    assert popular_only and popular_only < every_part
    assert nearest - popular_only and nearest <= every_part and nearest <= with_content
    assert len(popular_only) <= 30 + 5 * len(events) and popular_only < set(long_list.tolist())
    assert len(long_list) >= 120


def test_served_lists_match_the_harness(wordllama, tmp_path):
    """`evaluate --served` on 40 real listeners: the store, `podrec train`, Podrec.recommend
    and a real HTTP server give the harness's own hybrid figure."""
    from podrec.evaluate.harness import prepare
    from podrec.evaluate.protocols import SplitConfig
    from podrec.evaluate.served import evaluate_served
    from podrec.ingest.datasets import read_catalog
    from podrec.ingest.events import read_events
    from podrec.records import IngestReport

    rep = IngestReport()
    records = list(read_catalog(ML / "movies.csv", rep))
    events = list(read_events(ML / "ratings.csv", rep))
    data = prepare(records, events, wordllama, tmp_path / "cache")
    out = evaluate_served(data, events, ML / "movies.csv", None,
                          SplitConfig("leave-last", leave_n=5), [10], wordllama,
                          tmp_path / "cache", tmp_path / "work", _config(), http_sample=3)
    harness = out["models"]["hybrid"]["ndcg@10"]
    served = out["models"]["served"]["ndcg@10"]
    assert harness > out["models"]["pop"]["ndcg@10"] * 0.9
    assert served == pytest.approx(harness, rel=0.15)
    assert out["served"]["http"]["equal_lists"] == 3  # HTTP serves the in-process lists
    assert np.isfinite(out["served"]["ndcg@10 ratio served/harness"])


def test_train_from_the_command_line(tmp_path: Path):
    import json
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"PODREC_EMBEDDER": "wordllama"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "podrec.cli", *a, "--db", db],  # noqa: E731
                                    capture_output=True, text=True, timeout=600,
                                    env={**__import__("os").environ, **env})
    assert run("ingest", "catalog", str(ML / "movies.csv")).returncode == 0
    assert run("ingest", "events", str(ML / "ratings.csv")).returncode == 0
    assert run("enrich").returncode == 0
    out = run("train", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)[0]
    assert report["kind"] == "show" and report["model"] == "hybrid" and report["version"]


def test_lists_computed_together_are_the_lists_computed_alone(trained):
    """A server's concurrent requests are scored together (``recommend_many``): each gets the
    list it would get alone, and a bad request its own error, not the others'."""
    counts: dict[str, int] = {}
    for ev in trained.store.iter_events():
        counts[ev.user_id] = counts.get(ev.user_id, 0) + 1
    users = sorted(counts, key=lambda u: -counts[u])
    requests = [RecommendRequest(user_id=u, k=10) for u in users[:3] + users[-3:]]
    requests += [RecommendRequest(user_id=users[5], k=5, explain=True),
                 RecommendRequest(user_id="nobody", k=10),
                 RecommendRequest(query="space adventure", k=5),
                 RecommendRequest(user_id=users[1], query="romantic comedy", k=8),
                 RecommendRequest(seeds=("nope",), k=5)]
    together = trained.recommend_many(requests)
    assert len(together) == len(requests)
    for request, got in zip(requests, together, strict=True):
        if request.user_id == "nobody" or request.seeds:
            assert isinstance(got, NotFoundError)
            continue
        alone = trained.recommend(request)
        assert [r.id for r in got] == [r.id for r in alone], request
        np.testing.assert_allclose([r.score for r in got], [r.score for r in alone], atol=1e-4)
        assert [r.reason for r in got] == [r.reason for r in alone]
    assert any(r.reason for r in together[6])  # the explained one is explained
