"""A GGUF model run in-process by llama-cpp-python.

Every call goes through plain completion: the chat is rendered with the model's own chat
template (or, for a GGUF without one, as a few-shot transcript, since llama-cpp would silently
apply the llama-2 template), and a grammar built from the JSON schema constrains the output.
Keeping the system prompt and few-shot examples identical across calls lets llama-cpp reuse
the processed prefix (its KV cache), so only the item's own text is read each time. A
stopping criterion enforces the time limit while tokens are written.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from podrec.llm.base import (
    BaseGenerator,
    GenerationCache,
    GenerationTimeout,
    GenerationUnavailable,
    Message,
)
from podrec.llm.models import ModelUnavailable, default_model_path, llama_cpp_importable

log = logging.getLogger(__name__)
CLOSE_WAIT_S = 120.0  # how long closing waits for a generation in progress to stop


class LocalGenerator(BaseGenerator):
    """llama-cpp-python over a GGUF file (``model_path``) or, without one, the default model."""

    # one load or close at a time in the process: llama.cpp's loader is not safe to run twice
    # at once (two generators loading on a request thread and the background writer together
    # crashed the process)
    _load_lock = threading.Lock()

    def __init__(self, model_path: str | Path | None = None, threads: int = 2,
                 context: int = 2048, cache: GenerationCache | None = None,
                 max_tokens: int = 128, timeout_s: float = 30.0,
                 cache_dir: str | Path | None = None, model_id: str | None = None) -> None:
        super().__init__(cache, max_tokens, timeout_s)
        self.model_path = Path(model_path).expanduser() if model_path else None
        self.cache_dir = cache_dir
        self.threads, self.context = max(1, threads), context
        if model_id:
            self.model_id = model_id
        elif self.model_path:
            self.model_id = self.model_path.stem.lower()
        else:
            from podrec.llm.models import DEFAULT_MODEL_ID

            self.model_id = DEFAULT_MODEL_ID
        self._llm: Any = None
        self._template: Any = None
        self._grammars: dict[str, Any] = {}
        self._broken: str | None = None
        self._cancel = threading.Event()  # set: the generation in progress stops

    @property
    def available(self) -> bool:
        if self._broken or not llama_cpp_importable():
            return False
        if self.model_path is not None:
            return self.model_path.is_file()
        from podrec.llm.models import default_model_installed

        return default_model_installed(self.cache_dir)

    def load(self) -> Any:
        """The loaded model (loaded once; assembles the default model on first use)."""
        if self._llm is not None:
            return self._llm
        with self._load_lock:
            if self._llm is not None:  # loaded by another thread meanwhile
                return self._llm
            if self._broken:
                raise GenerationUnavailable(self._broken)
            return self._load()

    def _load(self) -> Any:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # else 2 busy threads crawl
        try:
            from llama_cpp import Llama

            path = self.model_path or default_model_path(self.cache_dir)
            llm = _quiet_llama(Llama, model_path=str(path), n_ctx=self.context,
                               n_threads=self.threads, n_threads_batch=self.threads,
                               n_batch=512, seed=0)
        except (ImportError, ModelUnavailable, ValueError, OSError) as exc:
            self._broken = str(exc)
            raise GenerationUnavailable(str(exc)) from None
        self._template = _chat_formatter(llm)
        self._llm = llm
        return llm

    def render(self, messages: list[Message]) -> tuple[str, list[str]]:
        """The prompt text and stop strings for a chat, as this model expects it."""
        self.load()
        if self._template is not None:
            out = self._template(messages=messages)
            stops = out.stop if isinstance(out.stop, list) else [out.stop] if out.stop else []
            return out.prompt, stops
        return few_shot_text(messages), ["\n\n"]

    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(json.dumps(schema),
                                                                verbose=False)
        return self._grammars[key]

    def _complete(self, messages: list[Message], schema: dict[str, Any] | None,
                  max_tokens: int, timeout_s: float) -> str:
        from llama_cpp import StoppingCriteriaList

        llm = self.load()
        prompt, stops = self.render(messages)
        deadline = time.perf_counter() + max(timeout_s, 0.0)
        late = []
        self._cancel.clear()

        def out_of_time(_ids: Any, _logits: Any) -> bool:
            if time.perf_counter() > deadline or self._cancel.is_set():
                late.append(True)
                return True
            return False

        out = llm.create_completion(
            prompt, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0, stop=stops,
            grammar=self._grammar(schema) if schema else None,
            stopping_criteria=StoppingCriteriaList([out_of_time]))
        if late:
            raise GenerationTimeout(f"stopped after {timeout_s:.1f} s")
        return str(out["choices"][0]["text"])

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        """Free the model once no generation uses it: the one in progress is told to stop
        (at its next token) and waited for; freeing it under a running decode crashed the
        process. If it does not stop in time the model is left to the process's exit."""
        self._cancel.set()
        if not self._lock.acquire(timeout=CLOSE_WAIT_S):
            log.warning("%s still generating after %.0f s; not freed", self.model_id,
                        CLOSE_WAIT_S)
            return
        try:
            with self._load_lock:
                if self._llm is not None:
                    self._llm.close()
                    self._llm = None
        finally:
            self._lock.release()


def _quiet_llama(llama: Any, **kwargs: Any) -> Any:
    """A model loaded without its log. ``verbose=False`` would point the process's stdout and
    stderr file descriptors at /dev/null while the model loads, which loses whatever another
    thread prints meanwhile (a command's JSON, a server's log); so the loader runs verbose with
    Python's ``sys.stderr`` (where its log goes) captured, and is made quiet afterwards."""
    from llama_cpp._logger import set_verbose

    with contextlib.redirect_stderr(io.StringIO()):
        llm = llama(verbose=True, **kwargs)
    set_verbose(False)
    llm.verbose = False
    return llm


def few_shot_text(messages: list[Message]) -> str:
    """A chat as a plain transcript, for a base model: instructions, then Input/Output pairs."""
    lines: list[str] = []
    for m in messages:
        if m["role"] == "system":
            lines.append(m["content"].strip() + "\n")
        elif m["role"] == "user":
            lines.append(f"Input: {m['content'].strip()}")
        else:
            lines.append(f"Output: {m['content'].strip()}\n")
    return "\n".join(lines) + "\nOutput: "


def _chat_formatter(llm: Any) -> Any:
    """The model's own chat template as a formatter, or None when the GGUF has none."""
    template = (getattr(llm, "metadata", None) or {}).get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def text_of(token: int) -> str:
        if token < 0:
            return ""
        return llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    return Jinja2ChatFormatter(template=template, eos_token=text_of(llm.token_eos()),
                               bos_token=text_of(llm.token_bos()),
                               add_generation_prompt=True)
