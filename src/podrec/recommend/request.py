"""One request for a list: what the CLI, the REST API and Python hand to the pipeline,
unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from podrec.recommend.context import RequestContext


@dataclass(frozen=True)
class RecommendRequest:
    """Recommendations for a known listener (``user_id``), seed items and/or free text.

    ``diversity`` (0..1) re-ranks by MMR; ``explain`` adds a reason and its evidence;
    ``context`` (time, device, minutes, intent) shifts scores, and none changes nothing.
    Filters: ``languages`` (items of unknown language pass), ``allow_explicit``, ``blocked``
    (item or show ids; a blocked show blocks its episodes), ``per_show`` (at most this many
    episodes of one show) and ``platform`` (items that list the platforms they are on must
    list this one). ``now`` is the moment of the request (default: the context's time, else
    the clock), which decays old events. ``balance`` (0..1; None: ``recommend.balance``)
    gives each of the listener's interests, or each topic of the query, its share of the
    list (recommend/balance.py)."""

    user_id: str | None = None
    seeds: tuple[str, ...] = ()
    query: str | None = None
    k: int | None = None
    kind: str = "show"
    diversity: float = 0.0
    explain: bool = False
    languages: tuple[str, ...] = ()
    allow_explicit: bool = True
    blocked: tuple[str, ...] = ()
    per_show: int | None = None
    context: RequestContext | None = field(default=None, compare=False)
    platform: str | None = None
    now: datetime | None = None
    balance: float | None = None

    def __post_init__(self) -> None:
        def fix(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        fix("seeds", tuple(self.seeds or ()))
        fix("languages", tuple(self.languages or ()))
        fix("blocked", tuple(self.blocked or ()))
        fix("query", self.query.strip() if self.query and self.query.strip() else None)
        if self.context is not None and self.context.empty:
            fix("context", None)
        if not (self.user_id or self.seeds or self.query):
            raise ValueError("give a user, one or more seed items, or a query text")
        if not 0.0 <= self.diversity <= 1.0:
            raise ValueError(f"diversity must be between 0 and 1, got {self.diversity}")
        if self.k is not None and self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.balance is not None and not 0.0 <= self.balance <= 1.0:
            raise ValueError(f"balance must be between 0 and 1, got {self.balance}")

    @classmethod
    def of_query(cls, text: str, k: int | None = None, kind: str = "show",
                 languages: Sequence[str] | None = None) -> RecommendRequest:
        """A semantic search: items whose meaning is closest to ``text``."""
        return cls(query=text, k=k, kind=kind, languages=tuple(languages or ()))

    @property
    def moment(self) -> datetime:
        """When the request happens."""
        if self.now is not None:
            return self.now
        if self.context is not None and self.context.time is not None:
            return self.context.time
        return datetime.now(UTC)
