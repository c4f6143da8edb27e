"""A listener's free text (a search, onboarding words, a mood) read into a structured `Intent`.

Two readers: rules (always there, English and Chinese, no model) and the generator with a
JSON schema. The rules are exact about numbers, explicit exclusions, moods from their lexicon
and the script the request is written in (the small models leave the language empty); the
model names topics in phrasing the rules cannot split. `parse_intent` merges the two and
never fails: with no generator, a slow one or a garbage answer it returns what the rules
found and says why.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from podrec.llm.base import TextGenerator

MOODS = ("funny", "relaxing", "uplifting", "serious", "dark", "upbeat")
KINDS = ("show", "episode")
SHORT_MINUTES = 30  # "short", "not too long", "不要太长" without a number

INTENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topics": {"type": "array", "items": {"type": "string", "maxLength": 40},
                   "maxItems": 3},
        "exclusions": {"type": "array", "items": {"type": "string", "maxLength": 40},
                       "maxItems": 3},
        "max_minutes": {"type": "integer", "minimum": 0, "maximum": 600},
        "kind": {"enum": list(KINDS)},
        "mood": {"enum": ["", *MOODS]},
    },
    "required": ["topics", "exclusions", "max_minutes", "kind", "mood"],
    "additionalProperties": False,
}


@dataclass
class Intent:
    """What a request asks for. Each topic is meant to become its own interest."""

    text: str
    topics: list[str] = field(default_factory=list)
    exclusions: list[str] = field(default_factory=list)
    max_minutes: int | None = None  # longest wanted duration, None: not said
    language: str | None = None  # ISO 639-1: asked for, else the script written in
    kind: str = "show"  # show | episode
    mood: str | None = None  # one of MOODS
    source: str = "rules"  # rules | model | model+rules
    fell_back: str | None = None  # why the model's reading was not used (absent, timeout...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_intent(text: str, generator: TextGenerator | None = None,
                 timeout_s: float | None = None) -> Intent:
    """The intent of ``text``: the model's reading merged with the rules', or the rules'
    alone when there is no generator or it fell back (``Intent.fell_back`` says why)."""
    rules = parse_rules(text)
    if generator is None:
        rules.fell_back = "none"
        return rules
    # 120 tokens hold the longest answer the schema allows; most need about 40
    result = generator.generate(intent_messages(text), INTENT_SCHEMA, max_tokens=120,
                                timeout_s=timeout_s, task="intent")
    if result.fell_back or not isinstance(result.data, dict):
        rules.fell_back = result.reason or "invalid"
        return rules
    return merge(model_intent(text, result.data), rules)


# -- the model's reading ------------------------------------------------------------------------

_SYSTEM = (
    "You read a podcast listener's request and answer with JSON only. Fields: topics (the "
    "subjects asked for, each a short noun phrase; several subjects are several topics), "
    "exclusions (subjects the listener does not want), max_minutes (the longest episode "
    "length the listener accepts, 0 when not said), kind (\"episode\" when single episodes "
    "are asked for, else \"show\"), mood (one of funny, relaxing, uplifting, serious, dark, "
    "upbeat, or empty). Keep the request's language for topics.")

_EXAMPLES: list[tuple[str, str]] = [
    ("history of ancient Rome and true crime",
     '{"topics": ["ancient Rome history", "true crime"], "exclusions": [], "max_minutes": 0, '
     '"kind": "show", "mood": ""}'),
    ("学习投资理财的播客，不要太长",
     '{"topics": ["投资理财"], "exclusions": [], "max_minutes": 30, "kind": "show", '
     '"mood": ""}'),
    ("funny science episodes under 20 minutes, no politics",
     '{"topics": ["science"], "exclusions": ["politics"], "max_minutes": 20, '
     '"kind": "episode", "mood": "funny"}'),
]


def intent_messages(text: str) -> list[dict[str, str]]:
    """The chat for one request: the same system prompt and examples every time (so the
    local model reuses their processed prefix), then the request."""
    messages = [{"role": "system", "content": _SYSTEM}]
    for request, answer in _EXAMPLES:
        messages += [{"role": "user", "content": request},
                     {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": text.strip()[:400]})
    return messages


def model_intent(text: str, data: dict[str, Any]) -> Intent:
    """An `Intent` from the model's schema-checked JSON (language from the script)."""
    topics = _dedupe([t for t in data.get("topics", []) if _clean(t)])
    exclusions = _dedupe([t for t in data.get("exclusions", []) if _clean(t)])
    minutes = int(data.get("max_minutes") or 0)
    return Intent(text=text, topics=topics, exclusions=exclusions,
                  max_minutes=minutes if minutes > 0 else None,
                  language=detect_language(text), kind=data.get("kind") or "show",
                  mood=data.get("mood") or None, source="model")


def merge(model: Intent, rules: Intent) -> Intent:
    """The rules' reading, with the model's topics where the rules found none and its
    exclusions added. Measured on the labelled requests (docs/results/intents.md), the
    bundled 0.5B model is less accurate than the rules on every field and copies its examples'
    mood, length and kind, so those come from the rules alone."""
    exclusions = _dedupe(rules.exclusions + model.exclusions)
    topics = rules.topics or model.topics
    topics = [t for t in topics if not any(_overlaps(t, x) for x in exclusions)] or topics
    return Intent(text=rules.text, topics=topics, exclusions=exclusions,
                  max_minutes=rules.max_minutes, language=rules.language, kind=rules.kind,
                  mood=rules.mood, source="model+rules")


# -- rules --------------------------------------------------------------------------------------

_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9, "十": 10}
_NUM = r"(\d+|[一二两三四五六七八九十]+|half an?|an?|one|two|three)"
_EN_LIMIT = re.compile(
    r"(?:under|less than|at most|max(?:imum)?|no (?:longer|more) than|shorter than|up to|"
    r"within|below|<)\s*" + _NUM + r"\s*-?\s*(minutes?|mins?|m|hours?|hrs?|h)\b"
    r"|\b(\d+)\s*-?\s*(minutes?|mins?|min)\b(?:\s*(?:or less|max|long|tops))?")
_CN_LIMIT = re.compile(
    r"(?:不超过|少于|小于|最多|短于|控制在)?\s*(\d+|[一二两三四五六七八九十半]+)\s*(?:个)?"
    r"(分钟|小时|钟头)(?:以内|以下|之内|内|左右)?")
_SHORT = re.compile(r"\b(?:short(?:er)?|quick|bite-?sized|brief|(?:not|nothing) too long)\b"
                    r"|不要太长|别太长|不太长|短一点|短一些|短的|简短|不长|时间短|短小")
_EPISODE = re.compile(r"\bepisodes?\b|单集|一集|几集|某集|每集")

_MOOD_WORDS: dict[str, tuple[str, ...]] = {
    "funny": ("funny", "hilarious", "humorous", "humor", "lighthearted", "light-hearted",
              "comedic", "laugh", "搞笑", "幽默", "好笑", "逗"),
    "relaxing": ("relaxing", "relax", "calm", "chill", "soothing", "mellow", "sleep",
                 "bedtime", "放松", "轻松", "助眠", "睡前", "舒缓", "安静"),
    "uplifting": ("uplifting", "inspiring", "inspirational", "motivational", "motivating",
                  "positive", "励志", "正能量", "鼓舞", "治愈"),
    "serious": ("serious", "in-depth", "in depth", "deep dive", "深度", "深入", "严肃"),
    "dark": ("dark", "creepy", "scary", "spooky", "eerie", "恐怖", "吓人", "惊悚", "黑暗"),
    "upbeat": ("upbeat", "energetic", "lively", "high-energy", "活泼", "有活力", "热闹"),
}

_EN_EXCLUDE = re.compile(
    r"(?:\bbut\s+)?(?:\bno\b|\bnot\b|\bwithout\b|\bnothing (?:about|on|with)\b|\bavoid(?:ing)?\b|"
    r"\bexcept\b|\bexcluding\b|\bskip(?:ping)?\b|\bdon'?t want\b|\bdo not want\b|"
    r"\bnot into\b|\bno more\b)\s+([^,.;!?]+)", re.I)
_CN_EXCLUDE = re.compile(r"(?:不要|别|不想听|不想要|不喜欢|不听|除了|不含|不包括|避开|排除|"
                         r"不想)([^，。,；;！!？?、]+)")

_EN_FILLER = re.compile(
    r"\b(?:i(?:'d| would)? (?:like|love|want)|i'm looking for|looking for|looking|recommend(?:ed"
    r"|ations?)?|suggest(?:ions?)?|please|give me|find me|show me|can you|any|some|something|"
    r"anything|a few|good|great|best|interesting|new|podcasts?|shows?|series|episodes?|"
    r"listen(?:ing)? to|to listen|for my commute|on my commute|during my commute|while \w+ing|"
    r"about|on the topic of|related to|topics?|me|in (?:english|chinese|spanish|french|german))"
    r"\b", re.I)
_EN_SPLIT = re.compile(r"\s*(?:,|;|/|&|\band\b|\bor\b|\bplus\b|\bas well as\b|\bbut\b|"
                       r"\bthat (?:is|are)\b|\bwith\b)\s*", re.I)
_CN_FILLER = re.compile(r"我想听|我想要|想听|我要|推荐|有没有|一些|几个|给我|请|求|适合|"
                        r"有关|关于|方面的?|类的?|的?播客|的?节目|的?电台|听听|一下|来点|找|"
                        r"什么都行|都可以|每集|中文的|英文的|英语的|粤语的")
_CN_SPLIT = re.compile(r"\s*(?:和|与|跟|以及|还有|或者|或|、|，|,|；|;|及|加上|也想听)\s*")
_CN_EDGES = re.compile(r"^(?:学习|想学|讲讲|讲|聊聊|聊|太)+|(?:的|了|吧|呢|啊|呀|吗)+$")
_NEGATED = re.compile(r"(?:\bnot too|\bnothing too|\bnot|\bno|不要太|别太|不太|不要|别)\s*$")
_EDGE_WORDS = {"a", "an", "the", "of", "to", "for", "in", "on", "that", "which", "really",
               "very", "more", "mostly", "some", "any", "and", "or", "but", "is", "are", "be",
               "like", "kind", "type", "types", "stuff", "things"}

# A language named as the podcasts' own ("英文的科技播客"), not as a topic ("学英语").
_LANG_WORDS = {"en": ("in english", "英文的", "英语的", "英文播客", "英语播客"),
               "zh": ("in chinese", "in mandarin", "中文的", "中文播客", "普通话的", "国语的"),
               "es": ("in spanish", "西班牙语的"), "fr": ("in french", "法语的"),
               "de": ("in german", "德语的"), "ja": ("in japanese", "日语的", "日语播客"),
               "yue": ("in cantonese", "粤语的", "粤语播客")}


def parse_rules(text: str) -> Intent:
    """The intent found by patterns alone (no model): English and Chinese."""
    rest = " " + (text or "").strip() + " "
    minutes, rest = _limit(rest)
    mood, rest = _mood(rest)
    exclusions, rest = _exclusions(rest)
    kind = "episode" if _EPISODE.search(rest) else "show"
    topics = _topics(rest)
    return Intent(text=text, topics=topics, exclusions=exclusions, max_minutes=minutes,
                  language=requested_language(text) or detect_language(text), kind=kind,
                  mood=mood)


def _number(word: str) -> float:
    word = word.strip().lower()
    if word.isdigit():
        return float(word)
    if word.startswith("half") or word == "半":
        return 0.5
    if word in ("a", "an", "one"):
        return 1.0
    if word in ("two", "three"):
        return 2.0 if word == "two" else 3.0
    if word in _CN_DIGITS:
        return float(_CN_DIGITS[word])
    if word.startswith("十"):
        return 10.0 + _CN_DIGITS.get(word[1:], 0)
    if word.endswith("十"):
        return 10.0 * _CN_DIGITS.get(word[0], 1)
    if "十" in word:
        a, b = word.split("十", 1)
        return 10.0 * _CN_DIGITS.get(a, 1) + _CN_DIGITS.get(b, 0)
    if word.endswith("半") and word[:-1] in _CN_DIGITS:
        return _CN_DIGITS[word[:-1]] + 0.5
    return 0.0


def _limit(text: str) -> tuple[int | None, str]:
    """The longest wanted duration in minutes, and the text without the phrase saying it."""
    m = _EN_LIMIT.search(text)
    if m:
        num, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        value = _number(num) * (60 if unit.lower().startswith("h") else 1)
        if value > 0:
            return int(round(value)), text[:m.start()] + " " + text[m.end():]
    m = _CN_LIMIT.search(text)
    if m:
        value = _number(m.group(1)) * (1 if m.group(2) == "分钟" else 60)
        if value > 0:
            return int(round(value)), text[:m.start()] + " " + text[m.end():]
    m = _SHORT.search(text)
    if m:
        return SHORT_MINUTES, text[:m.start()] + " " + text[m.end():]
    return None, text


def _mood(text: str) -> tuple[str | None, str]:
    """The mood asked for, and the text without its words; a negated mood word ("not too
    serious", "不要太严肃") is left for the exclusions."""
    lowered = text.lower()
    for mood, words in _MOOD_WORDS.items():
        for word in words:
            pattern = re.escape(word) if _is_cjk(word) else r"\b" + re.escape(word) + r"\w*"
            for m in re.finditer(pattern, lowered):
                if not _NEGATED.search(lowered[:m.start()]):
                    return mood, text[:m.start()] + " " + text[m.end():]
    return None, text


def _exclusions(text: str) -> tuple[list[str], str]:
    found: list[str] = []
    for pattern in (_EN_EXCLUDE, _CN_EXCLUDE):
        for m in list(pattern.finditer(text)):
            for piece in re.split(_EN_SPLIT if pattern is _EN_EXCLUDE else _CN_SPLIT,
                                  m.group(1)):
                piece = _clean(piece)
                if piece:
                    found.append(piece)
        text = pattern.sub(" ", text)
    return _dedupe(found), text


def _topics(text: str) -> list[str]:
    text = _EN_FILLER.sub(" ", text)
    text = _CN_FILLER.sub("，", text)
    pieces = [p for chunk in _CN_SPLIT.split(text) for p in _EN_SPLIT.split(chunk)]
    return _dedupe([t for t in (_clean(p) for p in pieces) if t])[:5]


def _clean(piece: Any) -> str:
    """A phrase without edge filler, punctuation and (Chinese) trailing particles."""
    if not isinstance(piece, str):
        return ""
    words = re.sub(r"[\"'“”‘’!?？！。.,，:：()（）]", " ", piece).split()
    while words and words[0].lower() in _EDGE_WORDS:
        words.pop(0)
    while words and words[-1].lower() in _EDGE_WORDS:
        words.pop()
    out = _CN_EDGES.sub("", " ".join(words)).strip()
    if _is_cjk(out):
        return out if len(out) >= 2 else ""
    return out if len(out) >= 3 or (len(out) == 2 and out.isupper()) else ""


def _dedupe(phrases: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for p in phrases:
        key = p.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(p.strip())
    return out


def _overlaps(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a in b or b in a


# -- language -------------------------------------------------------------------------------------

_SCRIPTS = [(re.compile(r"[\u3040-\u30ff]"), "ja"), (re.compile(r"[\uac00-\ud7af]"), "ko"),
            (re.compile(r"[\u4e00-\u9fff]"), "zh"), (re.compile(r"[\u0400-\u04ff]"), "ru"),
            (re.compile(r"[\u0600-\u06ff]"), "ar"), (re.compile(r"[\u0590-\u05ff]"), "he"),
            (re.compile(r"[\u0900-\u097f]"), "hi"), (re.compile(r"[A-Za-z]"), "en")]


def _is_cjk(text: str) -> bool:
    return bool(re.search(r"[\u4e00-\u9fff]", text))


def detect_language(text: str) -> str | None:
    """The language a request is written in, by its script (kana before Han for Japanese);
    Latin script counts as English, the language of nearly every Latin-script request here."""
    for pattern, language in _SCRIPTS:
        if pattern.search(text or ""):
            return language
    return None


def requested_language(text: str) -> str | None:
    """A language the request names for its podcasts ("in Spanish", "英文播客")."""
    lowered = (text or "").lower()
    for language, words in _LANG_WORDS.items():
        if any(w in lowered for w in words):
            return language
    return None
