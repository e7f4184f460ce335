"""`/v1/labelsets`: a team's named label sets, and the labels of a classify request.

Any key reads its team's sets; creating, replacing and deleting one needs an
`ingest` key or higher. A team sees only its own sets (`history.labelsets`).
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ..history.labelsets import MAX_LABELS, LabelSet, LabelSets
from .auth import Caller, Who
from .errors import ApiError

BOTH = "give either `labels` or `label_set`, not both"
NEITHER = ("no labels: give `labels` (class names separated by commas or newlines) or `label_set` (the name of a "
           "label set: PUT /v1/labelsets/NAME makes one)")


class LabelSetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(max_length=MAX_LABELS, description="Class names, in order; at least 2.")


def _json(found: LabelSet) -> dict:
    return asdict(found)


def _unknown(who: Caller, name: str) -> ApiError:
    team = "" if who.team is None else f" of team {who.team!r}"
    return ApiError(404, f"no label set named {name!r}{team} (GET /v1/labelsets lists them)")


async def request_labels(sets: LabelSets, who: Caller, labels: str | None, label_set: str | None) -> list[str]:
    """A classify request's class names: inline (`labels`) or the caller's team's set (`label_set`).
    422 for both or neither, 404 for a set the team does not have."""
    from .app import parse_labels

    if labels is not None and label_set is not None:
        raise ApiError(422, BOTH)
    if labels is None and label_set is None:
        raise ApiError(422, NEITHER)
    if labels is not None:
        return parse_labels(labels)
    found = await run_in_threadpool(sets.get, who.team, label_set)
    if found is None:
        raise _unknown(who, label_set)
    return found.labels


def router(sets: LabelSets) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/labelsets", summary="The caller's team's label sets")
    def list_label_sets(who: Who) -> list[dict]:
        return [_json(found) for found in sets.sets(who.team)]

    @routes.get("/v1/labelsets/{name}", summary="One of the team's label sets")
    def show_label_set(who: Who, name: str) -> dict:
        found = sets.get(who.team, name)
        if found is None:
            raise _unknown(who, name)
        return _json(found)

    @routes.put("/v1/labelsets/{name}", summary="Create or replace a label set (ingest keys or higher); 201 when "
                                                "created")
    def put_label_set(who: Who, name: str, body: LabelSetBody, response: Response) -> dict:
        who.require("ingest")
        found, created = sets.put(who.team, name, body.labels)
        response.status_code = 201 if created else 200
        return _json(found)

    @routes.delete("/v1/labelsets/{name}", summary="Delete a label set (ingest keys or higher)")
    def delete_label_set(who: Who, name: str) -> dict:
        who.require("ingest")
        if not sets.delete(who.team, name):
            raise _unknown(who, name)
        return {"name": name, "deleted": True}

    return routes
