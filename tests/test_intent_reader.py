"""Requests read into intents on the request path: the rules answer at once, a local model's
reading is written in the background and used from the next request on."""

from __future__ import annotations

from conftest import local_model_or_skip, needs_llama

from podrec.llm import NoGenerator
from podrec.service.intents import IntentReader
from podrec.service.writer import GenerationWriter


def test_without_a_generator_the_rules_answer():
    reader = IntentReader(GenerationWriter(NoGenerator()))
    intent = reader.read("funny science episodes under 20 minutes, no politics")
    assert intent.max_minutes == 20 and "politics" in intent.exclusions
    assert intent.fell_back and intent.source == "rules"


@needs_llama
def test_a_local_models_reading_is_written_in_the_background_and_used_next_time():
    from podrec.llm.local import LocalGenerator

    gen = LocalGenerator(threads=2, timeout_s=600)
    local_model_or_skip(gen.available)
    writer = GenerationWriter(gen)
    reader = IntentReader(writer)
    try:
        first = reader.read("history of ancient Rome and true crime")
        assert first.source == "rules" and first.fell_back == "pending"  # did not wait
        writer.wait()
        second = reader.read("history of ancient Rome and true crime")
        assert second.source == "model+rules" and second.fell_back is None
        assert len(second.topics) >= 2
    finally:
        gen.close()
