"""Reasons in words: one sentence per recommended item, written by the generator from the
evidence the explainer found, in the listener's language, and checked before it is shown.

The facts handed to the model are only what ``Explainer`` put in the evidence (the history
items, the listener's words, collaborative neighbours, context, the interest) plus the item's
own title and topics. They hold no scores, so the same evidence is the same prompt, and a
sentence written once is found again in the generation cache. A sentence that names a show
or name the facts did not give, or is empty, too long or in the wrong script, is dropped and
the template reason stays (``podrec.written``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podrec.llm.base import Message
from podrec.written import (
    CatalogTitles,
    Names,
    check_sentence,
    language_of,
    one_shot_chat,
)

MAX_CHARS = 200  # the longest sentence shown
STRONG = 0.25  # history items with under this share of the strongest one's are not told
REASON_TOKENS = 72  # enough for the longest sentence the schema allows, in either language
REASON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": MAX_CHARS}},
    "required": ["reason"], "additionalProperties": False}

VERBS = {"en": {"subscribe": "subscribed to", "complete": "finished", "like": "liked",
                "play": "played", "rate": "rated", "review": "reviewed", "seed": "picked"},
         "zh": {"subscribe": "订阅了", "complete": "听完了", "like": "喜欢", "play": "听过",
                "rate": "评价过", "review": "评论过", "seed": "选了"}}

SYSTEM = {
    "en": ("You explain podcast recommendations. Write ONE short, friendly sentence (at most "
           "25 words) that tells the listener why they may like the recommended show. Use only "
           "the facts given. Name no show except those in the facts, and put show titles in "
           "“curly quotes”. Answer in English as JSON: {\"reason\": \"...\"}."),
    "zh": ("你为播客推荐写理由。用中文写一句简短友好的话（不超过40个字），告诉听众为什么可能"
           "喜欢推荐的节目。只用给出的事实，除了事实里的节目不要提别的节目，节目名用《》括起来。"
           "用JSON回答：{\"reason\": \"...\"}。"),
}
EXAMPLE = {
    "en": ("Recommended: “Morning Markets”\nTopics: Business, Investing\n"
           "You subscribed to: “Money Talk”",
           "Since you subscribed to “Money Talk”, “Morning Markets” brings you more business "
           "and investing stories."),
    "zh": ("推荐节目：《早间财经》\n主题：商业、投资\n你订阅了：《理财说》",
           "你订阅了《理财说》，《早间财经》会带给你更多商业和投资的故事。"),
}
LABELS = {
    "en": {"item": "Recommended", "topics": "Topics", "words": "The listener's words",
           "also": "Listeners who like these also like it", "interest": "Their interest",
           "context": "Right now", "popular": "Popular with listeners"},
    "zh": {"item": "推荐节目", "topics": "主题", "words": "听众说",
           "also": "喜欢这些节目的听众也喜欢它", "interest": "听众的兴趣",
           "context": "此刻", "popular": "很受听众欢迎"},
}


def _quote(title: str, language: str) -> str:
    return f"《{title}》" if language == "zh" else f"“{title}”"


@dataclass(frozen=True)
class ReasonFacts:
    """What a reason may say about one item: everything is from the item or its evidence."""

    title: str
    topics: tuple[str, ...]
    history: tuple[tuple[str, str], ...]  # (event, title)
    also: tuple[str, ...]
    words: str | None
    context: tuple[str, ...]
    interest: str | None
    popular: bool
    language: str

    @property
    def names(self) -> Names:
        return Names([self.title, *self.topics, *(t for _, t in self.history), *self.also,
                      self.words, *self.context, self.interest])

    def lines(self) -> str:
        """The facts as the model reads them."""
        lang, label = self.language, LABELS[self.language]
        sep = "、" if lang == "zh" else ", "
        colon = "：" if lang == "zh" else ": "
        out = [f"{label['item']}{colon}{_quote(self.title, lang)}"]
        if self.topics:
            out.append(f"{label['topics']}{colon}{sep.join(self.topics)}")
        by_verb: dict[str, list[str]] = {}  # strongest first
        for event, title in self.history:
            verb = VERBS[lang].get(event, VERBS[lang]["seed"])
            by_verb.setdefault(verb, []).append(_quote(title, lang))
        for verb, titles in by_verb.items():
            you = "你" if lang == "zh" else "You "
            out.append(f"{you}{verb}{colon}{sep.join(titles)}")
        if self.also:
            out.append(f"{label['also']}{colon}"
                       f"{sep.join(_quote(t, lang) for t in self.also)}")
        if self.words:
            out.append(f"{label['words']}{colon}{self.words}")
        if self.interest:
            out.append(f"{label['interest']}{colon}{self.interest}")
        if self.context:
            out.append(f"{label['context']}{colon}{sep.join(self.context)}")
        if self.popular:
            out.append(label["popular"])
        return "\n".join(out)

    def messages(self) -> list[Message]:
        """System prompt and example fixed per language (the model reuses their processed
        prefix), then the facts."""
        example, answer = EXAMPLE[self.language]
        return one_shot_chat(SYSTEM[self.language], example, {"reason": answer}, self.lines())

    def check(self, text: str | None, titles: CatalogTitles | None = None) -> str | None:
        """Why the sentence must not be shown (None: it may)."""
        return check_sentence(text, self.names, self.language, MAX_CHARS, titles)


def _context_phrase(e: dict[str, Any], language: str) -> str | None:
    factor = e.get("factor")
    if factor == "duration" and e.get("minutes"):
        minutes = f"{float(e['minutes']):g}"
        return (f"适合你的{minutes}分钟" if language == "zh"
                else f"fits the {minutes} minutes they have")
    if factor == "habit" and e.get("interest"):
        return (f"这个时候常听{e['interest']}" if language == "zh"
                else f"they often listen to {e['interest']} at this time")
    if factor == "intent" and e.get("text"):
        return str(e["text"])
    return None


def reason_facts(rec: Any, words: str | None = None, max_items: int = 2) -> ReasonFacts:
    """The facts behind ``rec``'s reason, from its evidence (``Recommendation.evidence``).
    ``words`` (the listener's query and own words) decides the language with the item."""
    evidence = rec.evidence or []
    said = next((e["text"] for e in evidence if e.get("type") == "query" and e.get("text")),
                None)
    language = language_of(words, said, rec.title) if not (rec.language or "").startswith(
        "zh") else "zh"
    topics: list[str] = []
    tags = [e["tag"] for e in evidence if e.get("type") == "tag"]
    # card tags hold keyphrases (often hosts' names): only for an item without genres
    for t in [*(rec.categories or []), *tags, *([] if rec.categories else rec.tags or [])]:
        if t and t.casefold() not in {x.casefold() for x in topics} and \
                t.casefold() not in ("podcasts", "(no genres listed)"):
            topics.append(t)
    items = [e for e in evidence if e.get("type") == "item" and e.get("title")]
    top = max((float(e.get("share", 0.0)) for e in items), default=0.0)
    history = tuple((str(e.get("event", "seed")), str(e["title"])) for e in items
                    if float(e.get("share", 0.0)) >= STRONG * top)[:max_items]
    also = tuple(str(e["title"]) for e in evidence
                 if e.get("type") == "collaborative" and e.get("title"))[:2]
    context = tuple(p for e in evidence if e.get("type") == "context" and e.get("share", 0) > 0
                    for p in [_context_phrase(e, language)] if p)
    interest = next((str(e["label"]) for e in evidence if e.get("type") == "interest"), None)
    popular = any(e.get("type") == "popularity" for e in evidence) and not (history or also)
    return ReasonFacts(rec.title, tuple(topics[:4]), history, also,
                       said[:200] if said else None, context, interest, popular, language)
