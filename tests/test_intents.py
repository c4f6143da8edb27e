"""Reading requests into intents: the rules alone (backend none), the merge with a model's
answer, the labelled set's accuracy floor, and the real local model on two requests."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import needs_llama
from fixed_answer import FixedAnswer

from podrec.llm import NoGenerator
from podrec.llm.intents import (
    INTENT_SCHEMA,
    detect_language,
    intent_messages,
    parse_intent,
    parse_rules,
)
from podrec.llm.scoring import accuracy, load_labelled

FIXTURES = Path(__file__).parent / "fixtures"


def test_two_topics_become_two() -> None:
    intent = parse_intent("history of ancient Rome and true crime")
    assert len(intent.topics) == 2
    assert "rome" in intent.topics[0].lower() and intent.topics[1].lower() == "true crime"
    assert intent.language == "en" and intent.fell_back == "none"


def test_chinese_request_with_a_length_limit() -> None:
    intent = parse_intent("学习投资理财的播客，不要太长", NoGenerator())
    assert intent.topics == ["投资理财"] and intent.max_minutes == 30
    assert intent.language == "zh" and intent.exclusions == []
    assert intent.source == "rules" and intent.fell_back == "absent"


@pytest.mark.parametrize(("text", "field", "value"), [
    ("funny science episodes under 20 minutes, no politics", "exclusions", ["politics"]),
    ("funny science episodes under 20 minutes, no politics", "max_minutes", 20),
    ("funny science episodes under 20 minutes, no politics", "kind", "episode"),
    ("true crime but funny", "mood", "funny"),
    ("true crime but funny", "topics", ["true crime"]),
    ("讲中国古代历史的，不要太严肃", "mood", None),  # a negated mood is not the mood
    ("想听历史和科技的播客，半小时以内", "max_minutes", 30),
    ("想听历史和科技的播客，半小时以内", "topics", ["历史", "科技"]),
    ("不要政治，推荐一些搞笑的脱口秀", "exclusions", ["政治"]),
    ("英文的科技播客", "language", "en"),
    ("tech news and AI, max 15 minutes", "topics", ["tech news", "AI"]),
    ("calm meditation podcasts under half an hour", "max_minutes", 30),
    ("关于育儿的播客，一个小时以内", "max_minutes", 60),
])
def test_rules(text: str, field: str, value: object) -> None:
    assert getattr(parse_rules(text), field) == value


def test_language_by_script() -> None:
    assert [detect_language(t) for t in ("播客", "ポッドキャスト", "팟캐스트", "подкаст",
                                         "podcast", "123")] == ["zh", "ja", "ko", "ru", "en",
                                                                None]


def test_the_model_fills_topics_the_rules_missed_and_the_rules_keep_the_rest() -> None:
    model = FixedAnswer('{"topics": ["sleep sounds"], "exclusions": ["ads"], '
                    '"max_minutes": 90, "kind": "episode", "mood": "funny"}')
    intent = parse_intent("anything, under 40 minutes, no politics", model)
    assert parse_rules("anything, under 40 minutes, no politics").topics == []
    assert intent.source == "model+rules" and intent.fell_back is None
    assert intent.exclusions == ["politics", "ads"]
    assert (intent.max_minutes, intent.kind, intent.mood) == (40, "show", None)
    named = parse_intent("ancient Rome and true crime", FixedAnswer(
        '{"topics": ["Roman history"], "exclusions": [], "max_minutes": 0, "kind": "show", '
        '"mood": ""}'))
    assert named.topics == ["ancient Rome", "true crime"]  # the rules found both


def test_a_garbage_answer_leaves_the_rules_reading() -> None:
    intent = parse_intent("history of ancient Rome and true crime", FixedAnswer("I think rome"))
    assert intent.fell_back == "invalid" and intent.source == "rules"
    assert len(intent.topics) == 2


def test_the_labelled_sets_are_big_enough_and_the_rules_read_them() -> None:
    rows = load_labelled(FIXTURES / "intents.jsonl")
    chinese = [r for r in rows if detect_language(r["text"]) == "zh"]
    assert len(rows) >= 60 and len(chinese) >= len(rows) / 2
    scores = accuracy([(parse_rules(r["text"]), r) for r in rows])
    assert scores["topics"] >= 0.85 and scores["max_minutes"] >= 0.9  # docs/results/intents.md
    held = load_labelled(FIXTURES / "intents_heldout.jsonl")
    assert accuracy([(parse_rules(r["text"]), r) for r in held])["all"] >= 0.8


@needs_llama
def test_the_local_model_reads_two_requests() -> None:
    from podrec.llm.local import LocalGenerator

    gen = LocalGenerator(threads=2, timeout_s=600)  # generous: the box may be busy
    try:
        two = parse_intent("history of ancient Rome and true crime", gen)
        assert two.source == "model+rules", two.fell_back
        assert any("crime" in t.lower() for t in two.topics)
        assert any("rom" in t.lower() for t in two.topics)
        zh = parse_intent("学习投资理财的播客，不要太长", gen)
        assert zh.max_minutes == 30 and zh.language == "zh"
        assert any("投资" in t or "理财" in t or "invest" in t.lower() for t in zh.topics)
        raw = gen.generate(intent_messages("学习投资理财的播客，不要太长"), INTENT_SCHEMA,
                           max_tokens=120)
        assert raw.source == "cache" and set(raw.data) == set(INTENT_SCHEMA["properties"])
    finally:
        gen.close()
