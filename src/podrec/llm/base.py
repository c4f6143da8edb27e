"""The generator protocol, its result type, JSON checking and the cache every backend shares.

A generator turns a chat (or a prompt) into text, optionally constrained to a JSON schema. It
never raises into its caller: an absent model, a time-out, an error or output that does not
match the schema come back as a `Generation` that says it fell back and why, so every use has
a rule-based path to take instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}
Prompt = str | Sequence[Message]


@dataclass(frozen=True)
class Generation:
    """What one call produced. ``fell_back`` is true when ``text`` must not be used."""

    text: str | None
    data: Any = None  # the parsed JSON when a schema was given and the text matched it
    source: str = "model"  # model | cache | fallback
    reason: str | None = None  # why it fell back: absent | timeout | invalid | busy | error
    model_id: str = "none"
    seconds: float = 0.0

    @property
    def fell_back(self) -> bool:
        return self.source == "fallback"


@runtime_checkable
class TextGenerator(Protocol):
    """Text (or schema-constrained JSON) from a chat; every backend follows this."""

    model_id: str

    @property
    def available(self) -> bool: ...

    def generate(self, prompt: Prompt, schema: dict[str, Any] | None = None,
                 max_tokens: int | None = None, timeout_s: float | None = None,
                 task: str = "text") -> Generation: ...

    def generate_json(self, prompt: Prompt, schema: dict[str, Any],
                      max_tokens: int | None = None, timeout_s: float | None = None,
                      task: str = "json") -> Any | None: ...


class GenerationCache(Protocol):
    """Outputs by input hash (the store's ``generations`` table, or memory)."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, model_id: str, task: str, output: str, seconds: float) -> None: ...


class MemoryCache:
    """A process-local cache, for a generator without a store."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self._data.get(key)

    def put(self, key: str, model_id: str, task: str, output: str, seconds: float) -> None:
        self._data[key] = output


class StoreCache:
    """The store's ``generations`` table: outputs survive restarts and are shared by workers."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, key: str) -> str | None:
        try:
            return self.store.get_generations([key]).get(key)
        except Exception as exc:  # noqa: BLE001 - a cache must never break a generation
            log.warning("generation cache unreadable: %s", exc)
            return None

    def put(self, key: str, model_id: str, task: str, output: str, seconds: float) -> None:
        try:
            self.store.put_generation(key, model_id, task, output, seconds)
        except Exception as exc:  # noqa: BLE001
            log.warning("generation cache not written: %s", exc)


def as_messages(prompt: Prompt) -> list[Message]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def input_key(model_id: str, prompt: Prompt, schema: dict[str, Any] | None,
              max_tokens: int) -> str:
    """sha256 of everything that decides an output: same key, same answer (temperature 0)."""
    blob = json.dumps([model_id, as_messages(prompt), schema, max_tokens], ensure_ascii=False,
                      sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def parse_json(text: str | None, schema: dict[str, Any]) -> Any | None:
    """The JSON in ``text`` when it parses and matches ``schema``; None otherwise."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            return None
        try:
            value = json.loads(text[start:end + 1])
        except (json.JSONDecodeError, ValueError):
            return None
    return value if schema_errors(value, schema) == [] else None


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


def _type_ok(value: Any, kind: str | list[str]) -> bool:
    kinds = [kind] if isinstance(kind, str) else kind
    for k in kinds:
        if k in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, _TYPES.get(k, (object,))):
            return True
    return False


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema``: the JSON-schema subset the prompts use (type, enum,
    properties, required, additionalProperties, items, min/maxItems, maxLength, min/max)."""
    errors: list[str] = []
    if "type" in schema and not _type_ok(value, schema["type"]):
        return [f"{path}: expected {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: not one of the allowed values"]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{path}.{k}: missing" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            errors += [f"{path}.{k}: not allowed" for k in value if k not in props]
        for k, sub in props.items():
            if k in value:
                errors += schema_errors(value[k], sub, f"{path}.{k}")
    elif isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: too many items")
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: too few items")
        for i, v in enumerate(value):
            errors += schema_errors(v, schema.get("items", {}), f"{path}[{i}]")
    elif isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        errors.append(f"{path}: too long")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            errors.append(f"{path}: out of range")
    return errors


class BaseGenerator:
    """Caching, time-keeping, checking and fallback around a backend's ``_complete``.

    Subclasses set ``model_id`` and implement ``_complete`` (raise on failure) and
    ``available``; they may raise `GenerationTimeout` when their time runs out.
    """

    model_id = "none"

    def __init__(self, cache: GenerationCache | None = None, max_tokens: int = 128,
                 timeout_s: float = 30.0) -> None:
        self.cache: GenerationCache = cache if cache is not None else MemoryCache()
        self.max_tokens, self.timeout_s = max_tokens, timeout_s
        self._lock = threading.Lock()  # one generation at a time per model

    @property
    def available(self) -> bool:
        return False

    def _complete(self, messages: list[Message], schema: dict[str, Any] | None,
                  max_tokens: int, timeout_s: float) -> str:
        raise GenerationUnavailable("no generator configured")

    def generate(self, prompt: Prompt, schema: dict[str, Any] | None = None,
                 max_tokens: int | None = None, timeout_s: float | None = None,
                 task: str = "text") -> Generation:
        """Text for ``prompt`` (JSON matching ``schema`` when given), from the cache or the
        model; a fallback `Generation` on any failure."""
        max_tokens = max_tokens or self.max_tokens
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        key = input_key(self.model_id, prompt, schema, max_tokens)
        cached = self.cache.get(key)
        if cached is not None:
            data = parse_json(cached, schema) if schema else None
            if schema is None or data is not None:
                return Generation(cached, data, "cache", model_id=self.model_id)
        if not self.available:
            return self._fallback("absent")
        start = time.perf_counter()
        if not self._lock.acquire(timeout=max(timeout_s, 0.0)):
            return self._fallback("busy", time.perf_counter() - start)
        try:
            text = self._complete(as_messages(prompt), schema, max_tokens,
                                  timeout_s - (time.perf_counter() - start))
        except GenerationTimeout:
            return self._fallback("timeout", time.perf_counter() - start)
        except GenerationUnavailable:
            return self._fallback("absent", time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - a generator never breaks its caller
            log.warning("%s failed: %s", self.model_id, exc)
            return self._fallback("error", time.perf_counter() - start)
        finally:
            self._lock.release()
        seconds = time.perf_counter() - start
        data = parse_json(text, schema) if schema else None
        if schema is not None and data is None:
            return self._fallback("invalid", seconds)
        self.cache.put(key, self.model_id, task, text, seconds)
        return Generation(text, data, "model", model_id=self.model_id, seconds=seconds)

    def generate_json(self, prompt: Prompt, schema: dict[str, Any],
                      max_tokens: int | None = None, timeout_s: float | None = None,
                      task: str = "json") -> Any | None:
        """The parsed, schema-checked JSON answer, or None when the caller must fall back."""
        return self.generate(prompt, schema, max_tokens, timeout_s, task).data

    def _fallback(self, reason: str, seconds: float = 0.0) -> Generation:
        return Generation(None, None, "fallback", reason, self.model_id, seconds)

    def cancel(self) -> None:
        """Stop a generation in progress soon (it falls back); later ones run as usual."""

    def close(self) -> None:
        """Free the model (a no-op for backends that hold none)."""


class GenerationTimeout(RuntimeError):
    """The backend ran out of time; the caller falls back."""


class GenerationUnavailable(RuntimeError):
    """The backend cannot run here (model file or library absent)."""


class NoGenerator(BaseGenerator):
    """The ``none`` backend: every call falls back at once, so callers use their rules."""

    model_id = "none"
