"""Topical tags written by the generator: a few genres from the taxonomy and a few free topics.

The model reads an item's title and the start of its description (never its source
categories) and answers JSON: ``genres`` constrained to the taxonomy's labels and ``topics``,
short phrases in the item's language. Free topics that name a taxonomy label become that
label. The system prompt, the label list and the examples are the same for every item, so the
local model processes them once and then reads only each item's text. Outputs are cached by
input hash in the store, so a second run over an unchanged catalog generates nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from podrec.enrich.tagger import clean_phrases, taxonomy_vocabulary
from podrec.enrich.taxonomy import taxonomy_labels
from podrec.llm.base import TextGenerator
from podrec.records import Item

SOURCE = "generated"


def tag_schema(labels: list[str], topics: int = 4) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "genres": {"type": "array", "items": {"enum": labels}, "maxItems": 2},
            "topics": {"type": "array", "items": {"type": "string", "maxLength": 32},
                       "maxItems": max(topics, 1)},
        },
        "required": ["genres", "topics"],
        "additionalProperties": False,
    }


_EXAMPLES = [
    ("Serial. Serial tells one story - a true story - over the course of a whole season. "
     "Each season investigates a crime, a murder case or a trial, with reporting by Sarah "
     "Koenig.",
     '{"genres": ["True Crime", "Documentary"], "topics": ["murder investigation", '
     '"criminal justice", "investigative journalism"]}'),
    ("小Lin说. 用通俗易懂的方式讲解金融、经济和投资理财的知识，每期一个话题。",
     '{"genres": ["Investing", "Business"], "topics": ["金融知识", "经济", "投资理财"]}'),
]


def item_text(item: Item, max_chars: int = 400) -> str:
    """Title and the start of the description, cut at a word: what the model reads."""
    description = " ".join((item.description or "").split())
    if len(description) > max_chars:
        description = description[:max_chars].rsplit(" ", 1)[0]
    return f"{item.title.strip()}. {description}".strip()


@dataclass
class TagReport:
    items: int = 0
    generated: int = 0  # by the model in this run
    cached: int = 0  # found in the cache
    fell_back: int = 0  # no usable answer (absent model, time-out, invalid output)
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        per_s = self.generated / self.seconds if self.seconds > 0 else 0.0
        return {"items": self.items, "generated": self.generated, "cached": self.cached,
                "fell_back": self.fell_back, "reasons": dict(self.reasons),
                "seconds": round(self.seconds, 1), "items_per_s": round(per_s, 3)}


class GeneratedTagger:
    """Genres and topics for items from a generator; none at all when it falls back."""

    def __init__(self, generator: TextGenerator, topics: int = 4,
                 taxonomy: dict[str, list[str]] | None = None, max_chars: int = 400) -> None:
        self.generator, self.topics, self.max_chars = generator, topics, max_chars
        self.labels = [tag for tag, _ in taxonomy_labels(taxonomy)]
        self._by_name = {label.lower(): label for label in self.labels}
        self.label_names = set(self._by_name)
        self.vocabulary = taxonomy_vocabulary(taxonomy)
        self.schema = tag_schema(self.labels, topics)
        self._system = (
            "You tag podcasts. Read the podcast's title and description and answer JSON "
            "only: genres (one or two labels from this list, the closest ones) and topics (up "
            f"to {topics} specific subjects it covers, each one to three words, in the "
            "podcast's language; never the podcast's own name, never a generic word like "
            "'podcast' or 'episode'). Labels: " + ", ".join(self.labels) + ".")

    def messages(self, item: Item) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self._system}]
        for text, answer in _EXAMPLES:
            messages += [{"role": "user", "content": text},
                         {"role": "assistant", "content": answer}]
        messages.append({"role": "user", "content": item_text(item, self.max_chars)})
        return messages

    def tag(self, item: Item, timeout_s: float | None = None
            ) -> tuple[list[tuple[str, float]] | None, Any]:
        """(tag, score) pairs for one item, or None when the generator fell back; and the
        `Generation` (source, reason, seconds)."""
        result = self.generator.generate(self.messages(item), self.schema,
                                         max_tokens=24 + 12 * self.topics,
                                         timeout_s=timeout_s, task="tags")
        if result.fell_back or not isinstance(result.data, dict):
            return None, result
        return self.tags_from(result.data, item), result

    def tags_from(self, data: dict[str, Any], item: Item) -> list[tuple[str, float]]:
        """The answer as scored tags: genres first, then topics (taxonomy names where they
        match one), cleaned like keyphrases against the item's title."""
        out: list[tuple[str, float]] = []
        for rank, genre in enumerate(dict.fromkeys(data.get("genres", []))):
            out.append((genre, 1.0 - 0.05 * rank))
        topics = []
        for rank, topic in enumerate(data.get("topics", [])[: self.topics]):
            topic = re.sub(r"\s+", " ", str(topic)).strip(" .,;:#")
            topics.append((self._by_name.get(topic.lower(), topic), 0.8 - 0.05 * rank))
        out += clean_phrases(topics, item.title, [g for g, _ in out], self.vocabulary,
                             item.author or "")
        return out

    def run(self, items: Iterable[Item], save: Callable[[dict[int, list[tuple[str, float]]]],
                                                         None],
            progress: Callable[[int], None] | None = None, batch: int = 8,
            timeout_s: float | None = None) -> TagReport:
        """Tag every item, saving each batch as it is done (an interrupted run keeps what it
        finished, and the cache makes a re-run skip it)."""
        report, pending = TagReport(), {}
        start = time.perf_counter()
        for item in items:
            tags, result = self.tag(item, timeout_s)
            report.items += 1
            if result.source == "cache":
                report.cached += 1
            elif tags is None:
                report.fell_back += 1
                reason = result.reason or "invalid"
                report.reasons[reason] = report.reasons.get(reason, 0) + 1
            else:
                report.generated += 1
            if tags is not None:
                pending[item.pk] = tags
            if len(pending) >= batch:
                save(pending)
                pending = {}
            if progress:
                progress(1)
        if pending:
            save(pending)
        report.seconds = time.perf_counter() - start
        return report


def generate_tags(store: Any, generator: TextGenerator, kind: str | None = None,
                  limit: int | None = None, topics: int = 4,
                  progress: Callable[[int], None] | None = None,
                  on_total: Callable[[int], None] | None = None,
                  timeout_s: float | None = None, labels: bool = False,
                  runner: Any = None, llm: Any = None, chunk_items: int = 64) -> TagReport:
    """Generated tags for a store's items (the most popular first when ``limit`` is set).

    Only the free topics are stored unless ``labels``: the bundled model's taxonomy labels
    were less precise than the zero-shot taxonomy tags against hidden source genres
    (docs/results/tags.md), and they would sit on the card beside them. What an item's
    category or taxonomy tags already say is not stored again, and keyphrases that repeat a
    generated tag are dropped, so a card shows each idea once.

    With a distributed ``runner`` (``podrec.batch``), chunks of ``chunk_items`` items are
    tasks, each with its own generator configured by ``llm`` (the ``[llm]`` settings)."""
    items = sorted(store.iter_items(kind=kind), key=lambda i: -(i.popularity or 0.0))
    items = items[:limit] if limit else items
    if on_total:
        on_total(len(items))
    if runner is not None and runner.distributed:
        from podrec.batch.enrich import tags_on_runner

        if llm is None:
            raise ValueError("generated tags on Ray need the [llm] settings to build each "
                             "worker's generator")
        return tags_on_runner(runner, store, llm, items, topics, labels, timeout_s,
                              chunk_items, progress)
    return generate_tags_for(store, generator, items, topics, progress, timeout_s, labels)


def generate_tags_for(store: Any, generator: TextGenerator, items: list[Item],
                      topics: int = 4, progress: Callable[[int], None] | None = None,
                      timeout_s: float | None = None, labels: bool = False) -> TagReport:
    """Generated tags for ``items``, saved as each batch is done (``generate_tags``)."""
    tagger = GeneratedTagger(generator, topics=topics)
    by_pk = {i.pk: i for i in items}

    def save(batch: dict[int, list[tuple[str, float]]]) -> None:
        existing = store.tags_for(list(batch))
        rows: dict[int, list[tuple[str, str, float]]] = {}
        for pk, tags in batch.items():
            shown = [t["tag"] for t in existing[pk] if t["source"] in ("category", "taxonomy")]
            item = by_pk[pk]
            if not labels:
                tags = [(t, sc) for t, sc in tags if t.lower() not in tagger.label_names]
            kept = clean_phrases(tags, item.title, shown, tagger.vocabulary, item.author or "")
            phrases = clean_phrases([(t["tag"], t["score"]) for t in existing[pk]
                                     if t["source"] == "keyphrase"], item.title,
                                    shown + [t for t, _ in kept], tagger.vocabulary)
            rows[pk] = ([(SOURCE, t, s) for t, s in kept]
                        + [("keyphrase", t, s) for t, s in phrases])
        store.replace_tags(rows, sources=(SOURCE, "keyphrase"))

    return tagger.run(items, save, progress, timeout_s=timeout_s)
