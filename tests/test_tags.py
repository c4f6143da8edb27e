"""Tags fit for a card: keyphrases cleaned, and generated tags merged without repeats."""

from __future__ import annotations

from podrec.enrich.generated import SOURCE, GeneratedTagger, generate_tags, tag_schema
from podrec.enrich.tagger import clean_phrases
from podrec.llm import NoGenerator, StoreCache
from podrec.llm.base import BaseGenerator
from podrec.records import Item, ItemRecord
from podrec.storage import Store


class Answers(BaseGenerator):
    model_id = "answers"

    def __init__(self, answer: str, cache: StoreCache | None = None) -> None:
        super().__init__(cache)
        self.answer, self.calls = answer, 0

    @property
    def available(self) -> bool:
        return True

    def _complete(self, messages, schema, max_tokens, timeout_s):  # type: ignore[override]
        self.calls += 1
        return self.answer


def test_keyphrases_lose_generic_words_title_fragments_and_repeats() -> None:
    phrases = [("True", 0.9), ("worst", 0.8), ("Scale", 0.7), ("Congratulations", 0.6),
               ("’ve found", 0.58),
               ("Casefile True", 0.55), ("true crime", 0.5), ("missing persons", 0.3),
               ("missing persons cases", 0.35), ("NBA", 0.2), ("Bitcoin", 0.2),
               ("Missing Persons", 0.1)]
    kept = [p for p, _ in clean_phrases(phrases, title="Casefile True Crime",
                                        other_tags=["True Crime"])]
    assert kept == ["missing persons cases", "NBA", "Bitcoin"]


def test_chinese_keyphrases_lose_stopwords_and_title_fragments() -> None:
    kept = [p for p, _ in clean_phrases([("播客", 1.0), ("美股", 0.9), ("价值投资", 0.8),
                                         ("投资", 0.7), ("经济", 0.5)], title="美股投资学")]
    assert kept == ["价值投资", "经济"]


def _store_with_a_show(url: str) -> tuple[Store, int]:
    store = Store(url)
    store.upsert_items([ItemRecord(id="s1", title="Casefile True Crime", language="en",
                                   categories=["True Crime"],
                                   description="Anonymous host, real murder cases.")])
    pk = store.get_item("s1").pk
    store.replace_tags({pk: [("category", "True Crime", 1.0), ("taxonomy", "True Crime", 0.9),
                             ("keyphrase", "murder cases", 0.6),
                             ("keyphrase", "Anonymous host", 0.5)]},
                       sources=("category", "taxonomy", "keyphrase"))
    return store, pk


def test_generated_tags_are_stored_once_and_cached(sqlite_url: str) -> None:
    store, pk = _store_with_a_show(sqlite_url)
    answer = ('{"genres": ["True Crime", "Documentary"], "topics": ["murder cases", '
              '"Casefile", "forensic science", "history"]}')
    gen = Answers(answer, StoreCache(store))
    report = generate_tags(store, gen)
    assert (report.items, report.generated, report.fell_back) == (1, 1, 0)
    tags = store.tags_for([pk])[pk]
    generated = [t["tag"] for t in tags if t["source"] == SOURCE]
    # True Crime is a category; Casefile is the title; "history" names a label
    assert generated == ["murder cases", "forensic science"]  # labels are left to taxonomy
    keyphrases = [t["tag"] for t in tags if t["source"] == "keyphrase"]
    assert keyphrases == ["Anonymous host"]  # "murder cases" is now a generated tag
    again = generate_tags(store, Answers("garbage", StoreCache(store)), topics=4, labels=True)
    assert again.cached == 1 and again.generated == 0  # the store's cache answered
    labelled = [t["tag"] for t in store.tags_for([pk])[pk] if t["source"] == SOURCE]
    assert labelled == ["Documentary", "murder cases", "forensic science", "History"]
    store.close()


def test_without_a_generator_nothing_changes(sqlite_url: str) -> None:
    store, pk = _store_with_a_show(sqlite_url)
    before = store.tags_for([pk])[pk]
    report = generate_tags(store, NoGenerator())
    assert report.fell_back == 1 and report.reasons == {"absent": 1}
    assert store.tags_for([pk])[pk] == before
    store.close()


def test_genres_are_constrained_to_the_taxonomy() -> None:
    tagger = GeneratedTagger(NoGenerator())
    schema = tag_schema(tagger.labels)
    assert "True Crime" in schema["properties"]["genres"]["items"]["enum"]
    assert schema["properties"]["genres"]["maxItems"] == 2
    bad = Answers('{"genres": ["Murder"], "topics": []}')
    tags, result = GeneratedTagger(bad).tag(Item(id="x", title="A show", pk=1))
    assert tags is None and result.reason == "invalid"
