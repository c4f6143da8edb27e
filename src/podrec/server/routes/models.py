"""The served models: what each kind is served with (client), and training a new version
(admin). Training runs on a request thread under the database-wide training lock
(server/training.py), its fits on the ``ray.address`` cluster when one is configured; every
worker serves the new version within a second."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException

from podrec.server import schemas
from podrec.server.auth import ADMIN, CLIENT
from podrec.server.deps import FreshService, Service, Training, router
from podrec.server.training import train_kind
from podrec.service import NotFoundError, Podrec
from podrec.train.trainer import TrainReport

KINDS = ("show", "episode")
UNAUTHORIZED = {401: {"description": "missing, invalid or revoked API key"}}

routes = router("models")


@routes.get("/models", response_model=schemas.ServedModels, dependencies=[CLIENT],
            responses=UNAUTHORIZED)
def served_models(podrec: FreshService) -> Any:
    """What each kind of item is served with now: the trained version (null: none yet, the
    fallback, the listener profile plus popularity, is served) and what it was trained on."""
    return {"models": [served_json(podrec, kind) for kind in KINDS]}


@routes.post("/models/train", response_model=schemas.TrainReport, dependencies=[ADMIN],
             responses={**UNAUTHORIZED, 403: {"description": "not an admin key"},
                        404: {"description": "no item of this kind is embedded yet"},
                        409: {"description": "a training is running already (this or "
                                             "another worker, or the schedule)"}})
def train(podrec: Service, lock: Training, body: schemas.TrainIn | None = None) -> Any:
    """Choose and fit a new version of the served model of one kind (default: show) on
    every stored event, as `podrec train` does, and save it. Takes seconds to minutes;
    with too few events the fallback is saved, and `fallback` says why. Admin only."""
    kind = (body or schemas.TrainIn()).kind
    with lock.hold() as held:
        if not held:
            raise HTTPException(409, "a training is running already; try again when it "
                                "is done (GET /models shows the version served)")
        return report_json(train_kind(podrec, kind))


def report_json(report: TrainReport) -> dict[str, Any]:
    meta = report.meta
    return {"kind": report.kind, "version": report.version, "model": meta.get("model"),
            "fallback": report.fallback, "data": meta.get("data"),
            "validation": meta.get("validation"), "params": meta.get("params"),
            "seconds": meta.get("seconds")}


def served_json(podrec: Podrec, kind: str) -> dict[str, Any]:
    try:
        served = podrec.served_model(kind)
    except NotFoundError as exc:  # nothing of this kind to serve yet
        return {"kind": kind, "version": None, "fallback": str(exc)}
    meta = served["meta"]
    return {"kind": kind, "version": served["version"], "model": meta.get("model"),
            "fallback": served["fallback"], "data": meta.get("data"),
            "validation": meta.get("validation"), "trained_at": trained_at(served["version"])}


def trained_at(version: str | None) -> datetime | None:
    """A version's time (versions are the UTC time of training)."""
    try:
        return datetime.strptime(version or "", "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
