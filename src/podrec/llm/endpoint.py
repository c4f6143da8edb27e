"""Any OpenAI-compatible chat endpoint: llama.cpp's server, llama-cpp-python's, Ollama, vLLM.

Structured output is asked for in the standard form (``response_format`` of type
``json_schema``) first; servers that refuse it (llama-cpp-python's answers 500) get the
``json_object`` form with the schema beside it, and the form that worked is remembered. The
answer is checked against the schema here either way, so a server that ignores both forms
still cannot hand back garbage.
"""

from __future__ import annotations

import logging
from typing import Any

from podrec.llm.base import BaseGenerator, GenerationCache, GenerationTimeout, Message

log = logging.getLogger(__name__)


class EndpointGenerator(BaseGenerator):
    """Chat completions from ``endpoint`` (the server's base URL, with or without /v1)."""

    def __init__(self, endpoint: str, model: str = "", api_key: str = "",
                 cache: GenerationCache | None = None, max_tokens: int = 128,
                 timeout_s: float = 30.0) -> None:
        super().__init__(cache, max_tokens, timeout_s)
        base = endpoint.rstrip("/")
        self.url = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
        self.model = model or "default"
        self.api_key = api_key
        self.model_id = f"endpoint:{base}:{self.model}"
        self._forms = ["json_schema", "json_object"]  # the working form moves to the front

    @property
    def available(self) -> bool:
        return bool(self.url.startswith(("http://", "https://")))

    def _complete(self, messages: list[Message], schema: dict[str, Any] | None,
                  max_tokens: int, timeout_s: float) -> str:
        import httpx

        if timeout_s <= 0:
            raise GenerationTimeout("no time left")
        body: dict[str, Any] = {"model": self.model, "messages": messages,
                                "max_tokens": max_tokens, "temperature": 0.0}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        forms = self._forms if schema is not None else [None]
        last: Exception | None = None
        for form in list(forms):
            if form is not None:
                body["response_format"] = response_format(form, schema or {})
            try:
                reply = httpx.post(self.url, json=body, headers=headers, timeout=timeout_s)
            except httpx.TimeoutException:
                raise GenerationTimeout(f"no answer in {timeout_s:.1f} s") from None
            if reply.status_code < 400:
                if form is not None and form != self._forms[0]:
                    self._forms.remove(form)
                    self._forms.insert(0, form)
                return str(reply.json()["choices"][0]["message"]["content"] or "")
            last = RuntimeError(f"{reply.status_code}: {reply.text[:200]}")
            if reply.status_code in (401, 403, 404):
                break  # another response_format will not help
        raise last or RuntimeError("no answer")


def response_format(form: str, schema: dict[str, Any]) -> dict[str, Any]:
    if form == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    return {"type": "json_object", "schema": schema}
