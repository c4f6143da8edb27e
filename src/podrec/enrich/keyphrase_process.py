"""Keyphrases extracted in a second Python process, fed over pipes.

With a fast embedder, keyphrases are a large part of an enrich; a thread cannot take them off
the embedding's path, because the tokenizer keeps taking the GIL back, but another process can
use the core the embedder leaves idle. The child is a plain ``python -m`` of this module (not
``multiprocessing``, whose children import the caller's ``__main__`` again: a script that calls
``enrich`` without a ``__main__`` guard would run twice). Batches go down its stdin and their
phrases come back on its stdout, pickled, in order.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, BinaryIO

Texts = list[tuple[str, str | None]]  # (text, language) of each item
Phrases = list[list[tuple[str, float]]]


class KeyphraseProcess:
    """A child process extracting ``top_n`` keyphrases per text with ``engine``. ``submit``
    never blocks; a future fails with ``RuntimeError`` if the child dies or cannot answer."""

    def __init__(self, top_n: int, engine: str = "rake") -> None:
        # the child finds podrec where this process did (a checkout on sys.path included)
        env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "podrec.enrich.keyphrase_process", str(top_n), engine],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._waiting: deque[Future[Phrases]] = deque()  # answered in the order asked
        self._lock = threading.Lock()
        self._outbox: queue.SimpleQueue[Texts | None] = queue.SimpleQueue()
        self._broken: str | None = None
        self._writer = threading.Thread(target=self._write, name="podrec-keyphrases-in",
                                        daemon=True)
        self._reader = threading.Thread(target=self._read, name="podrec-keyphrases-out",
                                        daemon=True)
        self._writer.start()
        self._reader.start()

    def submit(self, texts: Texts) -> Future[Phrases]:
        future: Future[Phrases] = Future()
        with self._lock:
            if self._broken is not None:
                future.set_exception(RuntimeError(self._broken))
                return future
            self._waiting.append(future)
        self._outbox.put(texts)
        return future

    def _write(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while (texts := self._outbox.get()) is not None:
                pickle.dump(texts, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
        except (OSError, ValueError) as exc:  # the child went away
            self._fail(f"the keyphrase process stopped reading: {exc}")
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _read(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            while True:
                answer = pickle.load(stdout)
                with self._lock:
                    future = self._waiting.popleft()
                if isinstance(answer, str):  # the child's error for this batch
                    future.set_exception(RuntimeError(answer))
                else:
                    future.set_result(answer)
        except (EOFError, OSError, pickle.UnpicklingError, IndexError) as exc:
            code = self._proc.poll()
            self._fail("the keyphrase process stopped" + (f" (exit {code})" if code else "")
                       + (f": {exc}" if str(exc) else ""))

    def _fail(self, why: str) -> None:
        with self._lock:
            if self._broken is None:
                self._broken = why
            waiting, self._waiting = list(self._waiting), deque()
        for future in waiting:
            if not future.done():
                future.set_exception(RuntimeError(why))

    def close(self) -> None:
        """Let the child finish what it was given and stop; waits for it."""
        self._outbox.put(None)
        self._writer.join()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)
        self._fail("the keyphrase process was closed")
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def serve(top_n: int, engine: str, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The child's loop: a pickled batch in, its phrases (or an error message) out."""
    from podrec.enrich.tagger import KeyphraseExtractor

    extractor = KeyphraseExtractor(top_n, engine=engine)
    while True:
        try:
            texts = pickle.load(stdin)
        except EOFError:
            return
        answer: Any
        try:
            answer = [extractor.extract(text, language) for text, language in texts]
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which redoes it
            answer = f"{type(exc).__name__}: {exc}"
        pickle.dump(answer, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    # Our answers get the real stdout; anything a library prints goes to stderr instead.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(int(sys.argv[1]), sys.argv[2], sys.stdin.buffer, answers)
