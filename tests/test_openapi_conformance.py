"""The OpenAPI document is true: schemathesis sends generated requests, valid and invalid,
to a real `podrec serve` over loopback, once on a SQLite file and once on PostgreSQL, and
checks every answer against the live document: no 5xx, every status documented, the
documented content type, the body valid against the documented schema, the documented
headers present.

The server holds the bundled sample catalog and events (embedded with the fast wordllama
model), one admin key (every route is reachable), and an evaluation report. The document
fetched from the server gets examples of existing ids (an item, a listener, a listener to
delete, the report's files), so the examples phase reaches the 200s of routes that take an
id; the coverage and fuzzing phases send everything else. Generation is deterministic
and bounded: the same requests each run.

Not exercised (each would fetch URLs or do slow work, not check the document):

- ``POST /catalog/ingest``: fetches the URL it is given (and the feeds an uploaded OPML
  names) from the network.

``POST /models/train`` is exercised: ``train.min_events`` is set out of reach here, so each
request saves the fallback at once instead of fitting models for seconds to minutes.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import SAMPLE
from test_server import PNG, Server

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance")
# Routes not exercised, with the reason (also in docs/trust.md, "The API document").
EXCLUDED = {"/catalog/ingest": "fetches URLs from the network"}
MAX_EXAMPLES = 4  # fuzzing cases per operation; the examples and coverage phases add theirs
UNDECLARED = "(a method the path does not declare)"
# Fewer requests than this per store means generation stopped working, not a pass.
MIN_REQUESTS = 500

SHOW = "1322200189"  # a show of the sample catalog
LISTENER = "demo-listener"  # the sample events' listener
DOOMED = "conformance-doomed"  # created for DELETE /users/{user_id} to find
# Examples of existing resources, by operation and parameter.
EXAMPLES: dict[tuple[str, str], dict[str, list[str]]] = {
    ("/items/{kind}/{item_id}", "get"): {"kind": ["show"], "item_id": [SHOW]},
    ("/items/{kind}/{item_id}/similar", "get"): {"kind": ["show"], "item_id": [SHOW]},
    ("/users/{user_id}/recommendations", "get"): {"user_id": [LISTENER]},
    ("/users/{user_id}/profile", "get"): {"user_id": [LISTENER]},
    ("/users/{user_id}/export", "get"): {"user_id": [LISTENER]},
    ("/users/{user_id}", "delete"): {"user_id": [DOOMED]},
    ("/reports/files/{path}", "get"): {
        "path": ["ml/accuracy.png", "ml/results.json", "ml/results.md"]},
}


def _config_file(tmp: Path) -> Path:
    reports = tmp / "reports"
    (reports / "ml").mkdir(parents=True)
    (reports / "ml" / "results.json").write_text('{"protocol": "temporal", "models": {}}')
    (reports / "ml" / "results.md").write_text("# results\n")
    (reports / "ml" / "accuracy.png").write_bytes(PNG)
    config = tmp / "podrec.toml"
    config.write_text(
        '[embedder]\nname = "wordllama"\n'
        f'[server]\nreports_dir = "{reports.as_posix()}"\n'
        '[llm]\nbackend = "none"\nreasons = false\nsummaries = false\n'
        # POST /models/train saves the fallback at once instead of fitting models
        '[train]\nmin_events = 1000000000\n')
    return config


def _fill(database_url: str, config: Path) -> str:
    """The sample catalog and events, embedded; a listener to delete; an admin key."""
    from podrec.config import load_config
    from podrec.service import Podrec

    app = Podrec(load_config(config), database_url=database_url)
    try:
        app.ingest_catalog(SAMPLE / "catalog.jsonl")
        app.ingest_events(SAMPLE / "events.jsonl")
        app.enrich()
        app.create_user(DOOMED)
        return app.store.create_api_key("conformance", "admin")
    finally:
        app.close()


def with_examples(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with examples of existing resources on the parameters that name one."""
    doc = copy.deepcopy(doc)
    for (path, method), params in EXAMPLES.items():
        for param in doc["paths"][path][method]["parameters"]:
            values = params.get(param["name"])
            if values:
                param["examples"] = {f"e{i}": {"value": v} for i, v in enumerate(values)}
    return doc


def schemathesis_run(url: str, key: str, tmp: Path
                     ) -> tuple[dict[str, Any], list[tuple[str, int]], str]:
    """``schemathesis run`` over the live document of the server at ``url``: its JSON
    report, the operation and status of every request it sent (from its HAR log), and its
    output."""
    doc = httpx.get(url + "/openapi.json", timeout=30).raise_for_status().json()
    schema = tmp / "openapi.json"
    schema.write_text(json.dumps(with_examples(doc)))
    report, har = tmp / "schemathesis.json", tmp / "schemathesis.har"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", str(schema), "--url", url,
        "--header", f"Authorization: Bearer {key}", "--checks", ",".join(CHECKS),
        "--phases", "examples,coverage,fuzzing", "--mode", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers", "1", "--request-timeout", "60", "--no-color",
        "--report", "json,har", "--report-json-path", str(report),
        "--report-har-path", str(har),
        *(arg for path in EXCLUDED for arg in ("--exclude-path", path))]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp)
    assert report.is_file() and har.is_file(), out.stdout + out.stderr
    entries = json.loads(har.read_text())["log"]["entries"]
    sent = [(operation_of(doc, e["request"]["method"], e["request"]["url"]),
             e["response"]["status"]) for e in entries]
    return json.loads(report.read_text()), sent, out.stdout + out.stderr


def operation_of(doc: dict[str, Any], method: str, url: str) -> str:
    """The document's operation a request was sent to ("GET /users/{user_id}/profile"), or
    UNDECLARED for a probe with a method the path does not have."""
    path = urlsplit(url).path
    for template in doc["paths"]:
        if method.lower() in doc["paths"][template] and re.fullmatch(
                re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template)), path):
            return f"{method} {template}"
    return UNDECLARED


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_every_answer_is_documented(store: str, request: pytest.FixtureRequest,
                                    tmp_path: Path) -> None:
    """Generated requests, valid and invalid, to every route but the excluded: 0 failures
    of the checks, and every operation reached."""
    url = request.getfixturevalue("sqlite_url" if store == "sqlite" else "postgres_url")
    config = _config_file(tmp_path)
    key = _fill(url, config)
    server = Server("--db", url, "--config", str(config), log=tmp_path / "server.log").wait()
    try:
        report, sent, output = schemathesis_run(server.url, key, tmp_path)
    finally:
        server.stop()
    statuses = [status for _, status in sent]
    counts = Counter(f"{s // 100}xx" for s in statuses)
    for operation in sorted({op for op, _ in sent}):
        print(operation, dict(sorted(Counter(s for op, s in sent if op == operation).items())))
    print(f"\n{store}: {len(statuses)} requests ({dict(sorted(counts.items()))}), "
          f"{report['test_cases']['generated']} test cases, "
          f"{report['test_cases']['unique_failures']} failures")
    assert report["test_cases"]["unique_failures"] == 0, output
    assert report["errors"] == [] and report["exit_code"] == 0, output
    assert report["operations"]["tested"] == report["operations"]["selected"], output
    assert report["operations"]["total"] - report["operations"]["selected"] == len(EXCLUDED)
    assert not report["warnings"]["missing_test_data"], output  # the examples reach the ids
    assert len(statuses) >= MIN_REQUESTS, output
    assert counts["2xx"] and counts["4xx"], counts
    assert not counts["5xx"], output


def test_the_document_declares_one_error_model(sqlite_url: str) -> None:
    """Every error status of every route is documented with the one ``Error`` model; none
    with FastAPI's own 422 (``detail`` as a list), which the API never sends."""
    from podrec.server.app import create_app

    doc = create_app(database_url=sqlite_url, warm=False).openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {code: r for code, r in responses.items() if code[0] in "45"}
            for code, response in errors.items():
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}, (method, path, code)
            if operation.get("security"):
                assert {"401", "503"} <= set(errors), (method, path)
                assert "WWW-Authenticate" in responses["401"]["headers"]
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in errors, (method, path)
    assert set(doc["paths"]["/users"]["post"]["responses"]) >= {"200", "201"}
    assert "403" in doc["paths"]["/users/{user_id}/export"]["get"]["responses"]
    assert "403" not in doc["paths"]["/users/{user_id}/profile"]["get"]["responses"]
