"""The catalog's arrays and the content model's derived arrays: built once per catalog version,
saved, and loaded (not rebuilt) by the next process; a catalog change means a rebuild."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from podrec.config import Config
from podrec.model.content import ContentArrays, ContentModel, ContentWeights
from podrec.records import ItemRecord
from podrec.service import Podrec
from podrec.service.catalog_cache import CatalogCache, cache_root

SAMPLE = Path(__file__).parents[1] / "src" / "podrec" / "data" / "sample" / "catalog.jsonl"

# One CLI-like process: open the store, answer a similar-items request, report what it built
# and what it loaded.
CHILD = """
import json, sys
from dataclasses import replace
from podrec.config import Config
from podrec.model.content import ContentArrays
from podrec.service import Podrec

cfg = Config()
cfg = replace(cfg, embedder=replace(cfg.embedder, name="wordllama"),
              index=replace(cfg.index, cache_dir=sys.argv[2]),
              llm=replace(cfg.llm, backend="none", reasons=False, summaries=False))
app = Podrec(cfg, database_url=sys.argv[1])
similar = [r.id for r in app.similar(sys.argv[3], k=5)]
cache = app.models.disk_cache
print(json.dumps({"builds": ContentArrays.builds, "loads": cache.loads, "saves": cache.saves,
                  "similar": similar}))
app.close()
"""


def _config(cache_dir: str = "", enabled: bool = True) -> Config:
    cfg = Config()
    return replace(cfg, embedder=replace(cfg.embedder, name="wordllama"),
                   index=replace(cfg.index, cache_dir=cache_dir, catalog_cache=enabled),
                   llm=replace(cfg.llm, backend="none", reasons=False, summaries=False))


def _enriched(url: str, wordllama, cache_dir: str = "") -> Podrec:
    app = Podrec(_config(cache_dir), database_url=url, embedder=wordllama)
    app.ingest_catalog(SAMPLE)
    app.enrich()
    return app


def _child(url: str, cache_dir: str, item: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, url, cache_dir, item],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sets(root: Path) -> set[Path]:
    """The saved sets under a cache root."""
    return {p.parent for p in root.rglob("catalog.json") if not p.parent.name.startswith(".")}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_second_process_loads_the_arrays_and_a_catalog_change_rebuilds_them(
        backend, request, tmp_path, wordllama):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    cache_dir = str(tmp_path / "cache")
    app = _enriched(url, wordllama, cache_dir)
    seed = next(app.store.iter_items(kind="show")).id
    app.close()
    assert not _sets(Path(cache_dir))  # enrich builds no model

    first = _child(url, cache_dir, seed)
    assert (first["builds"], first["saves"], first["loads"]) == (1, 1, 0)
    (saved,) = _sets(Path(cache_dir))
    mtimes = {p: p.stat().st_mtime_ns for p in saved.rglob("*")}

    second = _child(url, cache_dir, seed)
    assert (second["builds"], second["saves"], second["loads"]) == (0, 0, 1)
    assert second["similar"] == first["similar"]
    assert {p: p.stat().st_mtime_ns for p in saved.rglob("*")} == mtimes  # read, not written

    # another process changes the catalog: the saved set no longer answers for it
    app = Podrec(_config(cache_dir), database_url=url, embedder=wordllama)
    app.store.upsert_items([ItemRecord(
        id="new-show", title="Cold Case Files Weekly", categories=["True Crime"],
        language="en", description="Detectives reopen unsolved murders and missing persons "
                                   "cases, one cold case at a time.")])
    app.enrich()
    app.close()
    third = _child(url, cache_dir, seed)
    assert (third["builds"], third["saves"], third["loads"]) == (1, 1, 0)
    assert len(_sets(Path(cache_dir))) == 2 and saved in _sets(Path(cache_dir))
    fourth = _child(url, cache_dir, "new-show")
    assert (fourth["builds"], fourth["loads"]) == (0, 1)
    assert fourth["similar"]  # the new show is in the loaded catalog


def test_loaded_arrays_answer_exactly_as_built_ones(sqlite_url, wordllama):
    built_app = _enriched(sqlite_url, wordllama)
    builds = ContentArrays.builds
    built = built_app.models.content("show")
    assert ContentArrays.builds == builds + 1
    loaded_app = Podrec(_config(), database_url=sqlite_url, embedder=wordllama)
    loaded = loaded_app.models.content("show")
    assert ContentArrays.builds == builds + 1  # loaded, not built again
    assert loaded_app.models.disk_cache.loads == 1
    # memory-mapped from the saved files
    assert isinstance(loaded.catalog.vectors.base, np.memmap) or \
        isinstance(loaded.catalog.vectors, np.memmap)
    assert loaded.catalog.ids == built.catalog.ids
    assert (loaded._tfidf != built._tfidf).nnz == 0
    for row in (0, 5, 17):
        a, b = built.similar_items(row, 10), loaded.similar_items(row, 10)
        assert a.rows.tolist() == b.rows.tolist()
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    # the listener-facing path works on read-only, memory-mapped arrays
    seed = loaded.catalog.ids[3]
    assert [r.id for r in loaded_app.similar(seed, k=5)] == \
        [r.id for r in built_app.similar(seed, k=5)]
    assert [r.id for r in loaded_app.search("murder mysteries", k=5)] == \
        [r.id for r in built_app.search("murder mysteries", k=5)]
    seeds = tuple(loaded.catalog.ids[i] for i in (1, 8, 30))
    assert [r.id for r in loaded_app.recommend(seeds=seeds, k=8)] == \
        [r.id for r in built_app.recommend(seeds=seeds, k=8)]
    built_app.close()
    loaded_app.close()


def test_every_content_model_of_one_catalog_shares_one_build(sqlite_url, wordllama):
    app = _enriched(sqlite_url, wordllama)
    data = app.catalog.data(app.models.model_id, "show")  # a new catalog object
    builds = ContentArrays.builds
    models = [ContentModel(ContentWeights(lexical=w)).fit(data) for w in (0.0, 0.5, 1.0)]
    assert ContentArrays.builds == builds + 1
    assert models[0]._tfidf is models[2]._tfidf
    app.close()


def test_a_damaged_set_is_rebuilt_and_an_off_cache_writes_nothing(tmp_path, wordllama):
    url = f"sqlite:///{tmp_path / 'podrec.db'}"
    app = _enriched(url, wordllama)
    expected = [r.id for r in app.similar(app.models.data("show").ids[0], k=5)]
    app.close()
    root = cache_root(url)
    assert root == tmp_path / "podrec.db.cache"
    (saved,) = _sets(root)
    (saved / "content" / "meta.json").write_text("{not json", encoding="utf-8")
    app = Podrec(_config(), database_url=url, embedder=wordllama)
    builds = ContentArrays.builds
    got = [r.id for r in app.similar(app.models.data("show").ids[0], k=5)]
    assert got == expected and ContentArrays.builds == builds + 1
    app.close()

    url2 = f"sqlite:///{tmp_path / 'off.db'}"
    app = Podrec(_config(enabled=False), database_url=url2, embedder=wordllama)
    app.ingest_catalog(SAMPLE)
    app.enrich()
    app.similar(app.models.data("show").ids[0], k=5)
    assert app.models.disk_cache is None
    assert not (tmp_path / "off.db.cache").exists()
    app.close()


def test_cache_roots():
    assert cache_root("sqlite:///:memory:") is None
    assert cache_root("sqlite://") is None
    pg = cache_root("postgresql+psycopg://u:secret@db/podrec", "/var/cache/podrec")
    assert pg is not None and pg.parent == Path("/var/cache/podrec")
    # the password is not part of the name: one database, one folder
    assert pg == cache_root("postgresql+psycopg://u:other@db/podrec", "/var/cache/podrec")
    assert CatalogCache.key("m", "show", 1000, (1, "a")) != \
        CatalogCache.key("m", "show", 1000, (2, "a"))


def test_a_shared_cache_folder_drops_databases_unused_for_a_week(tmp_path):
    import os
    import time

    from podrec.model.base import CatalogData

    shared = tmp_path / "shared"
    stale, fresh, foreign = shared / ("a" * 16), shared / ("b" * 16), shared / "notes"
    for folder in (stale, fresh, foreign):
        (folder / "m--show").mkdir(parents=True)
    week_ago = time.time() - 8 * 86400
    for path in (stale / "m--show", stale, foreign / "m--show", foreign):
        os.utime(path, (week_ago, week_ago))
    data = CatalogData(ids=["a", "b"], kinds=["show", "show"],
                       vectors=np.eye(2, dtype=np.float32), titles=["A", "B"],
                       texts=["alpha show", "beta show"])
    cache = CatalogCache(cache_root("postgresql://db/x", str(shared)))
    assert cache.save("m", "show", "k1", data, ContentArrays.build(data)) is not None
    assert not stale.exists()  # another database's sets, untouched for a week
    assert fresh.exists() and foreign.exists()  # recent, or not a database folder
    loaded = cache.load("m", "show", "k1")
    assert loaded is not None and loaded.ids == ["a", "b"]
