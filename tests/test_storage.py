"""The store on a real SQLite file and a real PostgreSQL database."""

from datetime import UTC, datetime

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from podrec.records import EventRecord, ItemRecord
from podrec.storage import Store, StoreError
from podrec.storage.schema import events, items, metadata


def show(id_: str, title: str, **kw) -> ItemRecord:
    return ItemRecord(id=id_, title=title, kind="show", **kw)


def episode(id_: str, show_id: str, title: str, **kw) -> ItemRecord:
    return ItemRecord(id=id_, title=title, kind="episode", show_id=show_id, **kw)


def test_migrations_build_exactly_the_declared_schema(db_url):
    store = Store(db_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    store.close()


def test_reingest_is_idempotent_and_changes_are_updates(db_url):
    store = Store(db_url)
    recs = [show("a", "History of Rome", author="Mike Duncan", categories=["History"]),
            episode("a-1", "a", "The Republic", duration_s=1800,
                    published=datetime(2020, 1, 1, tzinfo=UTC))]
    first = store.upsert_items(recs)
    assert (first.added, first.updated, first.skipped) == (2, 0, 0)
    again = store.upsert_items(recs)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    changed = store.upsert_items([show("a", "History of Rome", author="Mike Duncan",
                                       categories=["History"], description="Now with notes")])
    assert (changed.added, changed.updated) == (0, 1)
    item = store.get_item("a")
    assert item.description == "Now with notes"
    assert store.get_item("a-1").published == datetime(2020, 1, 1, tzinfo=UTC)
    assert store.count_items() == {"show": 1, "episode": 1}
    store.close()


def test_duplicates_are_matched_by_feed_url_guid_enclosure_and_title_author(db_url):
    store = Store(db_url)
    store.upsert_items([
        show("s1", "The Daily", author="The New York Times", feed_url="https://f/daily"),
        episode("e1", "s1", "Monday", guid="guid-1", audio_url="https://a/1.mp3"),
        episode("e2", "s1", "Tuesday", audio_url="https://a/2.mp3"),
    ])
    report = store.upsert_items([
        show("other-id", "Something", feed_url="https://f/daily"),          # same feed URL
        show("third-id", "the daily!", author="The New York Times"),        # same title+author
        episode("x1", "s1", "Monday (again)", guid="guid-1"),               # same GUID
        episode("x2", "s1", "Tuesday (mirror)", audio_url="https://a/2.mp3"),  # same enclosure
        show("new", "The Daily", author="Someone Else"),                     # a different show
    ])
    assert report.duplicates == 4
    assert report.added == 1
    assert store.count_items() == {"show": 2, "episode": 2}
    store.close()


def test_a_show_and_an_episode_may_share_an_id(db_url):
    store = Store(db_url)
    store.upsert_items([show("1", "A show"), episode("1", "1", "An episode")])
    assert store.get_item("1").kind == "show"
    assert store.get_item("1", kind="episode").title == "An episode"
    store.close()


def test_interrupted_ingest_keeps_whole_chunks_and_a_rerun_completes(db_url, monkeypatch):
    import podrec.storage.store as store_module

    monkeypatch.setattr(store_module, "CHUNK", 10)
    store = Store(db_url)
    recs = [show(f"s{i}", f"Show number {i}") for i in range(35)]

    def interrupted():
        for i, rec in enumerate(recs):
            if i == 25:
                raise KeyboardInterrupt
            yield rec

    with pytest.raises(KeyboardInterrupt):
        store.upsert_items(interrupted())
    with store.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(items)).scalar_one()
    assert stored == 20  # two whole chunks, nothing half-written
    report = store.upsert_items(recs)
    assert (report.added, report.unchanged) == (15, 20)
    assert store.count_items() == {"show": 35}
    store.close()


def test_embeddings_round_trip_and_are_found_by_content_hash(db_url):
    store = Store(db_url)
    store.upsert_items([show("a", "A"), show("b", "B")])
    pk_a, pk_b = store.get_item("a").pk, store.get_item("b").pk
    va = np.arange(4, dtype=np.float32)
    store.save_embeddings("m", [(pk_a, "h1", va), (pk_b, "h2", va * 2)])
    pks, matrix = store.load_vectors("m", kind="show")
    assert pks.tolist() == [pk_a, pk_b]
    np.testing.assert_array_equal(matrix[1], va * 2)
    assert store.embedding_hashes("m") == {pk_a: "h1", pk_b: "h2"}
    np.testing.assert_array_equal(store.vectors_for_hashes("m", ["h2"])["h2"], va * 2)
    store.save_embeddings("m", [(pk_a, "h3", va + 1)])  # replaced, not duplicated
    assert store.embedding_hashes("m")[pk_a] == "h3"
    assert store.load_vectors("other-model")[0].size == 0
    store.close()


def test_vectors_are_read_in_blocks_into_one_matrix(db_url, monkeypatch):
    from podrec.storage import store as store_module

    monkeypatch.setattr(store_module, "VECTOR_ROWS", 3)  # 10 vectors: blocks of 3, 3, 3, 1
    store = Store(db_url)
    store.upsert_items([show(f"s{i}", f"Show {i}") for i in range(10)])
    pks = [store.get_item(f"s{i}").pk for i in range(10)]
    vectors = np.random.default_rng(1).random((10, 6)).astype(np.float32)
    store.save_embeddings("m", [(pk, f"h{i}", vectors[i]) for i, pk in enumerate(pks)])
    got_pks, matrix = store.load_vectors("m")
    assert got_pks.tolist() == sorted(pks) and matrix.shape == (10, 6)
    order = np.argsort(pks)
    np.testing.assert_array_equal(matrix, vectors[order])
    store.close()


def test_tags_replace_per_source_and_are_queryable(db_url):
    store = Store(db_url)
    store.upsert_items([show("a", "A"), show("b", "B")])
    a, b = store.get_item("a").pk, store.get_item("b").pk
    store.replace_tags({a: [("taxonomy", "History", 0.9), ("keyphrase", "rome", 0.5)],
                        b: [("taxonomy", "History", 0.8)]}, ["taxonomy", "keyphrase"])
    store.replace_tags({a: [("taxonomy", "Politics", 0.7)]}, ["taxonomy"])
    tags = store.tags_for([a])[a]
    assert {(t["source"], t["tag"]) for t in tags} == {("taxonomy", "Politics"),
                                                       ("keyphrase", "rome")}
    assert [i.id for i in store.iter_items(tag="history")] == ["b"]
    assert store.tag_counts(source="taxonomy") == [("History", 1), ("Politics", 1)]
    store.close()


def test_events_are_stored_once_and_create_their_users(db_url):
    store = Store(db_url)
    t = datetime(2026, 1, 1, 8, tzinfo=UTC)
    evs = [EventRecord(user_id="u1", event="play", timestamp=t, item_id="a", value=0.5),
           EventRecord(user_id="u1", event="like", timestamp=t, item_id="a"),
           EventRecord(user_id="u2", event="play", timestamp=t, item_id="b")]
    first = store.add_events(evs + [evs[0]])
    assert first.added == 3
    again = store.add_events(evs)
    assert again.added == 0
    assert store.list_users() == ["u1", "u2"]
    assert [e.event for e in store.user_events("u1")] == ["play", "like"]
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 3
    store.close()


def test_artifacts_round_trip(db_url):
    store = Store(db_url)
    store.put_artifact("weights", {"a": 1.5}, b"\x00\x01")
    store.put_artifact("weights", {"a": 2.5}, None)
    assert store.get_artifact("weights") == ({"a": 2.5}, None)
    assert store.get_artifact("missing") is None
    store.close()


def test_an_artifact_is_read_as_a_stream(db_url):
    import io
    import pickle

    store = Store(db_url)
    arrays = {"a": np.arange(300_000, dtype=np.float32), "b": np.eye(3)}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    store.put_artifact("index", {"kind": "npz"}, buf.getvalue())
    with store.artifact_stream("index") as (meta, stream):
        assert meta == {"kind": "npz"}
        with np.load(stream) as npz:  # a zip: read backwards from its end, then each member
            np.testing.assert_array_equal(npz["b"], arrays["b"])
            np.testing.assert_array_equal(npz["a"], arrays["a"])
        stream.seek(-4, io.SEEK_END)
        tail = stream.read()
        assert tail == buf.getvalue()[-4:] and stream.read() == b""
        stream.seek(0)
        assert stream.read() == buf.getvalue()  # whole, past the 1 MB pieces
    model = {"weights": np.random.default_rng(0).random((600, 600)), "name": "ease"}
    store.put_artifact("model/x", {"v": 1}, pickle.dumps(model, protocol=5))
    with store.artifact_stream("model/x") as (_, stream):
        back = pickle.load(stream)
    assert back["name"] == "ease" and np.array_equal(back["weights"], model["weights"])
    store.put_artifact("empty", {"a": 1}, None)
    with store.artifact_stream("empty") as found:
        assert found == ({"a": 1}, None)
    with store.artifact_stream("missing") as found:
        assert found is None
    store.close()


def test_a_large_artifact_is_stored_in_parts(db_url, monkeypatch):
    """No stored value may pass 1 GB (SQLite and PostgreSQL both refuse it), so a large
    payload goes in parts: read back whole, as a stream across the parts' boundaries, and
    replaced or deleted with all its parts."""
    import io

    from podrec.storage import schema
    from podrec.storage import store as store_module

    monkeypatch.setattr(store_module, "ARTIFACT_PART_BYTES", 1000)
    store = Store(db_url)
    payload = np.random.default_rng(1).integers(0, 256, 5500, dtype=np.uint8).tobytes()
    store.put_artifact("index:big", {"rows": 5}, payload)

    def parts() -> int:
        with store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(schema.artifact_parts)
                                .where(schema.artifact_parts.c.name == "index:big")
                                ).scalar_one()

    assert parts() == 5  # 1000 bytes in the artefact's row, the other 4,500 in 5 parts
    assert store.get_artifact("index:big") == ({"rows": 5}, payload)
    with store.artifact_stream("index:big") as (meta, stream):
        assert meta == {"rows": 5}
        assert stream.read() == payload
        stream.seek(990)  # across the first boundary
        assert stream.read(25) == payload[990:1015]
        stream.seek(-700, io.SEEK_END)  # inside the last, shorter part
        assert stream.read() == payload[-700:]
        stream.seek(2999)
        assert stream.read(2) == payload[2999:3001]
    store.put_artifact("index:big", {"rows": 1}, payload[:1500])  # fewer parts now
    assert parts() == 1 and store.get_artifact("index:big") == ({"rows": 1}, payload[:1500])
    store.put_artifact("index:big", {"rows": 0}, payload[:1000])  # exactly one part's worth
    assert parts() == 0 and store.get_artifact("index:big")[1] == payload[:1000]
    store.put_artifact("index:big", {"rows": 5}, payload)
    store.delete_artifact("index:big")
    assert parts() == 0 and store.get_artifact("index:big") is None
    store.close()


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(StoreError, match="cannot use database"):
        Store("postgresql+psycopg://postgres@127.0.0.1:1/nothing")


def test_same_title_without_an_author_is_not_a_duplicate(db_url):
    store = Store(db_url)
    report = store.upsert_items([show("m1", "Hamlet (2000)"), show("m2", "Hamlet (2000)")])
    assert report.added == 2 and report.duplicates == 0
    store.close()
