"""Rebuild the bundled sample catalog (src/podrec/data/sample/) from ../shared/data.

The sample is a small, real slice: Apple Podcasts shows (a few popular ones per genre and the
shows their listeners also subscribe to), non-English shows from the Podcast Index trending
list, and Listen Notes shows with their December 2017 episodes. Run from the repository root:
    python scripts/make_sample.py [DATA_DIR]
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter
from pathlib import Path

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
OUT = Path("src/podrec/data/sample")


def itunes_id(link: str) -> str | None:
    m = re.search(r"/id(\d+)", link or "")
    return m.group(1) if m else None


def apple_rows() -> list[dict]:
    info = json.loads((DATA / "apple_podcasts_peterchong_2021/podcast_info.json").read_text())
    subs = json.loads((DATA / "apple_podcasts_peterchong_2021/podcast_subs.json").read_text())
    by_title = {}
    for row in info:
        if row.get("title") and itunes_id(row.get("link")):
            by_title.setdefault(row["title"], row)
    subs_of = {s["title"]: [t for t in s["subs"] if t in by_title] for s in subs}
    chosen: dict[str, dict] = {}
    per_genre: Counter[str] = Counter()
    for row in sorted(by_title.values(), key=lambda r: -(r.get("num_ratings") or 0)):
        genre = row.get("genre") or ""
        if not genre or per_genre[genre] >= 2 or len(subs_of.get(row["title"], [])) < 6:
            continue
        per_genre[genre] += 1
        for title in [row["title"], *subs_of[row["title"]][:7]]:
            chosen.setdefault(title, by_title[title])
    out = []
    for row in chosen.values():
        out.append({
            "id": itunes_id(row["link"]), "kind": "show", "title": row["title"],
            "description": row.get("description") or "", "author": row.get("producer"),
            "categories": [row["genre"]] if row.get("genre") else [], "language": "en",
            "popularity": row.get("num_ratings"),
            "extra": {"rating": row.get("rating"), "num_episodes": row.get("num_episodes"),
                      "link": row.get("link"), "origin": "apple_podcasts_peterchong_2021"},
        })
    return out


def trending_rows() -> list[dict]:
    path = DATA / "podcastindex_trending_rikadiana1_2026/podcasts_raw_enriched.csv"
    wanted = {"zh": 12, "es": 6, "de": 6, "fr": 6}
    taken: Counter[str] = Counter()
    out = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            lang = (row.get("language_final") or row.get("language") or "").split("-")[0].lower()
            if lang not in wanted or taken[lang] >= wanted[lang] or not row.get("itunes_id"):
                continue
            if len(row.get("description") or "") < 40:
                continue
            taken[lang] += 1
            out.append({
                "id": row["itunes_id"].split(".")[0], "kind": "show", "title": row["title"],
                "description": row["description"][:1500], "author": row.get("author"),
                "categories": row.get("categories") or "", "language": lang,
                "feed_url": row.get("rss_url"),
                "extra": {"origin": "podcastindex_trending_rikadiana1_2026"},
            })
    return out


def listennotes_rows(n_shows: int = 6) -> list[dict]:
    folder = DATA / "listennotes_dec2017_subset"
    with (folder / "episodes.csv").open(encoding="utf-8", newline="") as fh:
        episodes = list(csv.DictReader(fh))
    per_show = Counter(e["podcast_id"] for e in episodes)
    with (folder / "podcasts.csv").open(encoding="utf-8", newline="") as fh:
        shows = {r["id"]: r for r in csv.DictReader(fh)}
    picked = [sid for sid, n in per_show.most_common() if 4 <= n <= 8 and sid in shows
              and (shows[sid].get("language") or "").startswith("English")][:n_shows]
    out = []
    for sid in picked:
        s = shows[sid]
        out.append({"id": f"listennotes:{sid}", "kind": "show", "title": s["title"],
                    "description": s["description"], "author": s["author"],
                    "categories": s["categories"], "language": "en", "image": s["image"],
                    "extra": {"origin": "listennotes_dec2017_subset"}})
        for e in episodes:
            if e["podcast_id"] == sid:
                out.append({"id": f"listennotes-episode:{e['id']}", "kind": "episode",
                            "show_id": f"listennotes:{sid}", "title": e["title"],
                            "description": e["description"], "audio_url": e["audio"],
                            "duration_s": e["audio_length"], "published": e["pub_date"],
                            "extra": {"origin": "listennotes_dec2017_subset"}})
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = apple_rows() + trending_rows() + listennotes_rows()
    with (OUT / "catalog.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {OUT / 'catalog.jsonl'}")


if __name__ == "__main__":
    main()
