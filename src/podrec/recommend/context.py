"""The moment of a request: when, on what device, how long, in what mood.

Context is optional and every field is optional: an empty ``RequestContext`` changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

DEVICES = ("phone", "car", "speaker", "desktop", "tablet", "watch", "tv", "web")


@dataclass
class RequestContext:
    """``hour`` (0-23) and ``weekday`` (0 = Monday) are the listener's local time; when only
    ``time`` is given they are read from it. ``minutes``: time available to listen.
    ``intent``: mood or purpose in free text ("something calm before sleep")."""

    time: datetime | None = None
    hour: int | None = None
    weekday: int | None = None
    device: str | None = None
    minutes: float | None = None
    intent: str | None = None

    def __post_init__(self) -> None:
        if self.time is not None:
            if self.hour is None:
                self.hour = self.time.hour
            if self.weekday is None:
                self.weekday = self.time.weekday()
        if self.hour is not None and not 0 <= int(self.hour) <= 23:
            raise ValueError(f"context hour must be 0..23, got {self.hour}")
        if self.weekday is not None and not 0 <= int(self.weekday) <= 6:
            raise ValueError(f"context weekday must be 0 (Monday)..6, got {self.weekday}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"context minutes must be positive, got {self.minutes}")
        if self.device is not None:
            self.device = self.device.strip().lower() or None
        if self.intent is not None:
            self.intent = self.intent.strip() or None

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.hour, self.weekday, self.device, self.minutes,
                                       self.intent))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = self.time.isoformat() if self.time else None
        return {k: v for k, v in out.items() if v is not None}
