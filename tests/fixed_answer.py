"""A generator that answers every chat with the same text: for testing what podrec does with an
answer (checks, merges, caching, the background path), not the model."""

from __future__ import annotations

import json
from typing import Any

from podrec.llm.base import BaseGenerator, Message


class FixedAnswer(BaseGenerator):
    model_id = "fixed"

    def __init__(self, answer: str | dict[str, Any]) -> None:
        super().__init__()
        self.answer = answer if isinstance(answer, str) else json.dumps(answer,
                                                                        ensure_ascii=False)
        self.calls = 0

    @property
    def available(self) -> bool:
        return True

    def _complete(self, messages: list[Message], schema: dict[str, Any] | None,
                  max_tokens: int, timeout_s: float) -> str:
        self.calls += 1
        return self.answer
