"""Generative models: one `TextGenerator` protocol over a local GGUF model (llama-cpp-python),
any OpenAI-compatible endpoint, or none; and what podrec writes with them (tags, intents)."""

from podrec.llm.base import (
    BaseGenerator,
    Generation,
    MemoryCache,
    NoGenerator,
    StoreCache,
    TextGenerator,
    parse_json,
    schema_errors,
)
from podrec.llm.factory import make_generator, resolve_backend

__all__ = ["BaseGenerator", "Generation", "MemoryCache", "NoGenerator", "StoreCache",
           "TextGenerator", "make_generator", "parse_json", "resolve_backend", "schema_errors"]
