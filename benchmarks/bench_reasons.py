"""Reasons in words, measured: how many written reasons pass the checks, how many name a show
the evidence did not give (before the checks and after: the latter must be 0), and the
generator's time per reason.

Listeners are made up on the bundled sample catalog: for each Apple genre, one listener who
followed its three most popular shows and one who followed two of them and the top show of
another genre; listeners of the Chinese shows; and requests by words alone, half Chinese.
Each gets an explained list, and every item's evidence is worded once (identical facts are
worded once). The run stops at ``--reasons`` or ``--budget-s``, whichever comes first.

    .venv/bin/python benchmarks/bench_reasons.py [--reasons 200] [--budget-s 900] \
        [--out docs/results/reasons.json]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from podrec.config import Config, load_config
from podrec.llm.base import MemoryCache
from podrec.llm.factory import make_generator
from podrec.recommend.wording import REASON_SCHEMA, REASON_TOKENS, ReasonFacts, reason_facts
from podrec.service import Podrec
from podrec.written import CatalogTitles, invented_names, other_shows

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "podrec" / "data" / "sample"
QUERIES = ["history of ancient Rome", "funny improv comedy", "science explained simply",
           "football and basketball talk", "investing for beginners", "mindfulness and sleep",
           "历史故事", "学习投资理财的播客", "搞笑脱口秀", "健康和中医", "美股新闻", "儿童睡前故事"]


def listeners(app: Podrec) -> list[tuple[str, list[str], str | None]]:
    """(listener id, followed show ids, query) of the made-up listeners."""
    data = app.catalog_data("show")
    by_genre: dict[str, list[int]] = {}
    for r in range(len(data)):
        for g in data.categories[r][:1]:
            by_genre.setdefault(g, []).append(r)
    genres = sorted((g for g, rows in by_genre.items() if len(rows) >= 3 and len(g) > 2),
                    key=lambda g: -len(by_genre[g]))
    pop = np.nan_to_num(np.asarray(data.popularity, np.float64))

    def top(g: str, n: int) -> list[str]:
        return [data.ids[r] for r in sorted(by_genre[g], key=lambda r: -pop[r])[:n]]

    out = []
    for i, g in enumerate(genres):
        out.append((f"fan-{i}", top(g, 3), None))
        other = genres[(i + 3) % len(genres)]
        out.append((f"two-{i}", top(g, 2) + top(other, 1), None))
    chinese = [data.ids[r] for r in range(len(data)) if (data.languages[r] or "").startswith("zh")]
    out += [(f"zh-{i}", chinese[i:i + 2], None) for i in range(0, len(chinese) - 1, 2)]
    out += [(f"words-{i}", [], q) for i, q in enumerate(QUERIES)]
    return out


def explained_lists(app: Podrec, k: int) -> list[tuple[Any, str | None]]:
    """Every explained item of every made-up listener's list, with the listener's words."""
    events, made = [], listeners(app)
    for user, shows, _ in made:
        for n, sid in enumerate(shows):
            events.append({"user_id": user, "item_id": sid, "item_kind": "show",
                           "event": "subscribe", "timestamp": f"2026-10-{n + 1:02d}T20:00:00Z"})
    if events:
        app.add_events(events, source="bench")
    out = []
    for user, shows, query in made:
        recs = app.recommend(user_id=user if shows else None, query=query, k=k, explain=True)
        out += [(r, query) for r in recs]
    return out


def is_show_name(text: str, titles: CatalogTitles, facts: ReasonFacts) -> list[str]:
    """Shows named outside the evidence, as the checks see them: quoted names and catalog
    titles (both counted as shows; other capitalised names are counted apart)."""
    names = facts.names
    quoted = [m.group(1) for m in re.finditer(r"[“\"《「]([^”\"》」]{1,120})[”\"》」]", text)
              if not names.allows(m.group(1))]
    return quoted + other_shows(text, names, titles)


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = load_config(args.config) if args.config else Config()
    # the lists are made without a generator (requests read by the rules, template reasons)
    lists = replace(config, llm=replace(config.llm, backend="none"))
    with tempfile.TemporaryDirectory() as tmp:
        app = Podrec(lists, database_url=f"sqlite:///{tmp}/bench.db")
        app.ingest_catalog(SAMPLE / "catalog.jsonl")
        app.enrich()
        items = explained_lists(app, args.k)
        titles = CatalogTitles(app.catalog_data("show").titles)
        app.close()
    generator = make_generator(config, cache=MemoryCache())
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for rec, query in items:
        facts = reason_facts(rec, query)
        prompt = facts.lines()
        if prompt in seen:
            continue
        seen.add(prompt)
        if len(rows) >= args.reasons or time.perf_counter() - start > args.budget_s:
            break
        gen = generator.generate(facts.messages(), REASON_SCHEMA, REASON_TOKENS, task="reason")
        text = gen.data.get("reason") if isinstance(gen.data, dict) else None
        why = facts.check(text, titles) if text is not None else f"fell back: {gen.reason}"
        rows.append({"item": rec.title, "language": facts.language, "template": rec.reason,
                     "text": text, "seconds": round(gen.seconds, 3), "rejected": why,
                     "invented": invented_names(text, facts.names) if text else [],
                     "shows": is_show_name(text, titles, facts) if text else []})
        print(f"{len(rows):4d} {gen.seconds:5.1f}s {why or 'ok':28.28} {text}", flush=True)
    generator.close()
    return summary(rows, generator.model_id, time.perf_counter() - start)


def summary(rows: list[dict[str, Any]], model_id: str, wall: float) -> dict[str, Any]:
    written = [r for r in rows if r["text"] is not None]
    passed = [r for r in written if r["rejected"] is None]
    reasons = Counter((r["rejected"] or "ok").split(":")[0] for r in rows)
    per_lang = {lang: {"reasons": sum(r["language"] == lang for r in rows),
                       "passed": sum(r["language"] == lang for r in passed)}
                for lang in ("en", "zh")}
    return {"model": model_id, "reasons": len(rows), "written": len(written),
            "passed": len(passed), "pass_share": round(len(passed) / max(len(rows), 1), 3),
            "per_language": per_lang, "outcomes": dict(reasons),
            "shows_invented_before": sum(len(r["shows"]) for r in written),
            "reasons_with_invented_show_before": sum(bool(r["shows"]) for r in written),
            "names_invented_before": sum(len(r["invented"]) for r in written),
            "shows_invented_after": sum(len(r["shows"]) for r in passed),
            "names_invented_after": sum(len(r["invented"]) for r in passed),
            "ms_per_reason": round(1000 * sum(r["seconds"] for r in rows) / max(len(rows), 1)),
            "wall_s": round(wall, 1), "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reasons", type=int, default=200)
    p.add_argument("--budget-s", type=float, default=900.0)
    p.add_argument("--k", type=int, default=5, help="items per made-up listener's list")
    p.add_argument("--config", default=None, help="a podrec TOML ([llm] picks the generator)")
    p.add_argument("--out", default=None, help="write the figures and every reason as JSON")
    args = p.parse_args()
    res = run(args)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=2,
                     ensure_ascii=False))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
