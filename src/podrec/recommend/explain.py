"""Why an item is on the list: the largest real contributors of its score, with their share
of it, and one sentence that names them.

The served model's score is a sum of parts (model/hybrid.py, ``contributions``). Parts are
grouped by what they stand for, and each group names its own evidence:

- **content** (``profile``, ``content``, ``content@cold``): the history items of the winning
  interest, the listener's own words or query, and the request's context, each by how much
  more it favours this item than a typical catalog item;
- **collaborative** (``ease``, ``itemknn``, ``ials``, ``bpr``): the history items that the
  collaborative models link to this item ("listeners who like X also like this");
- **popularity** (``pop``, ``pop-recent``): named only when it is the largest group.

Shares add up to 1 over what pushed the score up; context that pushed it down is listed with
share 0. The sentence is worded in ``podrec.present``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from podrec import present
from podrec.model.base import Recommender
from podrec.model.content import ContentModel

CONTENT_PARTS = ("profile", "content", "content@cold")
COLLABORATIVE_PARTS = ("ease", "itemknn", "ials", "bpr")
POPULARITY_PARTS = ("pop", "pop-recent")
MIN_NAMED_SHARE = 0.2  # a group under this share of the score is not named in the sentence


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


def content_parts(model: ContentModel, row: int, seeds: list[Seed], words: str | None = None,
                  words_vector: np.ndarray | None = None,
                  context: list[ContextNote] | None = None
                  ) -> list[tuple[float, dict[str, Any]]]:
    """(effect, evidence) of each seed, the words and each context note on ``row``'s
    content score. A seed's effect is how much more it likes this item than a typical one
    (embedding similarities crowd together, so raw scores would give every seed an equal
    share)."""
    catalog = model.catalog
    parts: list[tuple[float, dict[str, Any]]] = [
        (n.effect, n.evidence | {"effect": round(float(n.effect), 4)}) for n in context or []]
    if seeds:
        rows = np.array([s.row for s in seeds])
        sample = np.random.default_rng(row).choice(len(catalog), min(200, len(catalog)),
                                                  replace=False)
        typical = model.block_scores(rows, sample).mean(axis=0)
        per_seed = model.block_scores(rows, np.array([row]))[0] - typical
        for seed, value in zip(seeds, per_seed, strict=True):
            parts.append((float(value) * seed.weight, {
                "type": "item", "id": catalog.ids[seed.row], "title": catalog.titles[seed.row],
                "event": seed.event}))
    if words_vector is not None and words:
        value = float(model.index.similarities(np.asarray(words_vector).ravel(),
                                               np.array([row]))[0])
        parts.append((value * model.weights.cosine * model.query_weight,
                      {"type": "query", "text": words}))
    return parts


class Explainer:
    """Names the largest real contributors of an item's score (see the module doc)."""

    def __init__(self, content: ContentModel, collaborative: dict[str, Recommender],
                 max_items: int = 2) -> None:
        self.content = content
        self.collaborative = collaborative
        self.max_items = max_items

    def explain(self, row: int, contributions: dict[str, float], seeds: list[Seed],
                words: str | None = None, words_vector: np.ndarray | None = None,
                context: list[ContextNote] | None = None,
                history_rows: np.ndarray | None = None, interest: str | None = None
                ) -> tuple[str, list[dict[str, Any]]]:
        groups = {
            "content": sum(max(v, 0.0) for n, v in contributions.items() if n in CONTENT_PARTS),
            "collaborative": sum(max(v, 0.0) for n, v in contributions.items()
                                 if n in COLLABORATIVE_PARTS),
            "popularity": sum(max(v, 0.0) for n, v in contributions.items()
                              if n in POPULARITY_PARTS)}
        total = sum(groups.values())
        if total <= 0:  # nothing pushed it up: say what the content side can
            groups, total = {"content": 1.0, "collaborative": 0.0, "popularity": 0.0}, 1.0
        share = {g: v / total for g, v in groups.items()}
        evidence: list[dict[str, Any]] = []
        inner = content_parts(self.content, row, seeds, words, words_vector, context) \
            if share["content"] > 0 else [(n.effect, n.evidence) for n in context or []]
        named_content = _scaled(inner, share["content"])
        if share["content"] > 0 and not named_content:
            named_content = [{"type": "content", "share": round(share["content"], 3)}]
        evidence += named_content
        cf_items = self._collaborative(row, contributions, history_rows, share["collaborative"])
        evidence += cf_items
        if share["popularity"] > 0:
            evidence.append({"type": "popularity", "share": round(share["popularity"], 3)})
        evidence.sort(key=lambda e: -e.get("share", 0.0))
        evidence += [e | {"share": 0.0} for v, e in inner if v <= 0 and e["type"] == "context"]
        return self._sentence(row, evidence, share, words, context, interest), evidence

    def _collaborative(self, row: int, contributions: dict[str, float],
                       history_rows: np.ndarray | None, group_share: float
                       ) -> list[dict[str, Any]]:
        """History items the collaborative parts link to ``row``, weighted by each part's
        contribution."""
        if group_share <= 0 or history_rows is None or not len(history_rows):
            return []
        rows = np.asarray(history_rows, np.int64)
        links = np.zeros(len(rows))
        for name, value in contributions.items():
            model = self.collaborative.get(name)
            if model is None or value <= 0:
                continue
            aff = np.maximum(np.asarray(model.item_affinity(rows, row), np.float64), 0.0)
            if aff.sum() > 0:
                links += value * aff / aff.sum()
        if links.sum() <= 0:
            return [{"type": "collaborative", "share": round(group_share, 3)}]
        links = links / links.sum() * group_share
        catalog = self.content.catalog
        order = [i for i in np.argsort(-links)[:3].tolist() if links[i] > 0]
        out = [{"type": "collaborative", "id": catalog.ids[int(rows[i])],
                "title": catalog.titles[int(rows[i])], "share": round(float(links[i]), 3)}
               for i in order]
        rest = float(links.sum() - links[order].sum())
        if rest > 5e-4:  # the other history items, together
            out.append({"type": "collaborative", "items": int((links > 0).sum()) - len(order),
                        "share": round(rest, 3)})
        return out

    def _sentence(self, row: int, evidence: list[dict[str, Any]], share: dict[str, float],
                  words: str | None, context: list[ContextNote] | None,
                  interest: str | None) -> str:
        catalog = self.content.catalog
        largest = max(share, key=lambda g: share[g])
        clauses: dict[str, str] = {}
        if share["content"] >= MIN_NAMED_SHARE or largest == "content":
            items = [e for e in evidence if e["type"] == "item"]
            top = items[:1] + [e for e in items[1:self.max_items]
                               if e["share"] >= 0.15 * share["content"]]
            tags = _shared_tags(catalog.categories[row],
                                [catalog.categories[catalog.row_of(e["id"])] for e in top])
            evidence += [{"type": "tag", "tag": t} for t in tags]
            word_share = sum(e["share"] for e in evidence if e["type"] == "query")
            said = words if words and (word_share >= MIN_NAMED_SHARE * share["content"]
                                       or not top) else None
            clauses["content"] = present.content_clause(present.history_clause(top, tags),
                                                        said, interest)
        if share["collaborative"] >= MIN_NAMED_SHARE or largest == "collaborative":
            titles = [e["title"] for e in evidence
                      if e["type"] == "collaborative" and "title" in e][:self.max_items]
            clauses["collaborative"] = present.collaborative_clause(titles)
        if largest == "popularity":
            clauses["popularity"] = present.POPULAR
        order = sorted(clauses, key=lambda g: -share[g])
        phrases = [n.phrase for n in context or [] if n.phrase and n.effect >= 0]
        return present.sentence([clauses[g] for g in order], phrases)


MAX_NAMED = 5  # evidence entries named one by one per group; the rest are summed


def _scaled(parts: list[tuple[float, dict[str, Any]]], group_share: float
            ) -> list[dict[str, Any]]:
    """Positive parts as evidence with their share of the score: words and context each,
    the ``MAX_NAMED`` strongest history items by name, the other history items summed."""
    positive = sorted([(v, e) for v, e in parts if v > 0], key=lambda p: -p[0])
    total = sum(v for v, _ in positive)
    if total <= 0 or group_share <= 0:
        return []
    out, rest, n_rest = [], 0.0, 0
    named = 0
    for v, e in positive:
        if e["type"] == "item" and named >= MAX_NAMED:
            rest += v
            n_rest += 1
            continue
        named += e["type"] == "item"
        out.append(e | {"share": round(v / total * group_share, 3)})
    if n_rest:
        out.append({"type": "history", "items": n_rest,
                    "share": round(rest / total * group_share, 3)})
    return out


def _shared_tags(own: list[str], others: list[list[str]]) -> list[str]:
    mine = {c.casefold(): c for c in own}
    seen: list[str] = []
    for cats in others:
        for c in cats:
            if c.casefold() in mine and mine[c.casefold()] not in seen:
                seen.append(mine[c.casefold()])
    return seen[:2]
