"""Batch work on a Ray cluster of two nodes (two raylets on this machine, one CPU each, as
``ray.cluster_utils.Cluster`` starts them): with PostgreSQL the enrich chunks spread over
both nodes and store what enrich here stores; with a SQLite file they all stay on the node
of the process that holds the file."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SAMPLE, import_extra

from podrec.batch import RayRunner
from podrec.batch.enrich import EnrichChunk, enrich_chunk
from podrec.config import Config
from podrec.service import Podrec

ray = import_extra("ray")


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    # the task below wraps the real one and is sent by value: workers cannot import this module
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    small = {"num_cpus": 1, "object_store_memory": 150 * 1024 * 1024}
    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={**small, "include_dashboard": False})
    cluster.add_node(**small)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def located(log: Path) -> Any:
    """The real chunk task, noting the node it ran on."""
    def task(chunk: EnrichChunk) -> dict[str, int]:
        counts = enrich_chunk(chunk)
        with log.open("a", encoding="utf-8") as out:
            out.write(ray.get_runtime_context().get_node_id() + "\n")
        return counts
    return task


class Located(RayRunner):
    """A runner that runs the located chunk task in place of the real one."""

    def __init__(self, log: Path) -> None:
        super().__init__(max_retries=1)
        self.task = located(log)

    def map(self, fn: Any, tasks: Any, *args: Any, **kwargs: Any) -> Any:
        return super().map(self.task, tasks, *args, **kwargs)


def _app(url: str, wordllama: Any, tmp_path: Path) -> Podrec:
    cfg = Config()
    cfg = replace(cfg, llm=replace(cfg.llm, reasons=False, summaries=False),
                  ray=replace(cfg.ray, chunk_items=16))
    app = Podrec(cfg, database_url=url, embedder=wordllama)
    lines = (SAMPLE / "catalog.jsonl").read_text(encoding="utf-8").splitlines()[:96]
    catalog = tmp_path / f"catalog-{len(list(tmp_path.iterdir()))}.jsonl"
    catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")
    app.ingest_catalog(catalog)
    return app


def _vectors(app: Podrec) -> dict[str, np.ndarray]:
    pks, vectors = app.store.load_vectors(app.embedder_model_id)
    items = app.store.items_by_pk(pks.tolist())
    return {items[int(pk)].id: v for pk, v in zip(pks, vectors, strict=True)}


def test_chunks_spread_over_the_nodes_with_postgres(two_nodes, wordllama, postgres_url,
                                                    tmp_path):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    log = tmp_path / "nodes.log"
    there = _app(postgres_url, wordllama, tmp_path)
    here = _app(f"sqlite:///{tmp_path / 'here.db'}", wordllama, tmp_path)
    try:
        report = there.enrich(runner=Located(log))
        assert report.tagged == 96
        nodes = log.read_text(encoding="utf-8").split()
        assert len(nodes) == 3 and len(set(nodes)) == 2  # three chunks of 32, on both nodes
        here.enrich()
        mine, theirs = _vectors(here), _vectors(there)
        assert mine.keys() == theirs.keys() and len(mine) == 96
        for item_id, vector in mine.items():
            np.testing.assert_allclose(theirs[item_id], vector, rtol=1e-5, atol=1e-6)
    finally:
        there.close()
        here.close()


def test_chunks_stay_on_this_node_with_a_sqlite_file(two_nodes, wordllama, tmp_path):
    log = tmp_path / "nodes.log"
    app = _app(f"sqlite:///{tmp_path / 'a.db'}", wordllama, tmp_path)
    try:
        assert app.enrich(runner=Located(log)).tagged == 96
        nodes = log.read_text(encoding="utf-8").split()
        assert len(nodes) == 3 and set(nodes) == {ray.get_runtime_context().get_node_id()}
    finally:
        app.close()
