"""The one ``Recommendation`` type: an item on a list, with its score, the parts the score is
made of and, when asked for, the reason and its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Recommendation:
    id: str
    kind: str
    title: str
    score: float
    author: str | None = None
    categories: list[str] = field(default_factory=list)
    language: str | None = None
    components: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    show_id: str | None = None
    image: str | None = None
    duration_s: int | None = None
    tags: list[str] = field(default_factory=list)
    # with a reason: "generated" (written by the generator) or "template"; and why the
    # template stands (off, absent, pending, timeout, rejected (...))
    reason_source: str | None = None
    reason_fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON (rounded: see ``podrec.present.rounded``)."""
        from podrec.present import recommendation_json

        return recommendation_json(self)


@dataclass(frozen=True)
class Card:
    """What a recommendation shows beyond the catalog arrays: cover art, duration, tags."""

    image: str | None
    duration_s: int | None
    tags: tuple[str, ...]
