"""The listener side of the service: accounts, people, events and interest profiles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from podrec.ingest.events import event_from_row
from podrec.ingest.normalize import FieldError
from podrec.model.profile import ProfileModel
from podrec.privacy.forget import scrub_models
from podrec.profile.labels import interest_label
from podrec.profile.summaries import SummaryFacts, interest_facts
from podrec.recommend.history import HistoryBuilder, TextEvent
from podrec.records import EventRecord, IngestReport
from podrec.service.errors import NotFoundError
from podrec.storage import Store

# the summaries of a profile's interests, from their facts (service/writer.py, summarise)
Summarise = Callable[[list[SummaryFacts]], list[dict[str, Any]]]


class ListenerService:
    """Listeners and their events. A change to a listener needs no model change: lists read
    the listener's events on every request."""

    def __init__(self, store: Store, builder: HistoryBuilder) -> None:
        self.store = store
        self.builder = builder

    def create(self, user_id: str) -> bool:
        """Create a listener with no events yet; False when they already existed."""
        existed = self.store.user_exists(user_id)
        self.store.ensure_user(user_id)
        return not existed

    def exists(self, user_id: str) -> bool:
        return self.store.user_exists(user_id)

    def link(self, user_ids: list[str], person_id: str | None = None) -> str:
        """Link one person's accounts on several platforms; their events make one profile."""
        return self.store.link_users(user_ids, person_id)

    def accounts(self, user_id: str) -> list[str]:
        return self.store.linked_accounts(user_id)

    def person(self, user_id: str) -> str | None:
        return self.store.person_of(user_id)

    def export(self, user_id: str) -> dict[str, Any]:
        data = self.store.export_user(user_id)
        if not data:
            raise NotFoundError(f"no listener with id {user_id!r}")
        return data

    def delete(self, user_id: str) -> dict[str, Any]:
        """Delete an account, every event it sent, its id as a linked account's person id,
        and its rows in the trained models (linked accounts stay)."""
        if not self.store.user_exists(user_id):
            raise NotFoundError(f"no listener with id {user_id!r}")
        gone = self.store.forget_user(user_id)
        models = scrub_models(self.store, gone["stored_id"])
        if models:
            self.store.checkpoint()  # the rewritten models' old pages out of the log too
        return {"user_id": user_id, "deleted_events": gone["events"],
                "relinked_accounts": gone["relinked"], "scrubbed_models": models}

    def events(self, user_id: str) -> list[EventRecord]:
        """Every event of a listener and of the accounts linked to them, oldest first (one
        read; whether the listener exists is asked only when they have no events)."""
        events = self.store.user_events(user_id)
        if not events and not self.store.user_exists(user_id):
            raise NotFoundError(f"no listener with id {user_id!r}")
        return events

    def add_events(self, rows: list[dict[str, Any]], source: str = "request") -> IngestReport:
        """Store events given as generic-format dicts (the REST API's body). Each bad row is
        reported by its index and field and skipped; the rest go in."""
        report = IngestReport()
        good = []
        for i, row in enumerate(rows):
            try:
                good.append(event_from_row(row))
            except FieldError as exc:
                field_name, _, message = str(exc).partition(": ")
                report.fail(source, f"event {i}", field_name if message else None,
                            message or str(exc))
        self.store.add_events(good, report)
        return report

    def version(self, user_id: str) -> tuple[str, int, int] | None:
        """The listener's version: what a kept list is keyed by (``Store.listener_version``)."""
        return self.store.listener_version(user_id)

    def texts(self, user_id: str, limit: int = 5,
              events: list[EventRecord] | None = None) -> list[str]:
        """What a listener searched for and wrote in favourable reviews, latest first."""
        out = []
        for ev in reversed(events if events is not None else self.store.user_events(user_id)):
            words = TextEvent.of(ev)
            if words is not None and words.favourable and words.text.strip():
                out.append(words.text.strip()[:500])
            if len(out) >= limit:
                break
        return out

    def profile(self, user_id: str, pmodel: ProfileModel, now: datetime | None = None,
                title_of: Callable[[str], str | None] | None = None,
                summarise: Summarise | None = None) -> dict[str, Any]:
        """A listener's interest profile as plain data: each interest with its share, its
        top items, genres, listening hours and devices, a 2-D map position and a summary
        (``summarise``: written from the interest's facts; else its label)."""
        now = now or datetime.now(UTC)
        events = self.events(user_id)
        c = pmodel.catalog
        h = self.builder.build(events, c, now)
        items = h.items()
        profile = pmodel.build_profile(items, now.timestamp())
        interests = [self._interest(pmodel, i) for i in profile.interests]
        facts = [interest_facts(c, i, d["label"])
                 for i, d in zip(profile.interests, interests, strict=True)]
        written = summarise(facts) if summarise is not None else [
            {"summary": f.label, "summary_source": "template", "summary_fallback": "off"}
            for f in facts]
        for d, w in zip(interests, written, strict=True):
            d.update(w)
        disliked = [c.ids[int(r)] for r in h.negative_rows]
        return {"user_id": user_id, "person_id": self.store.person_of(user_id),
                "accounts": self.store.linked_accounts(user_id),
                "events": len(events),
                "interests": interests,
                "disliked": [{"id": i, "title": title_of(i) if title_of else None}
                             for i in disliked],
                "texts": self.texts(user_id, events=events)}

    @staticmethod
    def _interest(pmodel: ProfileModel, interest: Any) -> dict[str, Any]:
        c = pmodel.catalog
        centre = (interest.weights[:, None] * pmodel.centred[interest.rows]).sum(axis=0)
        x, y = pmodel.map_2d(centre / max(float(np.linalg.norm(centre)), 1e-9))[0]
        order = np.argsort(-interest.weights, kind="stable")
        genres: dict[str, float] = {}
        for r, w in zip(interest.rows, interest.weights, strict=True):
            for g in c.categories[int(r)]:
                genres[g] = genres.get(g, 0.0) + float(w)
        hours = interest.hours / max(interest.hours.sum(), 1e-9)
        return {
            "label": interest_label(c, interest),
            "weight": round(interest.share, 4), "x": round(float(x), 4),
            "y": round(float(y), 4),
            "items": [{"id": c.ids[int(interest.rows[i])],
                       "title": c.titles[int(interest.rows[i])],
                       "weight": round(float(interest.weights[i]), 4)} for i in order[:8]],
            "tags": sorted(genres, key=lambda g: -genres[g])[:5],
            "hours": [round(float(v), 4) for v in hours],
            "weekdays": [round(float(d), 4) for d in
                         interest.weekdays / max(interest.weekdays.sum(), 1e-9)],
            "devices": {d: round(w, 4) for d, w in interest.devices.items()}}
