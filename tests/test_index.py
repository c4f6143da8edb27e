"""Vector indexes: exact and HNSW behind one interface, the factory, and the stored index."""

import numpy as np
import pytest
from sqlalchemy import delete

from podrec.config import ConfigError, IndexConfig, load_config
from podrec.index import ExactIndex, VectorIndex, choose_kind, load_index, make_index
from podrec.index.ann import ANNIndex
from podrec.index.persist import StoredIndex
from podrec.records import ItemRecord
from podrec.storage import Store
from podrec.storage.schema import embeddings

DIM = 64


def clustered(n: int, dim: int = DIM, clusters: int = 200, seed: int = 0) -> np.ndarray:
    """Unit vectors around a shared direction, in clusters with anisotropic spread (a
    power-law spectrum over the dimensions), as text embeddings are."""
    rng = np.random.default_rng(seed)
    scales = np.arange(1, dim + 1) ** -0.3
    scales /= np.sqrt((scales ** 2).sum())
    common = rng.standard_normal(dim)
    common /= np.linalg.norm(common)
    centres = rng.standard_normal((clusters, dim)) * scales
    labels = rng.integers(0, clusters, n)
    noise = rng.standard_normal((n, dim)) * scales[rng.permutation(dim)]
    v = (common + 0.4 * centres[labels] + 0.4 * noise).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(),
                                                                       truth.tolist(),
                                                                       strict=True)]))


@pytest.fixture(scope="module")
def corpus():
    v = clustered(20_200, seed=1)
    return v[:20_000], v[20_000:]


@pytest.fixture(scope="module")
def ann(corpus):
    return ANNIndex(corpus[0], "cosine")


def test_both_indexes_answer_the_interface():
    v = clustered(300)
    for idx in (ExactIndex(v), ANNIndex(v), make_index(v, kind="ann"), make_index(v)):
        assert isinstance(idx, VectorIndex)
        assert len(idx) == 300 and idx.vectors.shape == (300, DIM)
        rows, sims = idx.search(v[7], 5)
        assert rows.dtype == np.int64 and sims.dtype == np.float32 and rows[0] == 7
        assert np.all(np.diff(sims) <= 1e-6)
        np.testing.assert_allclose(idx.similarities(v[7], rows), sims, atol=1e-5)
        rows2, _ = idx.search(v[7], 5, exclude=np.array([7]))
        assert 7 not in rows2 and len(rows2) == 5
        batch_rows, batch_sims = idx.search_batch(v[:4], 3)
        assert batch_rows.shape == (4, 3) and list(batch_rows[:, 0]) == [0, 1, 2, 3]


def test_search_each_answers_as_one_search_per_query(corpus, ann):
    """The few searches of one request in one call: each answer is the one ``search`` gives,
    excluded rows left out of every one."""
    base, queries = corpus
    exclude = np.array([3, 99, 1234, 2500])
    for idx in (ExactIndex(base[:3000]), ann):
        qs = np.vstack([queries[:3], base[3]])  # the last one's nearest row is excluded
        each = idx.search_each(qs, 40, exclude)
        assert len(each) == 4
        for q, (rows, sims) in zip(qs, each, strict=True):
            one_rows, one_sims = idx.search(q, 40, exclude)
            assert rows.tolist() == one_rows.tolist()
            np.testing.assert_allclose(sims, one_sims, atol=1e-6)
            assert len(rows) == 40 and not set(rows.tolist()) & set(exclude.tolist())
        assert [len(r) for r, _ in idx.search_each(qs, 0)] == [0, 0, 0, 0]


def test_ann_recall_against_exact_search(corpus, ann):
    base, queries = corpus
    truth, _ = ExactIndex(base).search_batch(queries, 10)
    found, sims = ann.search_batch(queries, 10)
    assert recall_at(found, truth) >= 0.95
    single = np.vstack([ann.search(q, 10)[0] for q in queries[:50]])
    assert recall_at(single, truth[:50]) >= 0.95
    # similarities stay exact, whatever the graph found
    exact = ExactIndex(base)
    np.testing.assert_allclose(ann.similarities(queries[0]), exact.similarities(queries[0]),
                               atol=1e-6)


def test_a_search_beam_is_its_own(corpus):
    """``beam`` widens or narrows one search's walk of the graph without changing the
    index's setting: a narrow beam finds fewer true neighbours, a wide one at least as many,
    the default (``ef_search``) the same as a beam of ``ef_search``; every answer holds
    ``k`` rows with excluded rows left out, and an exact index ignores the beam."""
    base, queries = corpus
    idx = ANNIndex(base, "cosine", m=4, ef_construction=20, ef_search=64)
    truth, _ = ExactIndex(base).search_batch(queries, 10)
    exclude = truth[:, 0]

    def recall(beam):
        found = [idx.search_each(q[None, :], 10, exclude[[i]], beam=beam)[0][0]
                 for i, q in enumerate(queries)]
        assert all(len(f) == 10 and exclude[i] not in f for i, f in enumerate(found))
        return recall_at(np.vstack(found), truth[:, 1:])

    narrow, default, wide = recall(1), recall(None), recall(400)
    assert narrow < default <= wide and recall(64) == default
    assert idx.ef_search == 64
    exact = ExactIndex(base[:3000])
    assert [r.tolist() for r, _ in exact.search_each(queries[:3], 10, beam=1)] == \
        [exact.search(q, 10)[0].tolist() for q in queries[:3]]


def test_removed_rows_are_never_returned_and_added_rows_are_found(corpus):
    base, queries = corpus
    for idx in (ExactIndex(base[:5000]), ANNIndex(base[:5000])):
        before, _ = idx.search_batch(queries, 10)
        gone = np.unique(before[:, :5])  # the best answers of every query
        idx.remove(gone)
        idx.remove(gone[:3])  # removing twice is harmless
        after, _ = idx.search_batch(queries, 10)
        assert not np.isin(after, gone).any()
        for q in queries[:20]:
            rows, _ = idx.search(q, 10, exclude=np.array([0, 1]))
            assert not np.isin(rows, gone).any() and len(rows) == 10
        assert np.all(np.isneginf(idx.similarities(queries[0])[gone]))
        new = idx.add(queries[:10] * 1.0)
        assert list(new) == list(range(5000, 5010)) and len(idx) == 5010
        for i, q in enumerate(queries[:10]):
            assert idx.search(q, 1)[0][0] == new[i]
        np.testing.assert_allclose(idx.vector(new), queries[:10], atol=1e-6)


def test_ann_keeps_its_size_under_churn():
    v = clustered(2000, seed=3)
    idx = ANNIndex(v[:1000])
    for step in range(5):
        idx.remove(np.arange(step * 200, step * 200 + 200))
        idx.add(v[1000 + step * 200: 1200 + step * 200])
    assert idx._graph.get_current_count() == 1000  # deleted slots reused
    truth, _ = ExactIndex(v[1000:]).search_batch(v[1000:1100], 10)
    truth += 1000
    found, _ = idx.search_batch(v[1000:1100], 10)
    assert (found >= 1000).all()
    assert recall_at(found, truth) >= 0.95


def test_search_for_more_than_ef_or_than_is_left():
    v = clustered(500, seed=4)
    idx = ANNIndex(v, ef_search=16)
    rows, _ = idx.search(v[0], 100)
    assert len(rows) == 100 and len(set(rows.tolist())) == 100
    assert idx.ef_search == 16 and len(idx.search(v[0], 1000)[0]) == 500
    idx.remove(np.arange(495))
    rows, _ = idx.search(v[0], 10)
    assert sorted(rows) == [495, 496, 497, 498, 499]
    r, s = idx.search_batch(v[:2], 10)
    assert (r[:, 5:] == -1).all() and np.isneginf(s[:, 5:]).all()
    empty = ANNIndex(np.zeros((0, DIM), np.float32))
    assert len(empty.search(v[0], 5)[0]) == 0
    empty.add(v[:3])
    assert empty.search(v[2], 1)[0][0] == 2


def test_euclidean_metric_matches_exact():
    rng = np.random.default_rng(5)
    v = (clustered(3000, seed=5) * rng.uniform(0.5, 3.0, (3000, 1))).astype(np.float32)
    exact, ann = ExactIndex(v, "euclidean"), ANNIndex(v, "euclidean")
    q = v[:50] + 0.01
    truth, tsims = exact.search_batch(q, 10)
    found, fsims = ann.search_batch(q, 10)
    assert recall_at(found, truth) >= 0.95
    np.testing.assert_allclose(ann.similarities(q[0]), exact.similarities(q[0]), atol=1e-4)
    np.testing.assert_allclose(fsims[:, 0], tsims[:, 0], atol=1e-4)


def test_save_and_load_give_identical_results(tmp_path, corpus):
    base, queries = corpus
    for idx in (ExactIndex(base[:3000]), ANNIndex(base[:3000], ef_search=40)):
        idx.remove(np.arange(0, 3000, 7))
        idx.add(queries[:5])
        path = tmp_path / f"{idx.kind}.idx"
        idx.save(path)
        back = load_index(path)
        assert type(back) is type(idx) and len(back) == len(idx)
        assert back.metric == idx.metric and (back.removed == idx.removed).all()
        live = ~idx.removed
        np.testing.assert_array_equal(back.vectors[live], idx.vectors[live])
        for q in queries[5:40]:
            r1, s1 = idx.search(q, 10, exclude=np.array([1, 2]))
            r2, s2 = back.search(q, 10, exclude=np.array([1, 2]))
            np.testing.assert_array_equal(r1, r2)
            np.testing.assert_array_equal(s1, s2)
        assert type(idx).load(path).to_bytes() == back.to_bytes()
    assert ANNIndex.load(tmp_path / "ann.idx").ef_search == 40


def test_auto_picks_by_threshold():
    v = clustered(100)
    assert isinstance(make_index(v, ann_threshold=101), ExactIndex)
    assert isinstance(make_index(v, ann_threshold=100), ANNIndex)
    assert isinstance(make_index(v, kind="exact", ann_threshold=1), ExactIndex)
    cfg = IndexConfig(kind="auto", ann_threshold=50, m=8, ef_construction=40, ef_search=20)
    idx = make_index(v, config=cfg)
    assert isinstance(idx, ANNIndex) and (idx.m, idx.ef_construction, idx.ef_search) == (
        8, 40, 20)
    assert choose_kind(10**6) == "ann" and choose_kind(10) == "exact"
    with pytest.raises(ValueError, match="unknown index kind"):
        make_index(v, kind="fast")


def test_index_configuration(tmp_path):
    toml = tmp_path / "podrec.toml"
    toml.write_text("[index]\nkind = 'ann'\nann_threshold = 5000\nef_search = 128\n")
    cfg = load_config(toml, env={}).index
    assert (cfg.kind, cfg.ann_threshold, cfg.ef_search, cfg.m) == ("ann", 5000, 128, 16)
    cfg = load_config(toml, env={"PODREC_INDEX": "exact", "PODREC_ANN_THRESHOLD": "7"}).index
    assert (cfg.kind, cfg.ann_threshold) == ("exact", 7)
    toml.write_text("[index]\nkind = 'hnsw'\n")
    with pytest.raises(ConfigError, match="index.kind: expected one of auto, exact, ann"):
        load_config(toml, env={})
    toml.write_text("[index]\nm = 1\n")
    with pytest.raises(ConfigError, match="index.m: expected at least 2"):
        load_config(toml, env={})


# -- the stored index ----------------------------------------------------------------------
MODEL = "test-model/1"


def put_items(store: Store, vectors: dict[str, np.ndarray]) -> dict[str, int]:
    """Items with these ids and their vectors; returns id -> pk."""
    store.upsert_items([ItemRecord(id=i, title=f"Show {i}", kind="show") for i in vectors])
    pks = {i: store.get_item(i).pk for i in vectors}
    store.save_embeddings(MODEL, [(pks[i], f"h-{i}-{hash(v.tobytes())}", v)
                                  for i, v in vectors.items()])
    return pks


def drop_vectors(store: Store, pks: list[int]) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(embeddings).where(embeddings.c.item_pk.in_(pks)))


@pytest.mark.parametrize(("kind", "block"), [("exact", 16384), ("ann", 16384), ("ann", 7)])
def test_stored_index_updates_in_place(tmp_path, monkeypatch, kind, block):
    from podrec.index import persist

    # block 7: the stored vectors are compared with the store's a few rows at a time
    monkeypatch.setattr(persist, "COMPARE_ROWS", block)
    url = "sqlite:///" + str(tmp_path / "podrec.db")
    store = Store(url)
    v = clustered(600, seed=7)
    pks = put_items(store, {f"s{i}": v[i] for i in range(500)})
    cfg = IndexConfig(kind=kind)

    first = StoredIndex(store, MODEL, "show", cfg)
    idx = first.index()
    assert first.builds == 1 and first.last_update.rebuilt and idx.kind == kind
    assert len(idx) == 500 and store.get_artifact(first.name) is not None
    assert first.search(v[3], 1)[0][0] == pks["s3"]

    # another process: loads the saved index, nothing to do
    second = StoredIndex(Store(url), MODEL, "show", cfg)
    assert len(second.index()) == 500 and second.builds == 0
    assert not second.last_update.saved
    rows_before = second.rows_of([pks[f"s{i}"] for i in range(500)])

    # the catalog changes: 50 new items, 20 gone, 10 re-embedded
    new = put_items(store, {f"s{i}": v[i] for i in range(500, 550)})
    gone = [pks[f"s{i}"] for i in range(20)]
    drop_vectors(store, gone)
    changed_vecs = clustered(10, seed=99)
    store.save_embeddings(MODEL, [(pks[f"s{i}"], f"new-{i}", changed_vecs[i - 100])
                                  for i in range(100, 110)])

    third = StoredIndex(Store(url), MODEL, "show", cfg)
    idx = third.index()
    report = third.last_update
    assert third.builds == 0 and not report.rebuilt and report.saved
    assert (report.added, report.removed, report.changed) == (50, 20, 10)
    assert len(idx) == 500 + 50 + 10  # rows are appended, never renumbered
    assert (third.rows_of(gone) == -1).all()
    kept = [pks[f"s{i}"] for i in range(20, 500) if not 100 <= i < 110]
    kept_rows = np.array([r for r, p in zip(rows_before, pks.values(), strict=True)
                          if p in set(kept)])
    np.testing.assert_array_equal(third.rows_of(kept), kept_rows)  # untouched rows stay put
    for i in range(500, 550):
        assert third.search(v[i], 1)[0][0] == new[f"s{i}"]
    for i in range(100, 110):
        assert third.search(changed_vecs[i - 100], 1)[0][0] == pks[f"s{i}"]
    found, _ = third.search(v[5], 50, exclude_pks=[pks["s30"]])
    assert not set(gone) & set(found.tolist()) and pks["s30"] not in found
    live_pks, matrix = store.load_vectors(MODEL, "show")
    assert sorted(third.pks[third.pks >= 0].tolist()) == sorted(live_pks.tolist())

    # the update was saved: a fourth process has nothing left to do
    fourth = StoredIndex(Store(url), MODEL, "show", cfg)
    fourth.index()
    assert fourth.builds == 0 and not fourth.last_update.saved and len(fourth.index()) == 560
    np.testing.assert_array_equal(fourth.search(v[200], 10)[0], third.search(v[200], 10)[0])


def test_stored_index_rebuilds_when_the_kind_changes(tmp_path):
    store = Store("sqlite:///" + str(tmp_path / "podrec.db"))
    v = clustered(300, seed=8)
    put_items(store, {f"s{i}": v[i] for i in range(300)})
    small = StoredIndex(store, MODEL, "show", IndexConfig(ann_threshold=1000))
    assert small.index().kind == "exact" and small.builds == 1
    big = StoredIndex(store, MODEL, "show", IndexConfig(ann_threshold=200))
    assert big.index().kind == "ann" and big.builds == 1
    assert big.last_update.reason == "kind exact -> ann"
    again = StoredIndex(store, MODEL, "show", IndexConfig(ann_threshold=200, ef_search=99))
    assert again.index().kind == "ann" and again.builds == 0 and again.index().ef_search == 99
    empty = StoredIndex(store, "no-such-model", None, IndexConfig())
    assert len(empty.index()) == 0 and len(empty.search(v[0], 5)[0]) == 0


def test_a_loaded_hnsw_index_reads_the_catalogs_own_vectors(tmp_path):
    """Refreshed with the very rows it holds (a catalog's memory-mapped vectors), a saved HNSW
    index keeps no copy of its own, and answers as the copy read back from the graph does;
    once the rows differ (an item gone), it reads its own copy back again."""
    url = "sqlite:///" + str(tmp_path / "podrec.db")
    store = Store(url)
    v = clustered(400, seed=11)
    pks = put_items(store, {f"s{i}": v[i] for i in range(400)})
    cfg = IndexConfig(kind="ann")
    StoredIndex(store, MODEL, "show", cfg).index()  # built and saved

    live_pks, matrix = store.load_vectors(MODEL, "show")
    np.save(tmp_path / "vectors.npy", matrix)
    mapped = np.load(tmp_path / "vectors.npy", mmap_mode="r")  # as the catalog cache maps them
    shared = StoredIndex(Store(url), MODEL, "show", cfg)
    shared.refresh(live_pks, mapped)
    assert shared.builds == 0 and not shared.last_update.changed
    assert np.shares_memory(shared.index().vectors, mapped)
    own = StoredIndex(Store(url), MODEL, "show", cfg)  # reads its vectors from the store
    own.index()
    assert not np.shares_memory(own.index().vectors, mapped)
    np.testing.assert_allclose(own.index().vectors, shared.index().vectors, atol=1e-6)
    for q in (v[3], v[250], clustered(1, seed=5)[0]):
        a, b = shared.search(q, 10), own.search(q, 10)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], atol=1e-5)
        np.testing.assert_allclose(shared.index().similarities(q, np.arange(20)),
                                   own.index().similarities(q, np.arange(20)), atol=1e-5)

    # rows that are not unit length are not taken for a cosine index's own
    longer = np.ascontiguousarray(matrix * 2.0, dtype=np.float32)
    stretched = StoredIndex(Store(url), MODEL, "show", cfg)
    stretched.refresh(live_pks, longer)
    assert not stretched.last_update.changed  # the same directions
    assert not np.shares_memory(stretched.index().vectors, longer)

    drop_vectors(store, [pks["s7"]])
    fewer_pks, fewer = store.load_vectors(MODEL, "show")
    after = StoredIndex(Store(url), MODEL, "show", cfg)
    after.refresh(fewer_pks, fewer)
    assert after.last_update.removed == 1
    assert not np.shares_memory(after.index().vectors, fewer)
    assert pks["s7"] not in after.search(v[7], 5)[0]
