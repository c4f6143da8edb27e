"""Field accuracy of parsed intents against labelled requests (tests/fixtures/intents.jsonl).

A labelled topic is a group of acceptable names (English and Chinese); a parsed topic matches
a group when one contains the other, case-insensitively. The topic and exclusion fields are
right when every group is matched and no parsed phrase is left unmatched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from podrec.llm.intents import Intent

FIELDS = ("topics", "exclusions", "max_minutes", "language", "kind", "mood")


def load_labelled(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _matches(phrase: str, group: list[str]) -> bool:
    p = phrase.lower().strip()
    return any(a.lower() in p or (len(p) >= 2 and p in a.lower()) for a in group)


def phrases_right(parsed: list[str], groups: list[list[str]]) -> bool:
    if not groups:
        return not parsed
    covered = all(any(_matches(p, g) for p in parsed) for g in groups)
    extra = [p for p in parsed if not any(_matches(p, g) for g in groups)]
    return covered and not extra


def score(intent: Intent, gold: dict[str, Any]) -> dict[str, bool]:
    """Which fields of ``intent`` agree with the labelled row."""
    return {
        "topics": phrases_right(intent.topics, gold["topics"]),
        "exclusions": phrases_right(intent.exclusions, gold["exclusions"]),
        "max_minutes": intent.max_minutes == gold["max_minutes"],
        "language": intent.language == gold["language"],
        "kind": intent.kind == gold["kind"],
        "mood": (intent.mood or None) == (gold["mood"] or None),
    }


def accuracy(rows: list[tuple[Intent, dict[str, Any]]]) -> dict[str, float]:
    """Share of rows right per field, and of rows right in every field ("all")."""
    if not rows:
        return {}
    scores = [score(i, g) for i, g in rows]
    out = {f: sum(s[f] for s in scores) / len(scores) for f in FIELDS}
    out["all"] = sum(all(s.values()) for s in scores) / len(scores)
    return out
