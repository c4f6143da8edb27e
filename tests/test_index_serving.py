"""The served catalog through the approximate index: `index.kind = "ann"` puts the sample
catalog's e5 vectors in an HNSW graph kept in the store, and similar-item lists come from it."""

from __future__ import annotations

from dataclasses import replace

from conftest import SAMPLE

from podrec.config import Config
from podrec.model.content import ContentModel
from podrec.model.hybrid import parts_of
from podrec.model.profile import ProfileModel
from podrec.service import Podrec


def test_similar_items_through_the_stored_hnsw_index(tmp_path, e5):
    base = Config()
    cfg = replace(base, index=replace(base.index, kind="ann"),
                  tagger=replace(base.tagger, keyphrases=0))
    url = f"sqlite:///{tmp_path / 'ann.db'}"
    app = Podrec(cfg, database_url=url, embedder=e5)
    exact = Podrec(replace(cfg, index=replace(cfg.index, kind="exact")), database_url=url,
                   embedder=e5)
    try:
        app.ingest_catalog(SAMPLE / "catalog.jsonl")
        app.enrich()
        model = app.model("show")
        assert model.index.kind == "ann"
        assert exact.model("show").index.kind == "exact"
        names = [n for n, _, _ in app.store.artifact_versions("index:")]
        assert names and names[0].endswith(":show")  # kept in the store
        for seed in ("1028908750", "1322200189"):
            got = [r.id for r in app.similar(seed, k=5)]
            want = [r.id for r in exact.similar(seed, k=5)]
            assert len(set(got) & set(want)) >= 4  # the graph finds the same neighbours
            assert seed not in got
        # the trained model's rebuilt content parts search the same graph, not every vector
        app.train("show")
        served = app.models.pipeline("show").served
        assert served.version is not None
        searched = [p.index if isinstance(p, ContentModel) else p.content.index
                    for p in parts_of(served.model).values()
                    if isinstance(p, ContentModel | ProfileModel)]
        model = app.model("show")
        assert model.index.kind == "ann"
        assert searched and all(i is model.index for i in searched)  # one graph in memory
        # a new show is added to the stored graph in place, not rebuilt
        new = tmp_path / "new.jsonl"
        new.write_text('{"id": "new-crime", "title": "Cold case files", "description": '
                       '"True crime stories of unsolved murders and missing persons.", '
                       '"categories": ["True Crime"]}\n', encoding="utf-8")
        app.ingest_catalog(new)
        app.enrich()
        model = app.model("show")
        report = model.index.stored.last_update
        assert report.added == 1 and not report.rebuilt
        assert model.index.search(model.catalog.vectors[model.catalog.row_of("new-crime")],
                                  1)[0].tolist() == [model.catalog.row_of("new-crime")]
    finally:
        app.close()
        exact.close()
