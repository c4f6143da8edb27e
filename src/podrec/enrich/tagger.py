"""Tags with scores: zero-shot taxonomy labels by embedding similarity, and keyphrases.

Taxonomy tags come from the item's vector against the embedded label texts, so they cost one
matrix product once the catalog is embedded. Keyphrases come from yake (Latin-script text) or
jieba's TF-IDF (Chinese).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from podrec.enrich.embedders import TextEmbedder
from podrec.enrich.taxonomy import taxonomy_labels

_CJK = re.compile(r"[\u4e00-\u9fff]")


class TaxonomyTagger:
    """Zero-shot tagging against a category taxonomy: the labels nearest an item's vector.

    A label is kept when it is among the ``top_k`` nearest, scores at least ``min_score`` and
    lies within ``margin`` of the best label (scores of a model are relative, not absolute).
    """

    def __init__(self, embedder: TextEmbedder, top_k: int = 3, min_score: float = 0.0,
                 margin: float = 0.03, taxonomy: dict[str, list[str]] | None = None) -> None:
        if min_score <= 0:
            min_score = float(getattr(embedder, "tag_floor", 0.0))
        labels = taxonomy_labels(taxonomy)
        self.tags = [tag for tag, _ in labels]
        self.label_vectors = embedder.embed_queries([text for _, text in labels])
        self.top_k, self.min_score, self.margin = top_k, min_score, margin

    def tag(self, vectors: np.ndarray) -> list[list[tuple[str, float]]]:
        scores = np.asarray(vectors, dtype=np.float32) @ self.label_vectors.T
        out: list[list[tuple[str, float]]] = []
        for row in scores:
            order = np.argsort(-row)[: self.top_k]
            best = float(row[order[0]]) if len(order) else 0.0
            out.append([(self.tags[j], float(row[j])) for j in order
                        if row[j] >= self.min_score and row[j] >= best - self.margin])
        return out


class KeyphraseExtractor:
    """Keyphrases of a text: yake for Latin-script languages, jieba for Chinese."""

    def __init__(self, top_n: int = 5, max_chars: int = 1000) -> None:
        # yake's cost grows with the text and dominates enrich with a fast embedder: the
        # opening of a description carries its key phrases.
        self.top_n, self.max_chars = top_n, max_chars
        self._yake: dict[str, Any] = {}

    def _yake_for(self, language: str) -> Any:
        import yake

        if language not in self._yake:
            self._yake[language] = yake.KeywordExtractor(lan=language, n=2, top=self.top_n,
                                                         dedupLim=0.7)
        return self._yake[language]

    def extract(self, text: str, language: str | None) -> list[tuple[str, float]]:
        text = (text or "").strip()
        if not text:
            return []
        if language == "zh" or (language is None and _CJK.search(text)):
            import jieba
            import jieba.analyse

            jieba.setLogLevel(60)
            pairs = jieba.analyse.extract_tags(text[: self.max_chars], topK=self.top_n,
                                               withWeight=True)
            top = max((w for _, w in pairs), default=1.0) or 1.0
            return [(word, float(w) / top) for word, w in pairs]
        if language not in (None, "en", "es", "de", "fr", "pt", "it", "nl", "sv", "no", "da",
                            "pl", "tr", "id"):
            return []
        keywords = self._yake_for(language or "en").extract_keywords(text[: self.max_chars])
        # yake: lower is better; turn into a 0..1 score where higher is better.
        return [(kw, float(1.0 / (1.0 + score * 10))) for kw, score in keywords]
