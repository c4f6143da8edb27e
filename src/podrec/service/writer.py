"""Generated text on the request path, without waiting on a slow local model.

A local model writes about ten tokens a second on a small CPU: one sentence costs seconds, a
list of ten reasons most of a minute. So on the request path only what it wrote before is
used (one read of the generation cache for a whole list); what is missing is queued for one
background thread, and the caller shows its template now. The next request with the same
facts finds the sentence. A generator behind an endpoint is asked live instead, all of a
list's misses within one ``llm.request_timeout_s``; whatever the time leaves is queued.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from podrec.llm.base import Message, StoreCache, input_key, parse_json

log = logging.getLogger("podrec.writer")

MAX_PENDING = 256  # jobs waiting for the background thread; more are left to the templates


@dataclass(frozen=True)
class Job:
    """One generation: the chat, its schema and token limit, and the cache's task name."""

    messages: list[Message]
    schema: dict[str, Any]
    max_tokens: int
    task: str
    owner: str | None = None  # the listener whose words or history are in it (not in the key)


@dataclass(frozen=True)
class Answer:
    """A job's parsed answer (None: use the template) and why: ``generated`` (from the
    cache or written live), ``pending`` (queued), or the generator's fallback reason."""

    data: Any
    state: str


class GenerationWriter:
    """``answer(jobs)``: each job's answer as fast as the configured generator allows."""

    def __init__(self, generator: Any, request_timeout_s: float = 5.0) -> None:
        self.generator = generator
        self.request_timeout_s = request_timeout_s
        self.live = type(generator).__name__ == "EndpointGenerator"
        self._queue: queue.Queue[tuple[str, Job | None]] = queue.Queue()
        self._pending: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def available(self) -> bool:
        return self.generator is not None and bool(getattr(self.generator, "available", False))

    def key(self, job: Job) -> str:
        return input_key(self.generator.model_id, job.messages, job.schema, job.max_tokens)

    def cached(self, jobs: list[Job]) -> list[Any]:
        """Each job's parsed answer from the cache, else None (one read for them all)."""
        keys = [self.key(j) for j in jobs]
        cache = self.generator.cache
        try:
            if isinstance(cache, StoreCache):
                found = cache.store.get_generations(sorted(set(keys)))
            else:
                found = {k: v for k in set(keys) if (v := cache.get(k)) is not None}
        except Exception as exc:  # noqa: BLE001 - a cache never breaks a request
            log.warning("generation cache unreadable: %s", exc)
            found = {}
        return [parse_json(found.get(k), j.schema) if k in found else None
                for k, j in zip(keys, jobs, strict=True)]

    def answer(self, jobs: list[Job], wait: bool | None = None) -> list[Answer]:
        """Cached answers; the misses written live (endpoint, or ``wait``) within
        ``request_timeout_s`` in all, else queued for the background."""
        if not jobs:
            return []
        if not self.available:
            return [Answer(None, "absent")] * len(jobs)
        live = self.live if wait is None else wait
        found = self.cached(jobs)
        out: list[Answer] = []
        deadline = time.monotonic() + self.request_timeout_s
        for job, data in zip(jobs, found, strict=True):
            if data is not None:
                out.append(Answer(data, "generated"))
            elif live and (left := deadline - time.monotonic()) > 0.05:
                gen = self.generator.generate(job.messages, job.schema, job.max_tokens,
                                              timeout_s=left, task=job.task)
                if gen.data is not None:
                    self._own(job)
                out.append(Answer(gen.data, "generated") if gen.data is not None
                           else self._queued(job, gen.reason or "error"))
            else:
                out.append(self._queued(job, "pending"))
        return out

    def write(self, job: Job) -> Answer:
        """Write one job now, with the generator's full time limit (batch work)."""
        if not self.available:
            return Answer(None, "absent")
        gen = self.generator.generate(job.messages, job.schema, job.max_tokens, task=job.task)
        if gen.data is not None:
            self._own(job)
        return Answer(gen.data, "generated" if gen.data is not None else gen.reason or "error")

    def _own(self, job: Job) -> None:
        """Note whose words or history went into a generation written for one listener, so
        deleting them deletes it (only generations written here: a cached one was written
        for someone else's identical input)."""
        cache = getattr(self.generator, "cache", None)
        if job.owner and isinstance(cache, StoreCache):
            try:
                cache.store.own_generation(self.key(job), job.owner)
            except Exception as exc:  # noqa: BLE001 - bookkeeping never breaks serving
                log.warning("generation's listener not noted: %s", exc)

    def _queued(self, job: Job, state: str) -> Answer:
        """Queue ``job`` for the background (a timed-out or busy one too: it may succeed with
        more time); ``state`` says why the caller falls back now."""
        if state in ("timeout", "busy", "pending"):
            self.schedule(job)
        return Answer(None, state)

    def schedule(self, job: Job) -> None:
        """Queue ``job`` for the background thread (stopped, with the job in progress cut
        short, when the service closes or the process exits: the answer is then just not
        cached)."""
        key = self.key(job)
        with self._lock:
            if self._stopping or key in self._pending or len(self._pending) >= MAX_PENDING:
                return
            self._pending[key] = None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="podrec-writer",
                                                daemon=True)
                self._thread.start()
                atexit.register(self.stop)
        self._queue.put((key, job))

    def _work(self) -> None:
        while True:
            key, job = self._queue.get()
            if job is None or self._stopping:
                self._queue.task_done()
                return
            try:  # the generator caches a valid answer under the job's key
                gen = self.generator.generate(job.messages, job.schema, job.max_tokens,
                                              task=job.task)
                if gen.data is not None:
                    self._own(job)
            except Exception as exc:  # noqa: BLE001 - background work never breaks serving
                log.warning("background %s failed: %s", job.task, exc)
            finally:
                with self._lock:
                    self._pending.pop(key, None)
                self._queue.task_done()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait(self) -> None:
        """Let the queued jobs finish (tests, benchmarks, the CLI)."""
        self._queue.join()

    def stop(self, seconds: float = 10.0) -> None:
        """Drop the queued jobs, cut the one in progress short and let the thread end: a
        process must not exit while the model runs on another thread (the native code
        crashes when the interpreter goes away under it)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        while True:
            try:
                self._queue.get_nowait()
                self._queue.task_done()
            except queue.Empty:
                break
        if thread is not None and thread.is_alive():
            self.generator.cancel()
            self._queue.put(("", None))  # wakes the thread to see it must stop
            thread.join(seconds)


def reason_job(facts: Any) -> Job:
    from podrec.recommend.wording import REASON_SCHEMA, REASON_TOKENS

    return Job(facts.messages(), REASON_SCHEMA, REASON_TOKENS, "reason")


def word_reasons(writer: GenerationWriter | None, results: list[Any], words: str | None,
                 titles: Any = None, owner: str | None = None) -> None:
    """Put a written reason on each explained result whose sentence passes the checks; the
    rest keep their template. ``reason_source`` says which, ``reason_fallback`` why not."""
    from podrec.recommend.wording import reason_facts

    todo = [r for r in results if r.reason is not None]
    if writer is None:
        for rec in todo:
            rec.reason_source, rec.reason_fallback = "template", "off"
        return
    facts = [reason_facts(r, words) for r in todo]
    answers = writer.answer([replace(reason_job(f), owner=owner) for f in facts])
    for rec, fact, answer in zip(todo, facts, answers, strict=True):
        text = answer.data.get("reason") if isinstance(answer.data, dict) else None
        why = fact.check(text, titles) if text is not None else answer.state
        if why is None:
            rec.reason, rec.reason_source, rec.reason_fallback = text.strip(), "generated", None
        else:
            rec.reason_source = "template"
            rec.reason_fallback = why if text is None else f"rejected ({why})"


def summary_job(facts: Any) -> Job:
    from podrec.profile.summaries import SUMMARY_SCHEMA, SUMMARY_TOKENS

    return Job(facts.messages(), SUMMARY_SCHEMA, SUMMARY_TOKENS, "summary")


def summarise(writer: GenerationWriter | None, facts: list[Any], wait: bool | None = None,
              owner: str | None = None) -> list[dict[str, Any]]:
    """Each interest's summary (its template label when none passes the checks):
    ``summary``, ``summary_source`` (generated | template) and ``summary_fallback``."""
    if writer is None:
        return [{"summary": f.label, "summary_source": "template", "summary_fallback": "off"}
                for f in facts]
    answers = writer.answer([replace(summary_job(f), owner=owner) for f in facts], wait)
    out = []
    for fact, answer in zip(facts, answers, strict=True):
        text = answer.data.get("summary") if isinstance(answer.data, dict) else None
        why = fact.check(text) if text is not None else answer.state
        if why is None:
            out.append({"summary": text.strip(), "summary_source": "generated",
                        "summary_fallback": None})
        else:
            out.append({"summary": fact.label, "summary_source": "template",
                        "summary_fallback": why if text is None else f"rejected ({why})"})
    return out
