"""A configured generator from the `[llm]` settings, cached in a store when one is given."""

from __future__ import annotations

from typing import Any

from podrec.llm.base import BaseGenerator, GenerationCache, MemoryCache, NoGenerator, StoreCache
from podrec.llm.models import default_model_installed, llama_cpp_importable


def resolve_backend(llm: Any) -> str:
    """The backend ``auto`` stands for here: local when llama-cpp-python and the default
    model (or ``model_path``) are installed, an endpoint when one is set, else none."""
    backend = llm.backend
    if backend != "auto":
        return backend
    if llm.endpoint:
        return "endpoint"
    if llama_cpp_importable() and (llm.model_path or default_model_installed(llm.cache_dir)):
        return "local"
    return "none"


def make_generator(config: Any, store: Any = None,
                   cache: GenerationCache | None = None) -> BaseGenerator:
    """The generator a `Config` (or its `LLMConfig`) asks for. Outputs are cached in the
    store's ``generations`` table when ``store`` is given, else in memory. Nothing is loaded
    until the first call, and nothing here raises for an absent model: that generator just
    falls back."""
    llm = getattr(config, "llm", config)
    if cache is None:
        cache = StoreCache(store) if store is not None else MemoryCache()
    backend = resolve_backend(llm)
    common = {"cache": cache, "max_tokens": llm.max_tokens, "timeout_s": llm.timeout_s}
    if backend == "endpoint":
        from podrec.llm.endpoint import EndpointGenerator

        return EndpointGenerator(llm.endpoint, llm.model, llm.api_key, **common)
    if backend in ("local", "gguf"):
        from podrec.llm.local import LocalGenerator

        path = llm.model_path or None
        if backend == "gguf" and not path:
            return NoGenerator(**common)
        return LocalGenerator(path, threads=llm.threads, context=llm.context,
                              cache_dir=llm.cache_dir or None, **common)
    return NoGenerator(**common)
