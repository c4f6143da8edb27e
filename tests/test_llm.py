"""The generator: schema checks, fallbacks, the cache, the real local model and a real
llama.cpp server on loopback (llama-cpp-python's own, with the tiny SmolLM2 for speed)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import HAS_LLAMA, needs_llama

from podrec.config import Config, LLMConfig, load_config
from podrec.llm import (
    BaseGenerator,
    MemoryCache,
    NoGenerator,
    StoreCache,
    make_generator,
    parse_json,
    schema_errors,
)
from podrec.llm.base import GenerationTimeout
from podrec.llm.endpoint import EndpointGenerator
from podrec.storage import Store

SCHEMA = {"type": "object",
          "properties": {"topics": {"type": "array", "items": {"type": "string",
                                                                "maxLength": 30},
                                    "maxItems": 2},
                         "mood": {"enum": ["", "funny", "dark"]}},
          "required": ["topics", "mood"], "additionalProperties": False}


class Scripted(BaseGenerator):
    """A backend that answers from a list (or raises), counting calls."""

    model_id = "scripted"

    def __init__(self, answers: list[object], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.answers, self.calls = list(answers), 0

    @property
    def available(self) -> bool:
        return True

    def _complete(self, messages, schema, max_tokens, timeout_s):  # type: ignore[override]
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)


# -- schema and fallbacks ------------------------------------------------------------------------

def test_schema_check_rejects_what_the_schema_forbids() -> None:
    assert schema_errors({"topics": ["a"], "mood": "funny"}, SCHEMA) == []
    assert schema_errors({"topics": ["a", "b", "c"], "mood": ""}, SCHEMA)  # maxItems
    assert schema_errors({"topics": ["a"], "mood": "sad"}, SCHEMA)  # enum
    assert schema_errors({"topics": ["a"]}, SCHEMA)  # required
    assert schema_errors({"topics": ["a"], "mood": "", "x": 1}, SCHEMA)  # additional
    assert schema_errors({"n": True}, {"properties": {"n": {"type": "integer"}}})
    assert parse_json('```json\n{"topics": [], "mood": ""}\n```', SCHEMA) == {"topics": [],
                                                                             "mood": ""}
    assert parse_json('Sure! {"topics": [], "mood": "dark"} hope it helps', SCHEMA)
    assert parse_json('{"topics": [', SCHEMA) is None
    assert parse_json("", SCHEMA) is None


def test_garbage_errors_and_timeouts_fall_back_and_say_why() -> None:
    gen = Scripted(["not json at all", '{"topics": ["x"], "mood": "sad"}',
                    RuntimeError("boom"), GenerationTimeout("slow")])
    reasons = [gen.generate("q", SCHEMA).reason for _ in range(4)]
    assert reasons == ["invalid", "invalid", "error", "timeout"]
    assert gen.generate_json("q", SCHEMA) is None  # nothing left to answer: an error


def test_a_valid_answer_is_cached_by_input_and_reused() -> None:
    gen = Scripted(['{"topics": ["history"], "mood": ""}', '{"topics": ["other"], "mood": ""}'])
    first = gen.generate("same prompt", SCHEMA)
    second = gen.generate("same prompt", SCHEMA)
    assert (first.source, second.source) == ("model", "cache")
    assert second.data == {"topics": ["history"], "mood": ""} and gen.calls == 1
    assert gen.generate("another prompt", SCHEMA).data == {"topics": ["other"], "mood": ""}
    assert gen.calls == 2


def test_a_model_busy_past_the_time_limit_is_a_fallback() -> None:
    gen = Scripted(['{"topics": [], "mood": ""}'])
    with gen._lock:  # another request holds the model
        result = gen.generate("p", SCHEMA, timeout_s=0.05)
    assert result.reason == "busy" and gen.calls == 0
    assert gen.generate("p", SCHEMA).source == "model"  # free again


def test_an_invalid_answer_is_not_cached() -> None:
    gen = Scripted(["garbage", '{"topics": [], "mood": "funny"}'])
    assert gen.generate("p", SCHEMA).fell_back
    assert gen.generate("p", SCHEMA).data == {"topics": [], "mood": "funny"}


def test_the_store_keeps_generations_across_generators(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    try:
        one = Scripted(['{"topics": ["jazz"], "mood": ""}'], cache=StoreCache(store))
        assert one.generate("p", SCHEMA, task="tags").source == "model"
        two = Scripted([], cache=StoreCache(store))  # would fail if it were asked
        again = two.generate("p", SCHEMA, task="tags")
        assert again.source == "cache" and again.data["topics"] == ["jazz"]
        assert store.count_generations("tags") == 1
    finally:
        store.close()


def test_store_generations_on_both_databases(db_url: str) -> None:
    store = Store(db_url)
    try:
        store.put_generation("k1", "m", "intent", "out-1", 1.5)
        store.put_generation("k1", "m", "intent", "out-2", 0.5)  # replaces
        store.put_generation("k2", "m", "tags", "x", 0.1)
        assert store.get_generations(["k1", "k2", "k3"]) == {"k1": "out-2", "k2": "x"}
        assert store.count_generations() == 2 and store.count_generations("tags") == 1
    finally:
        store.close()


def test_no_generator_always_falls_back_as_absent() -> None:
    result = NoGenerator().generate("anything", SCHEMA)
    assert result.fell_back and result.reason == "absent" and result.text is None


def test_configuration_chooses_the_backend(tmp_path: Path) -> None:
    assert isinstance(make_generator(LLMConfig(backend="none")), NoGenerator)
    gguf = make_generator(LLMConfig(backend="gguf", model_path=str(tmp_path / "none.gguf")))
    assert gguf.generate("x").reason == "absent"  # a missing file falls back, never raises
    endpoint = make_generator(Config(llm=LLMConfig(backend="endpoint",
                                                   endpoint="http://127.0.0.1:9")))
    assert isinstance(endpoint, EndpointGenerator)
    assert endpoint.url == "http://127.0.0.1:9/v1/chat/completions"
    auto = make_generator(LLMConfig())
    assert type(auto).__name__ == ("LocalGenerator" if HAS_LLAMA else "NoGenerator")
    config = load_config(None, env={"PODREC_LLM": "endpoint", "PODREC_LLM_ENDPOINT": "http://x"})
    assert (config.llm.backend, config.llm.endpoint) == ("endpoint", "http://x")
    toml = tmp_path / "c.toml"
    toml.write_text('[llm]\nbackend = "gpu"\n')
    with pytest.raises(ValueError, match="llm.backend"):
        load_config(toml, env={})


def test_an_unreachable_endpoint_falls_back() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = EndpointGenerator(f"http://127.0.0.1:{port}", timeout_s=5)
    assert gen.generate("hi", SCHEMA).reason == "error"


# -- the real local model ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def qwen():
    from podrec.llm.local import LocalGenerator

    gen = LocalGenerator(threads=2, cache=MemoryCache(), max_tokens=64, timeout_s=600)
    yield gen
    gen.close()


@needs_llama
def test_the_local_model_answers_json_that_matches_the_schema(qwen) -> None:
    result = qwen.generate([{"role": "system", "content": "Answer JSON: topics and mood."},
                            {"role": "user", "content": "funny history podcasts"}],
                           SCHEMA, max_tokens=40)
    assert result.source == "model", result.reason
    assert schema_errors(result.data, SCHEMA) == []
    assert result.model_id == "qwen2.5-coder-0.5b-instruct-q4_k_m"


@needs_llama
def test_the_local_model_stops_at_its_time_limit(qwen) -> None:
    result = qwen.generate("Write a long story about a lighthouse.", None, max_tokens=200,
                           timeout_s=0.0)
    assert result.fell_back and result.reason == "timeout"


@needs_llama
def test_a_missing_gguf_falls_back(tmp_path: Path) -> None:
    from podrec.llm.local import LocalGenerator

    gen = LocalGenerator(tmp_path / "absent.gguf")
    assert not gen.available and gen.generate("x", SCHEMA).reason == "absent"


@needs_llama
def test_any_gguf_path_works_with_or_without_a_chat_template() -> None:
    from podrec.llm.local import LocalGenerator
    from podrec.llm.models import smollm2_path

    gen = LocalGenerator(smollm2_path(), threads=2, context=512, max_tokens=40,
                         timeout_s=600)
    try:
        templated = gen.generate("Name two topics.", SCHEMA)
        assert schema_errors(templated.data, SCHEMA) == [], templated.reason
        gen._template = None  # as a GGUF without tokenizer.chat_template: few-shot text
        prompt, stops = gen.render([{"role": "system", "content": "Tag it."},
                                    {"role": "user", "content": "a show"}])
        assert prompt.endswith("Input: a show\nOutput: ") and stops == ["\n\n"]
        plain = gen.generate("Name one topic.", SCHEMA)
        assert schema_errors(plain.data, SCHEMA) == [], plain.reason
    finally:
        gen.close()


# -- a real llama.cpp server (OpenAI-compatible) on loopback ---------------------------------------

@pytest.fixture(scope="module")
def llama_server():
    from podrec.llm.models import smollm2_path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                pytest.fail("the llama.cpp server exited")
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the llama.cpp server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@needs_llama
def test_a_real_server_answers_schema_json_and_is_cached(llama_server: str) -> None:
    gen = EndpointGenerator(llama_server, api_key="secret", timeout_s=600, max_tokens=40)
    first = gen.generate([{"role": "user", "content": "Topics of a true crime podcast?"}],
                         SCHEMA)
    assert first.source == "model", first.reason
    assert schema_errors(first.data, SCHEMA) == []
    # llama-cpp-python's server refuses the standard json_schema form: the fallback form won
    assert gen._forms[0] == "json_object"
    again = gen.generate([{"role": "user", "content": "Topics of a true crime podcast?"}],
                         SCHEMA)
    assert again.source == "cache" and again.data == first.data


@needs_llama
def test_a_real_server_that_is_too_slow_falls_back(llama_server: str) -> None:
    gen = EndpointGenerator(llama_server, timeout_s=0.001)
    assert gen.generate("Write a poem about the sea.", max_tokens=100).reason == "timeout"
