"""Reasons in words: a sentence written from an item's evidence is shown only when it names
nothing the evidence did not give; the request path never waits on a local model (the
template now, the written sentence from the next request on); no generator, the template."""

from __future__ import annotations

import pytest
from conftest import local_model_or_skip, needs_llama
from fixed_answer import FixedAnswer

from podrec.llm.base import NoGenerator
from podrec.recommend.results import Recommendation
from podrec.recommend.wording import reason_facts
from podrec.service.writer import GenerationWriter, word_reasons
from podrec.written import CatalogTitles, Names, check_sentence, invented_names, language_of


def recommendation(title: str = "Casefile True Crime", language: str = "en") -> Recommendation:
    return Recommendation(
        id="1", kind="show", title=title, score=1.0, categories=["True Crime"],
        language=language, reason="Because you subscribed to “Crime Junkie”.",
        evidence=[{"type": "item", "id": "2", "title": "Crime Junkie", "event": "subscribe",
                   "share": 0.9},
                  {"type": "tag", "tag": "True Crime"}])


def written(sentence: str, rec: Recommendation | None = None,
            titles: CatalogTitles | None = None) -> Recommendation:
    """``rec`` after a generator that always answers ``sentence`` wrote its reason (asked
    live, as an endpoint is)."""
    rec = rec or recommendation()
    writer = GenerationWriter(FixedAnswer({"reason": sentence}))
    writer.live = True
    word_reasons(writer, [rec], None, titles)
    return rec


def test_a_sentence_naming_only_the_evidence_is_shown():
    rec = written("Since you subscribed to “Crime Junkie”, “Casefile True Crime” brings you "
                  "more True Crime stories.")
    assert rec.reason_source == "generated" and rec.reason_fallback is None
    assert rec.reason.startswith("Since you subscribed")
    assert rec.to_dict()["reason_source"] == "generated"


@pytest.mark.parametrize("sentence", [
    "Fans of “Serial” will love “Casefile True Crime”.",  # a quoted show not in the evidence
    "Since you like Crime Junkie, try My Favorite Murder next.",  # a capitalised name
    "Since you like Crime Junkie, you may enjoy the Casefile team.",
])
def test_a_sentence_naming_an_invented_show_falls_back_to_the_template(sentence):
    rec = written(sentence, titles=CatalogTitles(["My Favorite Murder", "Serial"]))
    if "Casefile team" in sentence:  # "Casefile" is part of the item's own title: allowed
        assert rec.reason_source == "generated"
        return
    assert rec.reason_source == "template"
    assert rec.reason == "Because you subscribed to “Crime Junkie”."
    assert rec.reason_fallback.startswith("rejected (invented")


def test_a_chinese_catalog_title_not_in_the_evidence_is_rejected():
    titles = CatalogTitles(["美股早咖啡", "一起說故事"])
    names = Names(["游庭皓的財經皓角", "Business"])
    assert check_sentence("你喜欢《游庭皓的財經皓角》，也会喜欢这档财经节目。", names, "zh", 200,
                          titles) is None
    assert check_sentence("你喜欢游庭皓的財經皓角，也会喜欢美股早咖啡。", names, "zh", 200,
                          titles) == "other show: 美股早咖啡"


def test_empty_long_or_wrong_language_sentences_are_rejected():
    names = Names(["Crime Junkie"])
    assert check_sentence("", names, "en", 200) == "empty"
    assert check_sentence("word " * 60, names, "en", 200) == "too long"
    assert check_sentence("你会喜欢这个真实罪案节目。", names, "en", 200) == "language"
    assert check_sentence("You will like this true crime show.", names, "zh", 200) == "language"
    assert invented_names("Perfect for a quiet evening with Crime Junkie.", names) == []


def test_the_listener_language_is_chinese_when_their_words_or_the_item_are():
    rec = recommendation()
    assert reason_facts(rec, "true crime please").language == "en"
    assert reason_facts(rec, "我想听真实罪案").language == "zh"
    assert reason_facts(recommendation("美股早咖啡", "zh")).language == "zh"
    assert language_of("Crime Junkie", None) == "en"
    lines = reason_facts(rec, "我想听真实罪案").lines()
    assert "《Crime Junkie》" in lines and "推荐节目" in lines


def test_a_local_model_is_not_waited_on_and_the_next_request_gets_its_sentence():
    gen = FixedAnswer({"reason": "Since you subscribed to “Crime Junkie”, try more True Crime."})
    writer = GenerationWriter(gen)  # not an endpoint: never asked on the request path
    first = recommendation()
    word_reasons(writer, [first], None)
    assert first.reason_source == "template" and first.reason_fallback == "pending"
    writer.wait()
    second = recommendation()
    word_reasons(writer, [second], None)
    assert second.reason_source == "generated" and gen.calls == 1  # written once, then cached


def test_without_a_generator_the_template_stands():
    rec = recommendation()
    word_reasons(GenerationWriter(NoGenerator()), [rec], None)
    assert rec.reason_source == "template" and rec.reason_fallback == "absent"
    off = recommendation()
    word_reasons(None, [off], None)
    assert off.reason_source == "template" and off.reason_fallback == "off"
    assert off.to_dict()["reason"] == "Because you subscribed to “Crime Junkie”."


def test_reasons_can_be_turned_off(sample_app):
    assert not sample_app.config.llm.reasons  # conftest: template wording in other tests
    recs = sample_app.recommend(user_id="demo-listener", k=2, explain=True)
    assert all(r.reason_source == "template" and r.reason_fallback == "off" for r in recs)


@needs_llama
def test_the_local_model_words_a_sample_listeners_reason(sample_app):
    """The real model, for the demo listener's top item: written in the background after the
    first request, shown (having passed the checks) from the next one."""
    from dataclasses import replace

    local_model_or_skip(sample_app.models.generator().available)
    config, gen = sample_app.config, sample_app.models.generator()
    sample_app.config = replace(config, llm=replace(config.llm, reasons=True))
    limit, gen.timeout_s = gen.timeout_s, 600.0  # a loaded box: no time-out in the background
    try:
        first = sample_app.recommend(user_id="demo-listener", k=1, explain=True)
        assert first[0].reason_source in ("template", "generated")
        sample_app.models.writer().wait()
        again = sample_app.recommend(user_id="demo-listener", k=1, explain=True)
    finally:
        sample_app.config, gen.timeout_s = config, limit
    rec = again[0]
    assert rec.reason_source == "generated", rec.reason_fallback
    assert reason_facts(rec).check(rec.reason) is None
