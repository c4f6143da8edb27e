"""Requests read into intents on the request path, without waiting on a slow local model.

The rules (podrec.llm.intents.parse_rules) answer at once. The model's reading goes through
the worker's ``GenerationWriter`` (service/writer.py), as reasons and summaries do: a
generator behind an endpoint is asked live within ``llm.request_timeout_s``; a local model's
reading is used when it was written before, else it is queued for the background and the next
request with the same words gets it. Either way the request never fails: the rules stand in
and the intent says why.
"""

from __future__ import annotations

from dataclasses import replace

from podrec.llm.intents import (
    INTENT_SCHEMA,
    Intent,
    intent_messages,
    merge,
    model_intent,
    parse_rules,
)
from podrec.service.writer import GenerationWriter, Job

INTENT_TOKENS = 120  # the longest answer the schema allows; most need about 40


def intent_job(text: str) -> Job:
    return Job(intent_messages(text), INTENT_SCHEMA, INTENT_TOKENS, "intent")


class IntentReader:
    """``read(text)`` → the text's intent, as fast as the worker's generator allows."""

    def __init__(self, writer: GenerationWriter | None) -> None:
        self.writer = writer

    def read(self, text: str, wait: bool | None = None, owner: str | None = None) -> Intent:
        """The model's reading merged with the rules', or the rules' alone (``fell_back``:
        why: ``pending`` while the model writes it, ``absent``, ``timeout``...). ``wait``:
        write a missing reading now, with the generator's full time limit. ``owner``: the
        listener who wrote ``text`` (a reading written for them is deleted with them)."""
        rules = parse_rules(text)
        if self.writer is None:
            rules.fell_back = "none"
            return rules
        job = replace(intent_job(text), owner=owner)
        answer = self.writer.write(job) if wait else self.writer.answer([job])[0]
        if not isinstance(answer.data, dict):
            rules.fell_back = answer.state
            return rules
        return merge(model_intent(text, answer.data), rules)
