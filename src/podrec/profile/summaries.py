"""The listener in words: a short summary of each interest ("long-form true crime
investigations, mostly at night"), written by the generator from the interest's items, their
genres and lengths, and the listener's habits with them.

The facts are chosen so the same interest gives the same prompt (the top items by title, not
by their decaying weights; habits in words, not numbers), so a summary written once in the
background is found again in the generation cache. A summary that names a show the facts did
not give, or is empty, too long or in the wrong script, is dropped for the template label
(``podrec.profile.labels``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from podrec.llm.base import Message
from podrec.model.base import CatalogData
from podrec.present import part_of_day
from podrec.profile.interests import Interest
from podrec.written import Names, check_sentence, language_of, one_shot_chat

MAX_CHARS = 100
SUMMARY_TOKENS = 48
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"summary": {"type": "string", "maxLength": MAX_CHARS}},
    "required": ["summary"], "additionalProperties": False}
GENERIC = ("podcasts", "(no genres listed)")

SYSTEM = {
    "en": ("You describe one part of a listener's podcast taste in a short phrase (at most 12 "
           "words), like a friend would. Use only the facts given: the kind of shows, their "
           "length and when they are heard. Do not name shows. Answer in English as JSON: "
           "{\"summary\": \"...\"}."),
    "zh": ("你用一个简短的短语（不超过20个字）描述听众的一种播客口味，像朋友一样。只用给出的事实："
           "节目的类型、长度和收听时间。不要提节目名。用JSON回答：{\"summary\": \"...\"}。"),
}
EXAMPLE = {
    "en": ("Shows: Case Files, Murder Map, Unsolved Stories\nGenres: True Crime, History\n"
           "Length: long, about 60 minutes\nWhen: mostly at night",
           "long-form true crime investigations, mostly at night"),
    "zh": ("节目：凶案调查、悬案故事\n类型：真实罪案、历史\n长度：长，大约60分钟\n时间：多在夜里",
           "深夜收听的长篇真实罪案调查"),
}
WHEN_ZH = {"at night": "夜里", "in the morning": "早上", "in the afternoon": "下午",
           "in the evening": "晚上"}


@dataclass(frozen=True)
class SummaryFacts:
    """What an interest's summary may say: its items, genres, length and habits."""

    titles: tuple[str, ...]
    genres: tuple[str, ...]
    minutes: int | None
    when: str | None  # "mostly in the evening", "on weekends"
    device: str | None
    label: str
    language: str

    @property
    def names(self) -> Names:
        return Names([*self.titles, *self.genres, self.label, self.when, self.device])

    def lines(self) -> str:
        zh = self.language == "zh"
        sep, colon = ("、", "：") if zh else (", ", ": ")
        out = [f"{'节目' if zh else 'Shows'}{colon}{sep.join(self.titles)}"]
        if self.genres:
            out.append(f"{'类型' if zh else 'Genres'}{colon}{sep.join(self.genres)}")
        if self.minutes:
            size = ("short" if self.minutes < 25 else "medium" if self.minutes < 50
                    else "long")
            if zh:
                size = {"short": "短", "medium": "中等", "long": "长"}[size]
                out.append(f"长度：{size}，大约{self.minutes}分钟")
            else:
                out.append(f"Length: {size}, about {self.minutes} minutes")
        if self.when:
            out.append(f"{'时间' if zh else 'When'}{colon}{self.when}")
        if self.device:
            out.append(f"{'设备' if zh else 'Device'}{colon}{self.device}")
        return "\n".join(out)

    def messages(self) -> list[Message]:
        example, answer = EXAMPLE[self.language]
        return one_shot_chat(SYSTEM[self.language], example, {"summary": answer}, self.lines())

    def check(self, text: str | None) -> str | None:
        """Why the summary must not be shown (None: it may)."""
        return check_sentence(text, self.names, self.language, MAX_CHARS, min_chars=6)


def _when(interest: Interest, language: str) -> str | None:
    """The part of the day (and weekends) that holds most of the interest's listening."""
    hours = np.asarray(interest.hours, np.float64)
    if hours.sum() <= 0:
        return None
    parts: dict[str, float] = {}
    for h, w in enumerate(hours.tolist()):
        parts[part_of_day(h)] = parts.get(part_of_day(h), 0.0) + w
    best = max(parts, key=lambda p: parts[p])
    days = np.asarray(interest.weekdays, np.float64)
    weekend = days.sum() > 0 and days[5:].sum() / days.sum() >= 0.6
    if parts[best] / hours.sum() < 0.5:
        return ("多在周末" if language == "zh" else "mostly on weekends") if weekend else None
    if language == "zh":
        return f"多在{'周末' if weekend else ''}{WHEN_ZH[best]}"
    return f"mostly {best}" + (" on weekends" if weekend else "")


def interest_facts(catalog: CatalogData, interest: Interest, label: str) -> SummaryFacts:
    """The facts of one interest (its five heaviest items, named in title order)."""
    order = np.argsort(-interest.weights, kind="stable")[:5]
    rows = [int(interest.rows[i]) for i in order]
    titles = tuple(sorted(catalog.titles[r] for r in rows))
    genres: dict[str, float] = {}
    for r, w in zip(interest.rows, interest.weights, strict=True):
        for g in catalog.categories[int(r)][:2]:
            if g.casefold() not in GENERIC:
                genres[g] = genres.get(g, 0.0) + float(w)
    top = tuple(sorted(genres, key=lambda g: (-genres[g], g))[:3])
    durations = np.asarray([catalog.durations[r] for r in rows], np.float64)
    durations = durations[np.isfinite(durations) & (durations > 0)]
    minutes = int(round(float(np.median(durations)) / 60 / 5) * 5) if len(durations) else None
    language = language_of(" ".join(titles)) if sum(
        language_of(t) == "zh" for t in titles) * 2 >= len(titles) else "en"
    devices = interest.devices or {}
    total = sum(devices.values())
    device = max(devices, key=lambda d: devices[d]) if total > 0 else None
    if device is not None and devices[device] / total < 0.6:
        device = None
    return SummaryFacts(titles, top, minutes or None, _when(interest, language), device, label,
                        language)
