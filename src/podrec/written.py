"""Checks on sentences a generator wrote for listeners: their script, their length, and that
they name nothing the facts behind them did not name.

A small model asked to explain a recommendation will now and then name a show it was never
told about. A reason that recommends one show by praising another misleads, so every written
sentence is checked before it is shown, and anything that fails is replaced by the template.
What counts as a *name*: text in quotation marks (“…”, "…", 《…》, 「…」, «…»), runs of
capitalised words, and catalog titles (Chinese titles have no capitals, so they are looked up).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{3,}")
QUOTED = re.compile(r"[“\"«《「『]\s*([^”\"»》」』\n]{1,120}?)\s*[”\"»》」』]")
WORD = re.compile(r"[^\W_][\w'’&.+-]*", re.UNICODE)
SENTENCE_END = re.compile(r"[.!?:;。！？；：]\s*$")
CONNECTORS = {"of", "the", "and", "&", "in", "on", "for", "a", "to", "de", "la", "with"}
# capitalised words that name no show: the listener, days, months, languages, common nouns
GENERIC_CAPS = {
    "i", "i'm", "i’m", "you", "podcast", "podcasts", "episode", "episodes", "show", "shows",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "english", "chinese", "spanish", "german", "french",
    "tv", "ok",
}
PUNCT = " \t\n.,;:!?'’\"“”()[]《》「」«»。，；：！？、"


def one_shot_chat(system: str, example: str, answer: dict[str, str], facts: str
                  ) -> list[dict[str, str]]:
    """The chat for one written sentence: the system prompt and one worked example, the same
    on every call (the model reuses their processed prefix), then this item's facts."""
    return [{"role": "system", "content": system}, {"role": "user", "content": example},
            {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)},
            {"role": "user", "content": facts}]


def has_chinese(text: str | None) -> bool:
    """Whether ``text`` is (largely) Chinese: Han characters are a fifth of its letters."""
    if not text:
        return False
    han = len(HAN.findall(text))
    letters = sum(ch.isalpha() for ch in text)
    return han >= 2 and han >= 0.2 * max(letters, 1)


def language_of(*texts: str | None) -> str:
    """``zh`` when any text is Chinese, else ``en``: a listener who writes Chinese, or is
    sent a Chinese show, is answered in Chinese."""
    return "zh" if any(has_chinese(t) for t in texts) else "en"


def _fold(text: str) -> str:
    text = text.casefold().replace("’", "'")
    text = re.sub(r"'s\b", "", text)
    return " ".join(text.strip(PUNCT).split())


class Names:
    """What a sentence may name: the facts' texts (titles, topics, words), folded."""

    def __init__(self, allowed: Iterable[str | None]) -> None:
        self.texts = [_fold(t) for t in allowed if t and t.strip()]
        self.blob = "\n".join(self.texts)

    def allows(self, name: str) -> bool:
        folded = _fold(name)
        if not folded:
            return True
        if HAN.search(folded):
            if folded in self.blob:
                return True
        elif re.search(r"(?<!\w)" + re.escape(folded) + r"(?!\w)", self.blob):
            return True
        words = folded.split()
        return all(w in GENERIC_CAPS or w in CONNECTORS for w in words)


def _capitalised_runs(text: str) -> list[tuple[str, bool]]:
    """Runs of capitalised words (connectors allowed inside), each with whether it opens a
    sentence (where a capital means nothing)."""
    runs: list[tuple[str, bool]] = []
    current: list[str] = []
    starts = False
    last_end = 0
    for m in WORD.finditer(text):
        word = m.group(0)
        gap = text[last_end:m.start()]
        at_start = not runs and not current and not text[:m.start()].strip() \
            or bool(SENTENCE_END.search(text[:m.start()]))
        capital = word[0].isupper()
        if capital and current and not re.search(r"[,;:.!?()]", gap):
            current.append(word)
        elif word.casefold() in CONNECTORS and current and not re.search(r"[,;:.!?()]", gap):
            current.append(word)
        else:
            _close(runs, current, starts)
            current, starts = ([word], at_start) if capital else ([], False)
        last_end = m.end()
    _close(runs, current, starts)
    return runs


def _close(runs: list[tuple[str, bool]], current: list[str], starts: bool) -> None:
    while current and current[-1].casefold() in CONNECTORS:
        current.pop()
    if current:
        runs.append((" ".join(current).rstrip("."), starts))


def invented_names(text: str, names: Names) -> list[str]:
    """Names in ``text`` that ``names`` does not allow: quoted text, and capitalised runs (a
    single capitalised word opening a sentence is an ordinary word; a longer run there may
    start with one)."""
    found: list[str] = []
    for m in QUOTED.finditer(text):
        if not names.allows(m.group(1)):
            found.append(m.group(1).strip())
    unquoted = QUOTED.sub(" ", text)
    for run, at_start in _capitalised_runs(unquoted):
        if not _run_allowed(run, at_start, names):
            found.append(run)
    return found


def _run_allowed(run: str, at_start: bool, names: Names) -> bool:
    """A run is allowed whole, or part by part between connectors ("Fans of Serial"); a
    sentence's first word may be an ordinary word."""
    words = run.split()
    if at_start:
        if len(words) == 1:
            return True
        if names.allows(run):
            return True
        words = words[1:]
    if names.allows(" ".join(words)):
        return True
    parts: list[list[str]] = [[]]
    for w in words:
        if w.casefold() in CONNECTORS:
            parts.append([])
        else:
            parts[-1].append(w)
    parts = [p for p in parts if p]
    return bool(parts) and all(names.allows(" ".join(p)) for p in parts)


class CatalogTitles:
    """The catalog's titles that could be told apart in a sentence: several words (matched
    where the sentence capitalises them), or three or more Chinese characters."""

    MAX_WORDS = 8

    def __init__(self, titles: Sequence[str]) -> None:
        self.words: set[str] = set()
        self.han: set[str] = set()
        self.longest_han = 0
        for title in titles:
            folded = _fold(title)
            if has_chinese(title) and len(folded) >= 3:
                self.han.add(folded)
                self.longest_han = max(self.longest_han, len(folded))
            elif 2 <= len(folded.split()) <= self.MAX_WORDS and len(folded) >= 8:
                self.words.add(folded)

    def named(self, text: str) -> list[str]:
        """Catalog titles that ``text`` names."""
        out: list[str] = []
        for run, _ in _capitalised_runs(text):
            words = run.split()
            for i in range(len(words)):
                for j in range(i + 2, min(len(words), i + self.MAX_WORDS) + 1):
                    gram = _fold(" ".join(words[i:j]))
                    if gram in self.words and gram not in out:
                        out.append(gram)
        for m in HAN_RUN.finditer(text):
            run = m.group(0)
            for i in range(len(run)):
                for j in range(i + 3, min(len(run), i + self.longest_han) + 1):
                    if run[i:j] in self.han and run[i:j] not in out:
                        out.append(run[i:j])
        return out


def other_shows(text: str, names: Names, titles: CatalogTitles | None) -> list[str]:
    """Catalog titles the sentence names that the facts did not give."""
    if titles is None:
        return []
    return [t for t in titles.named(text) if not names.allows(t)]


def check_sentence(text: str | None, names: Names, language: str, max_chars: int,
                   titles: CatalogTitles | None = None, min_chars: int = 8) -> str | None:
    """Why ``text`` must not be shown (None: it may): empty, too short or long, in the wrong
    script, or naming a show or name the facts did not give."""
    text = (text or "").strip()
    if not text:
        return "empty"
    if len(text) > max_chars:
        return "too long"
    if len(text) < (min_chars // 2 if language == "zh" else min_chars):
        return "too short"
    if any(bad in text for bad in ("{", "}", "http", "\n")):
        return "not a sentence"
    if (language == "zh") != has_chinese(text):
        return "language"
    invented = invented_names(text, names)
    if invented:
        return f"invented: {invented[0]}"
    others = other_shows(text, names, titles)
    if others:
        return f"other show: {others[0]}"
    return None
