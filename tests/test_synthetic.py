"""benchmarks/synthetic.py: the files it writes are what podrec's readers take, whole, and the
same seed gives the same bytes."""

from __future__ import annotations

import collections
import csv
import json
import os
import sys
from pathlib import Path

import pytest

from podrec.ingest.pipeline import ingest_catalog, ingest_events
from podrec.storage import Store

ROOT = Path(__file__).resolve().parents[1]
# the generator recombines text from the real data sets; a clone without them (PODREC_DATA,
# else ../shared/data) has nothing to recombine
DATA = Path(os.environ.get("PODREC_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import synthetic  # noqa: E402

pytestmark = pytest.mark.skipif(not (DATA / "listennotes_dec2017_subset").is_dir(),
                                reason=f"the real data sets are not in {DATA}")


def _write(out: Path, seed: int, episodes: int = 3000, events: int = 20000) -> None:
    assert synthetic.main(["--episodes", str(episodes), "--events", str(events), "--out",
                           str(out), "--data", str(DATA), "--seed", str(seed)]) == 0


def test_the_same_seed_gives_the_same_files(tmp_path):
    _write(tmp_path / "a", 3)
    _write(tmp_path / "b", 3)
    _write(tmp_path / "c", 4)
    for name in ("catalog.jsonl", "events.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_podrec_takes_every_record(tmp_path, sqlite_url):
    out = tmp_path / "syn"
    _write(out, 0)
    manifest = json.loads((out / "manifest.json").read_text())
    store = Store(sqlite_url)
    try:
        items = ingest_catalog(store, out / "catalog.jsonl")
        assert (items.added, items.duplicates, items.failed) == (manifest["catalog_rows"], 0, 0)
        assert store.count_items() == {"show": manifest["shows"], "episode": 3000}
        events = ingest_events(store, out / "events.csv")
        assert events.failed == 0 and events.added + events.unchanged == 20000
        assert events.unchanged < 200  # repeats are rare
    finally:
        store.close()


def test_the_shape_is_heavy_tailed_and_mixed(tmp_path):
    out = tmp_path / "syn"
    _write(out, 0, episodes=5000, events=50000)
    rows = [json.loads(line) for line in (out / "catalog.jsonl").open(encoding="utf-8")]
    episodes = [r for r in rows if r["kind"] == "episode"]
    per_show = collections.Counter(r["show_id"] for r in episodes)
    assert max(per_show.values()) > 10 * sorted(per_show.values())[len(per_show) // 2]
    assert len({r["language"] for r in rows if r["kind"] == "show"}) >= 3
    with (out / "events.csv").open(encoding="utf-8") as f:
        events = list(csv.DictReader(f))
    plays = collections.Counter(e["item_id"] for e in events if e["item_kind"] == "episode")
    top = sum(n for _, n in plays.most_common(len(episodes) // 100))
    assert top > 0.1 * sum(plays.values())  # the top 1% of episodes take over a tenth
    activity = sorted(collections.Counter(e["user_id"] for e in events).values())
    assert activity[len(activity) // 2] <= 2 and activity[-1] > 100
    topic = {r["id"]: r["categories"][0] for r in rows}
    by_user = collections.defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(topic[e["item_id"]])
    shares = [collections.Counter(t).most_common(1)[0][1] / len(t)
              for t in by_user.values() if len(t) >= 10]
    assert sum(shares) / len(shares) > 0.4  # listeners keep to their topics
