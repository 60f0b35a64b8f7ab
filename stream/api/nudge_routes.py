"""The nudge service's routes: the effect figure (aggregate) and the audit log (people: it
names who was nudged or suppressed, by pseudonym), read from the service's Redis keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from stream.api.auth import AGGREGATE, PEOPLE
from stream.api.security import Guard
from stream.nudge.effect import DAY_MS, effect
from stream.settings import Settings
from stream.store import RedisStore
from stream.store.nudge_store import NudgeStore

#: Most audit entries one answer holds.
LOG_MAX_LIMIT = 10_000


class EffectGroup(BaseModel):
    flags: int = Field(description="Flags decided in the period whose window has passed.")
    active_again: int | None = Field(description="Of those, active again within the window.")
    share: float | None = Field(description="active_again / flags; null under min group size.")


class EffectWindow(BaseModel):
    nudged: EffectGroup
    not_nudged: EffectGroup = Field(description="Suppressed by the window, opted out, capped.")
    difference: float | None = Field(description="nudged share minus not_nudged share.")


class NudgeEffect(BaseModel):
    """Active again within 7 and 30 days: nudged people against flagged ones not nudged."""

    since: str
    decisions: int
    windows: dict[str, EffectWindow]


class NudgeLogEntry(BaseModel):
    at: str
    who: str = Field(description="The person as the flag names them (a pseudonym with a key).")
    kind: str
    event_id: str
    channel: str
    template: str
    outcome: str
    reason: str | None = None
    attempts: int = 0


class NudgeLog(BaseModel):
    """Every delivery and suppression since a time, oldest first."""

    since: str
    items: list[NudgeLogEntry]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def build_nudge_router(
    settings: Settings, store: RedisStore, guard: Guard, errors: dict[int | str, Any]
) -> APIRouter:
    """/nudges/effect and /nudges/log."""
    router = APIRouter(prefix="/api/v1")
    nudges = NudgeStore(store)

    @router.get(
        "/nudges/effect",
        response_model=NudgeEffect,
        summary="Effect of nudges: active again within 7 and 30 days, nudged or not",
        dependencies=[Depends(guard.require(AGGREGATE))],
        responses=errors,
        openapi_extra={"x-scope": AGGREGATE},
    )
    async def nudge_effect(
        days: Annotated[int, Query(ge=1, le=400, description="Decisions of the last days.")] = 90,
    ) -> dict[str, Any]:
        now = int(datetime.now(UTC).timestamp() * 1000)
        since = now - days * DAY_MS
        entries = await nudges.effect_entries()
        figure = effect(entries, now, since, minimum=settings.min_group_size)
        return {"since": _iso(since), **figure}

    @router.get(
        "/nudges/log",
        response_model=NudgeLog,
        summary="Nudges sent and suppressed (who, flag, channel, template, outcome)",
        dependencies=[Depends(guard.require(PEOPLE))],
        responses=errors,
        openapi_extra={"x-scope": PEOPLE},
    )
    async def nudge_log(
        days: Annotated[int, Query(ge=1, le=400, description="Entries of the last days.")] = 7,
        limit: Annotated[int, Query(ge=1, le=LOG_MAX_LIMIT)] = 1000,
    ) -> dict[str, Any]:
        since = int(datetime.now(UTC).timestamp() * 1000) - days * DAY_MS
        entries = await nudges.audit(since, limit)
        items = [
            {**e, "at": _iso(int(e["at"])), "reason": e.get("reason") or None} for e in entries
        ]
        return {"since": _iso(since), "items": items}

    return router
