"""Listeners: create (client), profile (client); link, export, delete (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from podrec.server import schemas
from podrec.server.auth import ADMIN, CLIENT
from podrec.server.deps import FreshService, Lists, Service, router
from podrec.server.errors import invalid
from podrec.service import NotFoundError

routes = router("users")

NO_LISTENER: dict[int | str, dict[str, Any]] = {404: {"description": "no listener with this id"}}


@routes.post("/users", response_model=schemas.UserCreated, status_code=201,
             dependencies=[CLIENT],
             responses={200: {"model": schemas.UserCreated,
                              "description": "the listener existed already (`created` false)"},
                        201: {"description": "the listener was created"}})
def create_user(podrec: Service, body: schemas.UserIn, response: Response) -> Any:
    """Create a listener with no events yet (201; 200 when they already exist)."""
    user_id = body.user_id.strip()
    if not user_id:
        raise invalid(("body", "user_id"), "must not be blank")
    created = podrec.create_user(user_id)
    if not created:
        response.status_code = 200
    return {"user_id": user_id, "created": created}


@routes.get("/users/{user_id}/profile", dependencies=[CLIENT], responses=NO_LISTENER)
def profile(podrec: FreshService, user_id: str) -> dict[str, Any]:
    """A listener's profile: linked accounts, event counts and their interests."""
    if not podrec.user_exists(user_id):
        raise NotFoundError(f"no listener with id {user_id!r}")
    return podrec.profile(user_id)


@routes.post("/users/{user_id}/link", response_model=schemas.Linked, dependencies=[ADMIN])
def link(podrec: Service, lists: Lists, user_id: str, body: schemas.LinkIn) -> Any:
    """Link a listener's accounts on several platforms: one person, one profile."""
    person = podrec.link_users([user_id, *body.accounts], body.person_id)
    accounts = podrec.linked_accounts(user_id)
    for account in accounts:  # this worker's lists at once; others as the database says
        lists.forget(podrec.listener_key(account), person)
    return {"person_id": person, "accounts": accounts}


@routes.get("/users/{user_id}/export", dependencies=[ADMIN], responses=NO_LISTENER)
def export(podrec: Service, user_id: str) -> dict[str, Any]:
    """Everything stored about one account: its record, links and every event."""
    return podrec.export_user(user_id)


@routes.delete("/users/{user_id}", response_model=schemas.Deleted, dependencies=[ADMIN],
               responses=NO_LISTENER)
def delete_user(podrec: Service, lists: Lists, user_id: str) -> Any:
    """Delete an account, every event it sent and every trace of it: its id as a linked
    account's person id, its rows in trained models (linked accounts stay)."""
    person = podrec.person_of(user_id)
    deleted = podrec.delete_user(user_id)
    lists.forget(podrec.listener_key(user_id), person)
    return deleted
