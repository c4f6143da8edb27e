"""Presentation: the English phrases of reasons and the rounding of numbers for JSON. The
core computes evidence and scores; this module turns them into words and tidy numbers."""

from __future__ import annotations

from typing import Any

VERBS = {"subscribe": "subscribed to", "complete": "finished", "like": "liked",
         "play": "played", "rate": "rated", "review": "reviewed", "seed": "picked"}


def on_device(device: str) -> str:
    return "in the car" if device == "car" else f"on your {device}"


def part_of_day(hour: int) -> str:
    return ("at night" if hour < 5 else "in the morning" if hour < 12 else
            "in the afternoon" if hour < 17 else "in the evening" if hour < 22 else "at night")


def duration_phrase(duration_s: float, minutes: float, device: str | None) -> str | None:
    """"at 18 minutes it fits your 20 minutes in the car" (None when it does not fit)."""
    if duration_s > 60 * minutes:
        return None
    where = f" {on_device(device)}" if device else ""
    return f"at {round(duration_s / 60)} minutes it fits your {minutes:g} minutes{where}"


def habit_phrase(label: str | None, hour: int | None, device: str | None) -> str:
    """"you often turn to Sports in the morning and in the car"."""
    when = " and ".join(x for x in [part_of_day(hour) if hour is not None else "",
                                    on_device(device) if device else ""] if x)
    return f"you often turn to {label} {when}".rstrip()


def intent_phrase(intent: str) -> str:
    return f"it suits “{intent}”"


def quoted(titles: list[str]) -> str:
    return " and ".join(f"“{t}”" for t in titles)


def history_clause(items: list[dict[str, Any]], tags: list[str]) -> str:
    """"you finished “A” and liked “B” and like True Crime" (empty without items)."""
    by_verb: dict[str, list[str]] = {}
    for e in items:
        by_verb.setdefault(VERBS.get(e.get("event", "seed"), "picked"), []).append(e["title"])
    clauses = [f"you {verb} {quoted(titles)}" for verb, titles in by_verb.items()]
    if not clauses:
        return ""
    text = " and ".join(clauses)
    return text + (f" and like {' and '.join(tags)}" if tags else "")


def content_clause(history: str, words: str | None, interest: str | None) -> str:
    """"Because you finished “A”; it matches “your words”" (or the interest it fits)."""
    parts = []
    if history:
        parts.append("because " + history)
    if words:
        parts.append(f"it matches “{words}”")
    if not parts and interest:
        parts.append(f"it fits your interest in {interest}")
    return "; ".join(parts)


def collaborative_clause(titles: list[str]) -> str:
    return f"listeners who like {quoted(titles)} also like this" if titles else ""


POPULAR = "popular with listeners"


def sentence(clauses: list[str], context: list[str]) -> str:
    """One reason: the clauses of the groups that drove the score, biggest first, then what
    the context did."""
    reason = "; ".join(c for c in clauses if c) or POPULAR
    if context:
        reason += "; " + "; ".join(context)
    return reason[0].upper() + reason[1:] + "."


def rounded(value: Any, digits: int = 4) -> Any:
    """Floats rounded (recursively through dicts and lists), for JSON."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def recommendation_json(rec: Any) -> dict[str, Any]:
    out = {"id": rec.id, "kind": rec.kind, "title": rec.title,
           "score": round(float(rec.score), 6), "author": rec.author,
           "categories": rec.categories, "language": rec.language,
           "show_id": rec.show_id, "image": rec.image, "duration_s": rec.duration_s,
           "tags": rec.tags,
           "components": {k: round(float(v), 4) for k, v in rec.components.items()}}
    if rec.reason is not None:
        out |= {"reason": rec.reason, "evidence": rec.evidence,
                "reason_source": getattr(rec, "reason_source", None) or "template",
                "reason_fallback": getattr(rec, "reason_fallback", None)}
    return out
