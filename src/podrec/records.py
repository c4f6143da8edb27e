"""Plain records that flow through the pipeline: what ingest produces and the store keeps."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

KINDS = ("show", "episode")
EVENT_TYPES = (
    "play", "complete", "skip", "like", "dislike", "subscribe", "unsubscribe", "rate",
    "review", "search",
)


@dataclass
class ItemRecord:
    """A show or an episode, normalised. ``id`` is the id it came with (catalog id, GUID, URL)."""

    id: str
    title: str
    kind: str = "show"
    show_id: str | None = None
    description: str = ""
    author: str | None = None
    categories: list[str] = field(default_factory=list)
    language: str | None = None
    image: str | None = None
    audio_url: str | None = None
    feed_url: str | None = None
    guid: str | None = None
    duration_s: int | None = None
    published: datetime | None = None
    explicit: bool | None = None
    popularity: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def content_hash(self) -> str:
        """Hash of every stored field: an unchanged record re-ingested is not an update."""
        data = asdict(self)
        data.pop("source", None)
        if self.published is not None:
            data["published"] = self.published.isoformat()
        blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class Item(ItemRecord):
    """An item as stored: the record plus its row key and timestamps."""

    pk: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def to_dict(self, tags: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        data = asdict(self)
        data.pop("pk")
        for key in ("published", "created_at", "updated_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat().replace("+00:00", "Z")
        if tags is not None:
            data["tags"] = tags
        return data


@dataclass
class EventRecord:
    """One listening event: who did what to which item, when, where."""

    user_id: str
    event: str
    timestamp: datetime
    item_id: str | None = None
    item_kind: str | None = None
    value: float | None = None
    text: str | None = None
    platform: str | None = None
    device: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "event": self.event,
                "timestamp": self.timestamp.isoformat(), "item_id": self.item_id,
                "item_kind": self.item_kind, "value": self.value, "text": self.text,
                "platform": self.platform, "device": self.device, "context": self.context}

    def dedupe_key(self) -> str:
        """Same user, item, event, time, value and text: the same event, stored once."""
        parts = [self.user_id, self.item_kind or "", self.item_id or "", self.event,
                 self.timestamp.isoformat(), repr(self.value), self.text or "",
                 self.platform or ""]
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass
class IngestProblem:
    """A record that could not be taken, and exactly where and why."""

    source: str  # file or URL
    location: str  # "line 12", "record 3", "item 5 (guid ...)"
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.location}"
        if self.field:
            where += f", field {self.field!r}"
        return f"{where}: {self.message}"


@dataclass
class IngestReport:
    """Counts and problems of one ingest run; ``failed`` counts records that could not be read."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    failed: int = 0
    problems: list[IngestProblem] = field(default_factory=list)
    # Records taken after a repair (NUL removed, a missing title or GUID derived, ...).
    repairs: list[IngestProblem] = field(default_factory=list)

    def repair(self, source: str, location: str, field_name: str | None, message: str
               ) -> None:
        """Note a repair of a record that was taken (not a failure)."""
        self.repairs.append(IngestProblem(source, location, field_name, message))

    def fail(self, source: str, location: str, field_name: str | None, message: str) -> None:
        self.failed += 1
        self.problems.append(IngestProblem(source, location, field_name, message))

    def merge(self, other: IngestReport) -> None:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.duplicates += other.duplicates
        self.failed += other.failed
        self.problems.extend(other.problems)
        self.repairs.extend(other.repairs)

    @property
    def skipped(self) -> int:
        """Records not written: unchanged re-ingests and duplicates of stored items."""
        return self.unchanged + self.duplicates

    def summary(self) -> dict[str, int]:
        return {"added": self.added, "updated": self.updated, "skipped": self.skipped,
                "failed": self.failed, "repaired": len(self.repairs)}
