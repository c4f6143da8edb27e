"""Shared fixtures: real databases (a SQLite file and a fresh PostgreSQL database) and real
embedding models, loaded once per session."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
# `make test` installs every extra (llama-cpp-python and the bundled model, Ray) and sets this:
# then a test of an optional part fails, rather than skips, when it is missing (a missing
# install step).
REQUIRE_EXTRAS = os.environ.get("PODREC_REQUIRE_EXTRAS") == "1"
HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
needs_llama = pytest.mark.skipif(not HAS_LLAMA and not REQUIRE_EXTRAS,
                                 reason="llama-cpp-python is not installed")


def import_extra(name: str):  # noqa: ANN201 - the module
    """An optional package's module; skipped without it, failed under `make test`."""
    if REQUIRE_EXTRAS:
        return importlib.import_module(name)
    return pytest.importorskip(name)


def local_model_or_skip(available: bool) -> None:
    """Skip a test of the bundled model when it is not installed (fail under `make test`)."""
    if not available:
        if REQUIRE_EXTRAS:
            pytest.fail("the bundled local model is not installed (make install installs it)")
        pytest.skip("the default local model is not installed")
SAMPLE = Path(__file__).parents[1] / "src" / "podrec" / "data" / "sample"
PG_ADMIN = os.environ.get("PODREC_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def random_pairs(seed: int = 0, users: int = 60, items: int = 300, n: int = 3000,
                 catalog_items: int | None = None):  # noqa: ANN201 - Interactions
    """Distinct random (listener, item) pairs over the first ``items`` items of a catalog of
    ``catalog_items`` (``items`` when None), weight 1, random times."""
    import numpy as np

    from podrec.model.interactions import Interactions

    rng = np.random.default_rng(seed)
    found = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, users, n),
                                                      rng.integers(0, items, n), strict=True)})
    u = np.array([p[0] for p in found], np.int32)
    i = np.array([p[1] for p in found], np.int32)
    return Interactions([f"u{k}" for k in range(users)],
                        [f"i{k}" for k in range(catalog_items or items)], u, i,
                        np.ones(len(u), np.float32), rng.random(len(u)) * 1e6)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'podrec.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A brand-new PostgreSQL database on the local server, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"podrec_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs on a SQLite file and on the PostgreSQL server."""
    return request.getfixturevalue(f"{request.param}_url" if request.param == "sqlite"
                                   else "postgres_url")


@pytest.fixture(scope="session")
def e5():
    from podrec.enrich.embedders import E5Embedder

    return E5Embedder()


@pytest.fixture(scope="session")
def wordllama():
    from podrec.enrich.embedders import WordLlamaEmbedder

    return WordLlamaEmbedder()


@pytest.fixture(scope="session")
def sample_app(tmp_path_factory: pytest.TempPathFactory, e5):
    """The bundled sample catalog and events, ingested and enriched with e5 (once)."""
    from podrec.config import Config
    from podrec.service import Podrec

    db = tmp_path_factory.mktemp("sample") / "sample.db"
    # reasons and summaries keep their template wording here: a local model writing them in
    # the background would change them between two calls (test_reasons, test_summaries turn
    # them on)
    config = Config()
    config = replace(config, llm=replace(config.llm, reasons=False, summaries=False))
    app = Podrec(config, database_url=f"sqlite:///{db}", embedder=e5)
    app.ingest_catalog(SAMPLE / "catalog.jsonl")
    app.ingest_events(SAMPLE / "events.jsonl")
    app.enrich()
    yield app
    app.close()
