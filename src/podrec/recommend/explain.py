"""Why an item was recommended: which history items, tags and words drove its score, with
their share of it, and one plain sentence that says so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from podrec.model.content import ContentModel

VERBS = {"subscribe": "subscribed to", "complete": "finished", "like": "liked",
         "play": "played", "rate": "rated", "review": "reviewed", "seed": "picked"}


@dataclass
class Seed:
    """One piece of evidence a request brings: a history item (with the event behind it)."""

    row: int
    weight: float
    event: str = "seed"


@dataclass
class ContextNote:
    """What the request's context did to one item: its score effect and a phrase for the
    sentence ("short enough for your 30 minutes")."""

    effect: float
    evidence: dict[str, Any]
    phrase: str | None = None


def explain(model: ContentModel, row: int, seeds: list[Seed], query: str | None = None,
            query_vector: np.ndarray | None = None, max_items: int = 2,
            context: list[ContextNote] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(reason, evidence) for one recommended row. Evidence shares add up to 1 over what
    pushed the score up; context that pushed it down is listed with share 0."""
    catalog = model.catalog
    parts: list[tuple[float, dict[str, Any]]] = [(n.effect, n.evidence | {"effect": round(
        float(n.effect), 4)}) for n in context or []]
    if seeds:
        rows = np.array([s.row for s in seeds])
        # A seed's evidence is how much more it likes this item than a typical one (embedding
        # similarities crowd together, so raw scores would give every seed an equal share).
        sample = np.random.default_rng(row).choice(len(catalog), min(200, len(catalog)),
                                                  replace=False)
        typical = model.block_scores(rows, sample).mean(axis=0)
        per_seed = model.block_scores(rows, np.array([row]))[0] - typical
        for seed, value in zip(seeds, per_seed, strict=True):
            parts.append((float(value) * seed.weight, {
                "type": "item", "id": catalog.ids[seed.row], "title": catalog.titles[seed.row],
                "event": seed.event}))
    if query_vector is not None and query:
        value = float(model.index.vectors[row] @ np.asarray(query_vector).ravel())
        parts.append((value * model.weights.cosine * model.query_weight,
                      {"type": "query", "text": query}))
    positive = [(v, e) for v, e in parts if v > 0]
    total = sum(v for v, _ in positive) or 1.0
    evidence = [e | {"share": round(v / total, 3)}
                for v, e in sorted(positive, key=lambda p: -p[0])]
    items = [e for e in evidence if e["type"] == "item"]
    top_items = items[:1] + [e for e in items[1:max_items] if e["share"] >= 0.15]
    shared = _shared_tags(catalog.categories[row],
                          [catalog.categories[catalog.row_of(e["id"])] for e in top_items])
    evidence += [{"type": "tag", "tag": t} for t in shared]
    evidence += [e | {"share": 0.0} for v, e in parts if v <= 0 and e["type"] == "context"]
    query_share = sum(e["share"] for e in evidence if e["type"] == "query")
    phrases = [n.phrase for n in context or [] if n.phrase and n.effect >= 0]
    reason = _sentence(top_items, shared, query if query_share >= 0.2 or not top_items
                       else None)
    if phrases:
        reason = reason[:-1] + "; " + "; ".join(phrases) + "."
    return reason, evidence


def _shared_tags(own: list[str], others: list[list[str]]) -> list[str]:
    mine = {c.casefold(): c for c in own}
    seen: list[str] = []
    for cats in others:
        for c in cats:
            if c.casefold() in mine and mine[c.casefold()] not in seen:
                seen.append(mine[c.casefold()])
    return seen[:2]


def _sentence(items: list[dict[str, Any]], tags: list[str], query: str | None) -> str:
    by_verb: dict[str, list[str]] = {}
    for e in items:
        by_verb.setdefault(VERBS.get(e["event"], "picked"), []).append(f"“{e['title']}”")
    clauses = [f"you {verb} {' and '.join(titles)}" for verb, titles in by_verb.items()]
    reason = ""
    if clauses:
        reason = "Because " + " and ".join(clauses)
        if tags:
            reason += f" and like {' and '.join(tags)}"
    if query:
        reason += ("; it " if reason else "It ") + f"matches “{query}”"
    return (reason or "Popular with listeners") + "."
