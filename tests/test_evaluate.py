"""Split protocols and the evaluation harness, on the real MovieLens slice."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURES

from podrec.evaluate.harness import evaluate, prepare
from podrec.evaluate.metrics import average_precision_at_k, intra_list_diversity, ndcg_at_k
from podrec.evaluate.protocols import SplitConfig, split_pairs
from podrec.ingest.datasets import read_catalog
from podrec.ingest.events import read_events
from podrec.model.interactions import build_interactions
from podrec.records import IngestReport

ML = FIXTURES / "movielens_40users"


@pytest.fixture(scope="module")
def ml_files():
    report = IngestReport()
    return list(read_catalog(ML / "movies.csv", report)), list(read_events(ML / "ratings.csv",
                                                                          report))


@pytest.fixture(scope="module")
def pairs(ml_files):
    records, events = ml_files
    return build_interactions(events, [r.id for r in records])


def test_temporal_split_puts_the_latest_pairs_in_test(pairs):
    test = split_pairs(pairs, SplitConfig("temporal", test_fraction=0.25))
    assert test.mean() == pytest.approx(0.25, abs=0.01)
    assert pairs.times[test].min() >= pairs.times[~test].max()


def test_leave_last_holds_out_each_listeners_latest(pairs):
    test = split_pairs(pairs, SplitConfig("leave-last", leave_n=2))
    for u in range(pairs.n_users):
        mine = pairs.users == u
        assert test[mine].sum() == 2
        assert pairs.times[mine & test].min() >= pairs.times[mine & ~test].max()


def test_user_holdout_keeps_other_listeners_whole(pairs):
    test = split_pairs(pairs, SplitConfig("user-holdout", test_fraction=0.25, seed=3))
    held = np.unique(pairs.users[test])
    assert len(held) == 10  # 25% of 40 listeners
    for u in held:
        mine = pairs.users == u
        assert test[mine].mean() == pytest.approx(0.2, abs=0.05)  # 80% given at fold-in
    assert not test[~np.isin(pairs.users, held)].any()


def test_random_split_is_seeded(pairs):
    a = split_pairs(pairs, SplitConfig("random", seed=1))
    b = split_pairs(pairs, SplitConfig("random", seed=1))
    c = split_pairs(pairs, SplitConfig("random", seed=2))
    assert (a == b).all() and not (a == c).all()
    assert a.mean() == pytest.approx(0.2, abs=0.01)


def test_cold_items_split_holds_out_whole_items(pairs):
    test = split_pairs(pairs, SplitConfig("cold-items", test_fraction=0.2, seed=0))
    held = np.unique(pairs.items[test])
    assert len(held) == round(0.2 * len(np.unique(pairs.items)))
    assert not np.isin(pairs.items[~test], held).any()  # no one touched them in training
    assert np.isin(pairs.items[np.isin(pairs.items, held)], held).all()


def test_on_new_items_the_hybrid_beats_collaborative_filtering(ml_files, wordllama, tmp_path):
    records, events = ml_files
    data = prepare(records, events, wordllama, tmp_path / "cache")
    models = evaluate(data, SplitConfig("cold-items", seed=0),
                      ["pop", "ease", "ials", "content", "hybrid"], [10], wordllama,
                      tmp_path / "cache")["models"]
    for cf in ("pop", "ease", "ials"):  # they cannot rank what no one has touched
        assert models[cf]["slices"]["cold items"]["recall@10"] == 0.0
    assert models["hybrid"]["slices"]["cold items"]["recall@10"] > 0.02
    assert models["hybrid"]["ndcg@10"] > models["content"]["ndcg@10"] > 0


def test_protocol_mistakes_are_clear(pairs):
    with pytest.raises(ValueError, match="unknown protocol"):
        split_pairs(pairs, SplitConfig("sometimes"))
    flat = pairs.subset(np.ones(len(pairs.users), bool))
    flat.times = np.zeros_like(flat.times)
    with pytest.raises(ValueError, match="temporal protocol needs timestamps"):
        split_pairs(flat, SplitConfig("temporal"))


def test_metrics_on_hand_checked_lists():
    assert ndcg_at_k([1, 2, 3], {1}, 3) == pytest.approx(1.0)
    assert ndcg_at_k([2, 1], {1}, 2) == pytest.approx(1 / np.log2(3))
    assert average_precision_at_k([1, 9, 2], {1, 2}, 3) == pytest.approx((1 + 2 / 3) / 2)
    v = np.eye(3, dtype=np.float32)
    assert intra_list_diversity([0, 1, 2], v) == pytest.approx(1.0)
    assert intra_list_diversity([0, 0], v) == pytest.approx(0.0)


def test_harness_scores_every_model_on_the_same_listeners(ml_files, wordllama, tmp_path):
    records, events = ml_files
    data = prepare(records, events, wordllama, tmp_path / "cache")
    results = evaluate(data, SplitConfig("random", seed=0),
                       ["pop", "itemknn", "ease", "content", "hybrid"], [5, 10], wordllama,
                       tmp_path / "cache")
    models = results["models"]
    assert list(models) == ["pop", "itemknn", "ease", "content", "hybrid"]
    for name, r in models.items():
        for key in ("ndcg@10", "recall@5", "map@10", "mrr@10", "hit@10", "coverage@10",
                    "diversity@10", "novelty@10", "popularity@10", "fit_seconds"):
            assert key in r, (name, key)
        assert 0.0 <= r["ndcg@10"] <= 1.0 and r["hit@10"] >= r["recall@10"]
        activity = [s for label, s in r["slices"].items() if label.startswith("users")]
        assert sum(s["users"] for s in activity) == results["data"]["test_users"]
    assert models["ease"]["params"]["l2"] in (50.0, 200.0, 800.0)  # chosen on validation
    assert models["ease"]["ndcg@10"] > models["pop"]["ndcg@10"]
    assert {"buckets", "blend"} <= set(models["hybrid"]["params"])


def test_evaluate_command_writes_results_and_plots(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODREC_")}
    proc = subprocess.run(
        [sys.executable, "-m", "podrec.cli", "evaluate", "--catalog", str(ML / "movies.csv"),
         "--events", str(ML / "ratings.csv"), "--protocol", "leave-last",
         "--models", "pop,ials,content,hybrid", "--k", "10,20", "--out", str(out),
         "--embedder", "wordllama", "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"]["protocol"] == "leave-last"
    # one held-out pair per listener; those whose last rating was low have nothing to find
    assert 20 <= results["data"]["test_users"] <= 40
    assert set(results["models"]) == {"pop", "ials", "content", "hybrid"}
    assert (out / "results.md").read_text().startswith("Protocol `leave-last`")
    assert (out / "accuracy.png").stat().st_size > 5000
    bad = subprocess.run([sys.executable, "-m", "podrec.cli", "evaluate", "--catalog",
                          str(ML / "movies.csv"), "--events", str(ML / "ratings.csv"),
                          "--models", "pop,magic"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "unknown model(s) magic" in bad.stderr


def test_profile_models_and_mmr_levels_run_side_by_side(ml_files, wordllama, tmp_path):
    records, events = ml_files
    data = prepare(records, events, wordllama, tmp_path / "cache")
    results = evaluate(data, SplitConfig("temporal", seed=0),
                       ["content", "profile-static", "profile-context"], [10, 20], wordllama,
                       tmp_path / "cache", mmr_levels=[0.7])
    models = results["models"]
    # profile-context needs profile: it is added, and runs on the parameters chosen for it
    assert {"content", "profile-static", "profile", "profile-context"} <= set(models)
    chosen = models["profile"]["params"]
    for key in ("half_life_days", "max_interests", "share_weight"):
        assert models["profile-context"]["params"][key] == chosen[key]
    assert models["profile-static"]["params"]["single_vector"] is True
    assert models["profile-context"]["params"]["context_weight"] > 0
    # profiles are built on the content weights chosen on validation
    assert chosen["content_weights"]["lexical"] == pytest.approx(
        models["content"]["params"].get("lexical", 0.5))
    # MMR trades accuracy for variety: the re-ranked lists are more diverse
    for name in ("content", "profile"):
        assert models[f"{name} mmr=0.7"]["diversity@10"] > models[name]["diversity@10"]


def test_the_platform_study_compares_linked_and_single_platform_histories(ml_files, wordllama,
                                                                          tmp_path):
    from podrec.evaluate.harness import evaluate_platforms

    records, events = ml_files
    data = prepare(records, events, wordllama, tmp_path / "cache")
    results = evaluate_platforms(data, SplitConfig("random", seed=0), ["itemknn", "content"],
                                 [10], wordllama, tmp_path / "cache")
    models = results["models"]
    assert set(models) == {"itemknn · linked A+B", "itemknn · B only",
                           "content · linked A+B", "content · B only"}
    assert results["data"]["hidden_a_pairs"] > 0
    # what was learned on platform A helps on platform B
    assert models["itemknn · linked A+B"]["ndcg@10"] > models["itemknn · B only"]["ndcg@10"]
    with pytest.raises(ValueError, match="from a history alone"):
        evaluate_platforms(data, SplitConfig("random"), ["ials"], [10], wordllama,
                           tmp_path / "cache")


# -- the intent study ------------------------------------------------------------------------
def test_intent_requests_are_read_merged_and_dated(tmp_path):
    from podrec.evaluate.intent import IntentFileError, read_intents

    requests = read_intents(ML / "tags.csv")
    assert len(requests) == 10  # 12 tag rows; three tags of one movie make one request
    uganda = next(r for r in requests if r.item_id == "movielens:100365")
    assert (uganda.user_id, uganda.text, uganda.time) == (
        "movielens:15", "activist, documentary, uganda", 1425876220.0)
    bad = tmp_path / "intents.csv"
    bad.write_text("user,thing\nu1,x\n")
    with pytest.raises(IntentFileError, match=r"intents.csv: line 1: expected the columns "
                       "user_id, item_id, text, timestamp"):
        read_intents(bad)
    bad.write_text("user_id,item_id,text,timestamp\nu1,i1,calm,1\nu1,i2,news,yesterday\n")
    with pytest.raises(IntentFileError, match="line 3: timestamp: expected Unix seconds, got "
                       "'yesterday'"):
        read_intents(bad)


def test_intent_requests_see_only_the_past_and_their_text_moves_the_scores(ml_files,
                                                                           wordllama, tmp_path):
    from dataclasses import replace

    from scipy import sparse

    from podrec.evaluate.intent import SESSION_SECONDS, make_intent_fold, read_intents
    from podrec.model.profile import ProfileModel

    records, events = ml_files
    data = prepare(records, events, wordllama, tmp_path / "cache")
    fold = make_intent_fold(data, read_intents(ML / "tags.csv"), wordllama, tmp_path / "cache")
    assert len(fold.requests) >= 4
    times = sparse.csr_matrix(fold.batch.history_times)
    for n, (req, target) in enumerate(zip(fold.requests, fold.targets, strict=True)):
        row = times[n]
        assert row.nnz >= 5 and row.data.max() < req.time - SESSION_SECONDS
        assert target not in row.indices
        assert data.catalog.ids[target] == req.item_id
        assert np.linalg.norm(fold.batch.intent_vectors[n]) > 0
    model = ProfileModel(intent_weight=2.0).fit(data.catalog, data.interactions)
    with_intent = model.score(fold.batch)
    without = model.score(replace(fold.batch, intent_vectors=None))
    for n in range(len(fold.requests)):
        expected = 2.0 * model.weights.cosine * model.content.index.similarities(
            fold.batch.intent_vectors[n])
        np.testing.assert_allclose(with_intent[n] - without[n], expected, atol=1e-4)


def test_intent_study_from_the_command_line(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODREC_")}
    proc = subprocess.run(
        [sys.executable, "-m", "podrec.cli", "evaluate", "--catalog", str(ML / "movies.csv"),
         "--events", str(ML / "ratings.csv"), "--intents", str(ML / "tags.csv"),
         "--out", str(out), "--embedder", "wordllama", "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"]["protocol"] == "intent"
    assert set(results["models"]) == {"profile (no context)", "profile + intent",
                                      "profile + intent, read", "intent text alone"}
    assert "profile + intent, read - profile + intent" in results["differences"]
    assert results["data"]["read_as"]["reader"] == "rules"
    assert results["chosen"]["intent_weight"] in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    data = results["data"]
    assert data["validation_requests"] + data["test_requests"] == data["requests"] >= 4
    diff = results["differences"]["profile + intent - profile (no context)"]
    assert diff["ci95"][0] <= diff["ndcg@10"] <= diff["ci95"][1]
    assert (out / "results.md").read_text().startswith("Intent study, seed 0")
    missing = subprocess.run(
        [sys.executable, "-m", "podrec.cli", "evaluate", "--catalog", str(ML / "movies.csv"),
         "--events", str(ML / "ratings.csv"), "--intents", str(tmp_path / "none.csv")],
        capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and "none.csv: no such file" in missing.stderr


def test_a_read_intent_drops_exclusions_and_gives_each_topic_its_share():
    from podrec.evaluate.intent import ReadIntents
    from podrec.llm.intents import Intent
    from podrec.model.base import CatalogData

    class TopicEmbedder:  # "crime" and "comedy" point two ways; a fixed map, no model
        model_id = "two-topics"

        def embed_queries(self, texts):
            return np.array([[1.0, 0.0] if "crime" in t else [0.0, 1.0] for t in texts],
                            np.float32)

    vectors = np.array([[1, 0]] * 8 + [[0, 1]] * 4, np.float32)
    titles = [f"crime {n}" for n in range(8)] + ["politics hour"] + [f"comedy {n}"
                                                                     for n in range(3)]
    catalog = CatalogData(ids=[str(n) for n in range(12)], kinds=["show"] * 12,
                          vectors=vectors, titles=titles)
    intents = [Intent("crime and comedy", topics=["crime", "comedy"]),
               Intent("comedy, no politics", topics=["comedy"], exclusions=["politics"])]
    reader = ReadIntents(intents, catalog, TopicEmbedder(), None, topic_balance=1.0)
    assert reader.counts() == {"several_topics": 1, "exclusions": 1}
    ranked = np.arange(12)  # every crime show scores above every comedy show
    both = reader.apply(0, ranked, 6)
    assert sorted(both.tolist()) == [0, 1, 2, 8, 9, 10]  # three slots each
    assert reader.apply(1, ranked[8:], 3).tolist() == [9, 10, 11]  # politics dropped
    off = ReadIntents(intents, catalog, TopicEmbedder(), None, topic_balance=0.0)
    assert off.apply(0, ranked, 6).tolist() == [0, 1, 2, 3, 4, 5]


def test_profile_parameters_can_be_fixed_in_advance(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODREC_")}
    base = [sys.executable, "-m", "podrec.cli", "evaluate", "--catalog", str(ML / "movies.csv"),
            "--events", str(ML / "ratings.csv"), "--models", "profile", "--embedder",
            "wordllama", "--cache", str(tmp_path / "cache"), "--out", str(out)]
    proc = subprocess.run([*base, "--profile-params", "max_interests=3,half_life_days=45"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    params = results["models"]["profile"]["params"]
    assert (params["max_interests"], params["half_life_days"]) == (3, 45.0)
    assert results["protocol"]["fixed"] == {"profile": {"max_interests": 3,
                                                        "half_life_days": 45.0}}
    assert proc.stderr.count("validation profile ") == 1  # one setting, not the grid
    bad = subprocess.run([*base, "--profile-params", "max_interests=five"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 2 and "max_interests: expected a number, got 'five'" in bad.stderr
    bad = subprocess.run([*base, "--profile-params", "interests=5"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 2 and "expected name=value with a name among" in bad.stderr
