"""The moment of a request: when, on what device, how long, in what mood.

Context is optional and every field is optional: an empty ``RequestContext`` changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np


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



def _hour_kernel(hour: int, width: float = 2.0) -> np.ndarray:
    """Closeness of each hour of the day to ``hour``, on the 24-hour circle."""
    d = np.abs(np.arange(24) - hour)
    d = np.minimum(d, 24 - d)
    return np.exp(-(d ** 2) / (2 * width ** 2))


def _weekday_kernel(weekday: int) -> np.ndarray:
    """The same kind of day (weekday or weekend) counts fully, the other kind a quarter."""
    weekend = np.arange(7) >= 5
    return np.where(weekend == (weekday >= 5), 1.0, 0.25)


def interest_lift(hours: np.ndarray, weekdays: np.ndarray, devices: list[dict[str, float]],
                  shares: np.ndarray, context: RequestContext, prior: float = 1.0
                  ) -> np.ndarray:
    """Log lift of each interest in this context: how much more of the listener's listening
    at this hour / on this kind of day / on this device went to the interest than overall.
    ``hours`` (n_interests × 24) and ``weekdays`` (× 7) hold weights; ``prior`` pseudo-weight
    keeps a thin habit from swinging the ranking. Zeros where context says nothing."""
    shares = np.maximum(np.asarray(shares, dtype=np.float64), 1e-9)
    lift = np.zeros(len(shares))
    signals = []
    if context.hour is not None and hours.sum() > 0:
        signals.append(hours @ _hour_kernel(int(context.hour)))
    if context.weekday is not None and weekdays.sum() > 0:
        signals.append(weekdays @ _weekday_kernel(int(context.weekday)))
    if context.device and any(devices):
        signals.append(np.array([d.get(context.device, 0.0) for d in devices]))
    for matched in signals:
        p = (matched + prior * shares) / (matched.sum() + prior)
        lift += np.log(p / shares)
    return lift


def habit_factor(hours: list[int | None], weekdays: list[int | None],
                 devices: list[str | None], context: RequestContext,
                 strength: float) -> np.ndarray | None:
    """Per history item, ``1 - strength + strength · match``: how well the moment it was
    heard (hour of day, kind of day, device) matches the request's. None when the context
    says nothing about the moment, so the history counts as it is."""
    if strength <= 0 or (context.hour is None and context.weekday is None
                         and not context.device):
        return None
    match = np.ones(len(hours))
    if context.hour is not None:
        k = _hour_kernel(int(context.hour))
        match *= np.array([1.0 if h is None else k[h] for h in hours])
    if context.weekday is not None:
        k = _weekday_kernel(int(context.weekday))
        match *= np.array([1.0 if d is None else k[d] for d in weekdays])
    if context.device:
        match *= np.array([1.0 if d is None else (1.0 if d == context.device else 0.25)
                           for d in devices])
    s = min(float(strength), 1.0)
    return 1.0 - s + s * match


def duration_fit(durations_s: np.ndarray, minutes: float | None) -> np.ndarray:
    """0 for items that fit in the time available (or whose length is unknown), minus the
    log of how many times too long they are otherwise."""
    d = np.asarray(durations_s, dtype=np.float64)
    if minutes is None:
        return np.zeros(len(d))
    ratio = np.nan_to_num(d, nan=0.0) / (60.0 * minutes)
    return -np.log(np.maximum(ratio, 1.0))
