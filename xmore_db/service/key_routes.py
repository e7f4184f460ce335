"""`/v1/keys`: the API keys over HTTP, for admin keys only (`xmore keys` is the same on the command line).

Key records are `KeyStore`'s `ApiKey`s as JSON (never the key's hash); a new
key's `api_key` is in the answer to its creation and nowhere else, ever.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from ..history.keys import KeyStore
from .auth import Caller, Who
from .errors import ApiError

router = APIRouter()


class KeyRequest(BaseModel):
    """`xmore keys create`'s options."""

    team: str
    role: str
    note: str | None = None


def admin(who: Who) -> Caller:
    """The caller, if an admin: a dependency, so that 403 comes before any complaint about the body."""
    who.require("admin")
    return who


Admin = Annotated[Caller, Depends(admin)]


def _store(request: Request) -> KeyStore:
    store = request.app.state.keys.store
    if store is None:
        raise ApiError(404, "this service runs with --open, without keys: manage keys with `xmore keys` "
                            "on a machine with access to its database")
    return store


@router.get("/v1/keys", summary="The API keys, never their hashes (`xmore keys list --json`; admin keys only)")
def list_keys(who: Admin, request: Request, all: bool = False) -> list[dict]:
    return [asdict(record) for record in _store(request).keys(include_revoked=all)]


@router.post("/v1/keys", status_code=201,
             summary="Create a key; the answer holds it once, as `api_key` (`xmore keys create`; admin keys only)")
def create_key(who: Admin, request: Request, body: KeyRequest) -> dict:
    created = _store(request).create(body.team, body.role, note=body.note)
    return {"api_key": created.api_key} | asdict(created.record)


@router.delete("/v1/keys/{key_id}", summary="Revoke a key (`xmore keys revoke`; admin keys only)")
def revoke_key(who: Admin, request: Request, key_id: int) -> dict:
    record, revoked_now = _store(request).revoke(key_id)
    return asdict(record) | {"already_revoked": not revoked_now}
