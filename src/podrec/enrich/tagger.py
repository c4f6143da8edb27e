"""Tags with scores: zero-shot taxonomy labels by embedding similarity, and keyphrases.

Taxonomy tags come from the item's vector against the embedded label texts, so they cost one
matrix product once the catalog is embedded. Keyphrases of Latin-script text come from RAKE
(the default) or YAKE, of Chinese from jieba's TF-IDF. With a fast embedder keyphrases were
most of an enrich run's time: YAKE, even in Rust (``yake-rust``, the Python package's phrases
at a sixth of its cost), costs about 2 µs a character, more than WordLlama's embedding; RAKE
costs a fifth of that, shares about 60% of YAKE's cleaned phrases and names an item's hidden
genre as often (benchmarks/bench_enrich.py).
"""

from __future__ import annotations

import collections
import functools
import itertools
import re
from typing import Any

import numpy as np

from podrec.enrich.embedders import TextEmbedder
from podrec.enrich.taxonomy import taxonomy_labels

_CJK = re.compile(r"[\u4e00-\u9fff]")


@functools.cache
def _threadpools() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread() -> Any:
    """A context in which BLAS runs on the calling thread only (about 2 us to enter)."""
    return _threadpools().limit(limits=1, user_api="blas")


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
        # One BLAS thread: a batch's product is ~20 us of work, and OpenBLAS's threads, woken
        # for it beside the tokenizer's, made tagging a tenth of a WordLlama enrich's time
        # (README, "Speed": 0.30-0.33 -> 0.51-0.53 of the raw embedder, another job running).
        with one_blas_thread():
            scores = np.asarray(vectors, dtype=np.float32) @ self.label_vectors.T
        if not scores.size:
            return [[] for _ in range(len(scores))]
        # the batch's top_k labels at once (a row-by-row sort was a third of enrich's
        # tagging time with a fast embedder), best first
        k = min(self.top_k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        keep = (top_scores >= self.min_score) & (top_scores >= top_scores[:, :1] - self.margin)
        tags = self.tags
        return [[(tags[j], float(v)) for j, v, ok in zip(row, vals, mask, strict=True) if ok]
                for row, vals, mask in zip(top.tolist(), top_scores.tolist(), keep.tolist(),
                                           strict=True)]


# Languages YAKE has stop words for in both implementations (others get no keyphrases).
YAKE_LANGUAGES = ("en", "es", "de", "fr", "pt", "it", "nl", "sv", "no", "da", "pl", "tr", "id")
KEYPHRASE_ENGINES = ("rake", "rust", "python")
# RAKE: the punctuation that ends a phrase, and words (inner apostrophes and hyphens kept).
_RAKE_BREAK = re.compile(r"[.,;:!?()\[\]{}\"“”«»|/…–—&+*#@]+")
_RAKE_WORD = re.compile(r"\w(?:[\w'’-]*\w)?")


def rake(text: str, stopwords: set[str] | frozenset[str], top_n: int, max_words: int = 2
         ) -> list[tuple[str, float]]:
    """RAKE (Rose et al., 2010): runs of words between stop words and punctuation are the
    candidates, a word scores its degree over its frequency, a phrase the sum of its words'
    scores (each time it occurs). Runs longer than ``max_words`` give their ``max_words``-word
    windows, as YAKE's n-grams do. A lone lower-case word said once is no candidate. Scores
    are relative to the best phrase (1.0)."""
    runs: list[list[str]] = []  # lower-cased words
    surface: dict[str, str] = {}  # a phrase as first written
    for chunk in _RAKE_BREAK.split(text):
        tokens = _RAKE_WORD.findall(chunk)
        if not tokens:
            continue
        words = [t.lower() for t in tokens]
        keep = [not (w in stopwords or len(w) < 2 or w.isdigit()) for w in words]
        for kept, group in itertools.groupby(range(len(words)), keep.__getitem__):
            if not kept:
                continue
            span = list(group)
            a, b = span[0], span[-1] + 1
            runs.append(words[a:b])
            for i in range(a, max(a + 1, b - max_words + 1)):
                j = min(b, i + max_words)
                surface.setdefault(" ".join(words[i:j]), " ".join(tokens[i:j]))
    freq = collections.Counter(itertools.chain.from_iterable(runs))
    degree: dict[str, int] = {}
    for run in runs:
        n = len(run)
        for w in run:
            degree[w] = degree.get(w, 0) + n
    word_score = {w: degree[w] / f for w, f in freq.items()}.__getitem__
    scores: dict[str, float] = {}
    for run in runs:
        if len(run) == 1 and freq[run[0]] == 1 and surface[run[0]].islower():
            continue  # a common word said once ("the best show in history") names no topic
        for i in range(max(1, len(run) - max_words + 1)):
            gram = run[i:i + max_words]
            key = " ".join(gram)
            scores[key] = scores.get(key, 0.0) + sum(map(word_score, gram))
    best = sorted(scores.items(), key=lambda kv: -kv[1])[:top_n]
    top = best[0][1] if best else 1.0
    return [(surface[key], score / top) for key, score in best]


class KeyphraseExtractor:
    """Keyphrases of a text: RAKE or YAKE for Latin-script languages, jieba for Chinese.

    ``engine`` "rake" (the default; YAKE's stop words), "rust" (YAKE in ``yake-rust``) or
    "python" (the ``yake`` package; the same phrases as "rust"). Only the first ``max_chars``
    characters are read: the cost grows with the text, and the opening of a description
    carries its key phrases (500 against 1000 characters kept 91-94% of YAKE's cleaned
    phrases and named hidden genres as often; benchmarks/bench_enrich.py).
    """

    def __init__(self, top_n: int = 5, max_chars: int = 500, engine: str = "rake") -> None:
        if engine not in KEYPHRASE_ENGINES:
            raise ValueError(f"unknown keyphrase engine {engine!r}; expected one of "
                             f"{', '.join(KEYPHRASE_ENGINES)}")
        self.top_n, self.max_chars, self.engine = top_n, max_chars, engine
        self._yake: dict[str, Any] = {}
        self._stopwords: dict[str, set[str]] = {}  # RAKE's, by language

    def _yake_for(self, language: str) -> Any:
        if language not in self._yake:
            if self.engine in ("rust", "rake"):  # RAKE reads yake-rust's stop words
                import yake_rust

                self._yake[language] = yake_rust.Yake(language=language, ngrams=2,
                                                      deduplication_threshold=0.7)
            else:
                import yake

                self._yake[language] = yake.KeywordExtractor(lan=language, n=2,
                                                             top=self.top_n, dedupLim=0.7)
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
        if language is not None and language not in YAKE_LANGUAGES:
            return []
        extractor = self._yake_for(language or "en")
        text = text[: self.max_chars]
        if self.engine == "rake":
            stop = self._stopwords.get(language or "en")
            if stop is None:
                stop = self._stopwords[language or "en"] = set(extractor.stopwords)
            return rake(text, stop, self.top_n)
        if self.engine == "rust":
            keywords = extractor.get_n_best(text, n=self.top_n)
        else:
            keywords = extractor.extract_keywords(text)
        # YAKE: lower is better; turn into a 0..1 score where higher is better.
        return [(kw, float(1.0 / (1.0 + score * 10))) for kw, score in keywords]


# -- cleaning ---------------------------------------------------------------------------------

# A single word says little on a card ("True", "worst", "Scale"): it is kept only when it names
# a topic on its own (a taxonomy word, one of these, or an acronym such as NBA or AI).
TOPIC_WORDS = {
    "ai", "anime", "archaeology", "astrology", "bitcoin", "blockchain", "boxing", "buddhism",
    "cannabis", "chess", "climate", "coding", "cooking", "cosplay", "crypto", "cryptocurrency",
    "cycling", "dating", "design", "dinosaurs", "economics", "ecology", "entrepreneurship",
    "evolution", "fantasy", "feminism", "finance", "fishing", "football", "gaming",
    "gardening", "genealogy", "geography", "geology", "hiking", "horror", "hunting", "jazz",
    "journalism", "law", "linguistics", "literature", "marketing", "meditation", "mindfulness",
    "mma", "mythology", "neuroscience", "nutrition", "parenting", "photography", "poetry",
    "politics", "productivity", "programming", "psychology", "real estate", "retirement",
    "sailing", "skateboarding", "sleep", "sociology", "startups", "stocks", "surfing", "tarot",
    "theology", "travel", "vegan", "wine", "wrestling", "yoga", "zoology",
}
CJK_STOPWORDS = {
    "播客", "节目", "我们", "你们", "他们", "大家", "一个", "什么", "这个", "那个", "没有", "自己",
    "就是", "可以", "时候", "主播", "本期", "欢迎", "收听", "关注", "喜欢", "分享", "内容", "一起",
    "今天", "每周", "更新", "听众", "朋友", "一期", "这期", "嘉宾", "聊聊", "如何", "为什么",
    "以及", "还有", "如果", "因为", "所以", "但是", "这些", "那些", "时间", "问题", "生活", "世界",
    "帮助", "学习", "分析", "每天", "每期", "介绍", "讨论", "带来", "带你", "了解",
}
_WORD = re.compile(r"[\w'’-]+", re.UNICODE)
# The tail of a split contraction ("’ve found", "'s back") or a phrase opening on punctuation.
_FRAGMENT = re.compile(r"^(?:['’](?:ve|s|re|ll|d|m|t)\b|[^\w])", re.I)
_MINOR = {"a", "an", "the", "of", "and", "or", "in", "on", "for", "to", "with", "by", "at",
          "podcast", "podcasts", "show", "the show", "episode", "episodes"}


_POSSESSIVE = re.compile(r"['’]s$")


def _words(text: str) -> list[str]:
    """Lower-cased words without possessives ("Kimball’s" is "kimball")."""
    words = (w.lower().strip("'’-") for w in _WORD.findall(text or ""))
    return [_POSSESSIVE.sub("", w) if w.endswith(("s", "S")) else w for w in words]


def _significant(words: list[str]) -> set[str]:
    return {w for w in words if w and w not in _MINOR}


@functools.lru_cache(maxsize=4096)
def _tag_words(tag: str) -> frozenset[str]:
    """A tag's significant words (or the tag itself): the same labels and categories come
    back for item after item."""
    return frozenset(_significant(_words(tag)) or {tag.lower()})


def generic_single_word(phrase: str, vocabulary: set[str],
                        words: list[str] | None = None) -> bool:
    """True for a one-word phrase that names no topic by itself (``words``: its ``_words``,
    when the caller has them)."""
    phrase = phrase.strip()
    if _CJK.search(phrase):
        return len(phrase) < 2 or phrase in CJK_STOPWORDS
    words = _words(phrase) if words is None else words
    if len(words) != 1:
        return False
    word = phrase.strip("'’-")
    if word.isupper() and 2 <= len(word) <= 5:
        return False  # an acronym: NBA, AI, NFL
    return words[0] not in vocabulary and words[0] not in TOPIC_WORDS


def taxonomy_vocabulary(taxonomy: dict[str, list[str]] | None = None) -> set[str]:
    """Every taxonomy label, and each word of one, lower-cased (words that name a topic)."""
    out: set[str] = set()
    for tag, _ in taxonomy_labels(taxonomy):
        out.add(tag.lower())
        out.update(w for w in _words(tag) if w not in _MINOR)
    return out


def clean_phrases(phrases: list[tuple[str, float]], title: str = "",
                  other_tags: list[str] | tuple[str, ...] = (),
                  vocabulary: set[str] | None = None, author: str = "",
                  limit: int | None = None) -> list[tuple[str, float]]:
    """Keyphrases fit for a card: no single generic words, no fragments of the show's own
    title or author, no duplicates by case or inclusion (among themselves or of the item's
    other tags); of two overlapping phrases the better-scored stays. At most ``limit``, the
    best (None: all that are fit)."""
    vocabulary = vocabulary if vocabulary is not None else taxonomy_vocabulary()
    own = _significant(_words(title)) | _significant(_words(author))
    kept: list[tuple[str, float, set[str]]] = []
    taken = [_tag_words(t) for t in other_tags]
    for phrase, score in sorted(phrases, key=lambda p: -p[1]):
        if limit is not None and len(kept) >= limit:
            break
        phrase = " ".join(phrase.split())
        all_words = _words(phrase)
        words = _significant(all_words) or {phrase.lower()}
        if not phrase or generic_single_word(phrase, vocabulary, all_words) or \
                _FRAGMENT.match(phrase):
            continue
        if _CJK.search(phrase):
            if any(phrase in t or t in phrase for t in [title, *other_tags] if t) or \
                    any(phrase == p or phrase in p or p in phrase for p, _, _ in kept):
                continue
        elif words <= own or any(words <= t or t <= words for t in taken) or \
                any(words <= w or w <= words for _, _, w in kept):
            continue
        kept.append((phrase, score, words))
    return [(p, s) for p, s, _ in kept]
