"""The /api/v1 routes: parse parameters, check the token's scope, answer from
:mod:`stream.analytics.views` (which the CLI and the report share)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Final, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request

from stream.analytics import views
from stream.analytics.at_risk import at_risk_page
from stream.analytics.days import clock_now_ms, day_of_ms
from stream.api import models
from stream.api.access import NAMED_PEOPLE
from stream.api.auth import AGGREGATE, PEOPLE
from stream.api.cache import AnswerCache
from stream.api.security import Guard
from stream.flags.machine import Definitions
from stream.privacy import looks_like_pseudonym, lookup_id
from stream.queries import at_risk_users, flagged_users
from stream.settings import Settings
from stream.store import RedisStore
from stream.timebounds import parse_duration_ms

PREFIX: Final = "/api/v1"
#: The object type of a person among the top items (stream.batch folds every person under it).
PROFILE: Final = "profile"
#: Most rows of one /inactive page; past it, page with offset.
INACTIVE_MAX_LIMIT: Final = 1000
#: Path ids and free-text parameters longer than this are refused before Redis is asked.
MAX_ID_LENGTH: Final = 512
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": models.Error, "description": "A parameter is invalid; error.param names it."},
    401: {"model": models.Error, "description": "No bearer token, or not a known one."},
    403: {"model": models.Error, "description": "The token lacks this route's scope."},
    503: {"model": models.Error, "description": "Redis is unavailable; retry."},
}
_NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {
    404: {"model": models.Error, "description": "Not known."}
}

_Route = TypeVar("_Route", bound=Callable[..., Any])
Id = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]


@dataclass
class ApiContext:
    """What the routes read: settings, the store, the definitions and the answer caches."""

    settings: Settings
    store: RedisStore
    definitions: Definitions
    cache: AnswerCache

    async def now_ms(self) -> int:
        """The engine's clock."""
        return await clock_now_ms(self.store, self.settings)


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def build_router(context: ApiContext, guard: Guard) -> APIRouter:
    """Every route, each behind its scope."""
    router = APIRouter(prefix=PREFIX)
    settings, store, definitions = context.settings, context.store, context.definitions
    aggregate = [Depends(guard.require(AGGREGATE))]
    people = [Depends(guard.require(PEOPLE))]

    def route(
        path: str, scope: str, model: type[Any], summary: str, not_found: bool = False
    ) -> Callable[[_Route], _Route]:
        decorator: Callable[[_Route], _Route] = router.get(
            path,
            response_model=model,
            summary=summary,
            dependencies=aggregate if scope == AGGREGATE else people,
            responses={**_ERRORS, **(_NOT_FOUND if not_found else {})},
            openapi_extra={"x-scope": scope},
        )
        return decorator

    @route("/summary", AGGREGATE, models.Summary, "Headline figures now (cached briefly)")
    async def summary() -> dict[str, Any]:
        async def compute() -> dict[str, Any]:
            return await views.summary(store, settings, definitions, await context.now_ms())

        age, answer = await context.cache.get("summary", compute)
        return {**answer, "cached_seconds": round(age, 3)}

    @route("/trends", AGGREGATE, models.Trend, "A daily series")
    async def trends(
        metric: Annotated[models.TrendMetric, Query(description="The series.")],
        from_: Annotated[date | None, Query(alias="from", description="First UTC day.")] = None,
        to: Annotated[date | None, Query(description="Last UTC day (default: today).")] = None,
    ) -> dict[str, Any]:
        now = await context.now_ms()
        first, last = views.parse_range(settings, now, _iso(from_), _iso(to), 30)
        return await views.trends(store, metric, first, last, now)

    @route("/users/{user_id}", PEOPLE, models.User, "One user", not_found=True)
    async def user(user_id: Id) -> dict[str, Any]:
        stored = lookup_id(settings, user_id)
        if stored != user_id and looks_like_pseudonym(user_id):
            try:
                return await views.user_view(store, settings, definitions, stored)
            except views.NotFound:
                stored = user_id  # a pseudonym copied from a listing (/inactive)
        return await views.user_view(store, settings, definitions, stored)

    @route("/inactive", PEOPLE, models.Inactive, "Flagged users, newest silence first, by page")
    async def inactive(
        threshold: Annotated[
            str | None, Query(max_length=32, description="A configured threshold, e.g. 30d.")
        ] = None,
        never_active: Annotated[Literal["true", "false"], Query()] = "false",
        limit: Annotated[int, Query(ge=1, le=INACTIVE_MAX_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> dict[str, Any]:
        threshold_ms = _threshold(settings, definitions, threshold)
        never = never_active == "true"

        async def compute() -> Any:
            return await flagged_users(
                store, settings, definitions, threshold_ms=threshold_ms, never_active=never
            )

        # The scan is shared by every page and caller for ESN_API_CACHE_SECONDS; a page reads
        # the directory for its own rows only.
        _, flagged = await context.cache.get(("inactive", threshold_ms, never), compute)
        return await views.inactive_page(store, flagged, offset, limit)

    @route("/at-risk", PEOPLE, models.AtRisk, "At-risk users, newest flag first, by page")
    async def at_risk(
        department: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
        community: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
        limit: Annotated[int, Query(ge=1, le=INACTIVE_MAX_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> dict[str, Any]:
        async def compute() -> Any:
            return await at_risk_users(store, definitions)

        # One scan shared by every page, filter and caller, like /inactive's.
        _, flagged = await context.cache.get(("at_risk",), compute)
        return await at_risk_page(
            store, flagged, offset, limit, department=department, community=community
        )

    @route("/communities", AGGREGATE, models.Communities, "Every community's health")
    async def communities(state: Annotated[models.CommunityState, Query()] = "all") -> Any:
        listing = await every_community()
        if state == "all":
            return listing
        return {**listing, "communities": [c for c in listing["communities"] if c[state]]}

    @route(
        "/communities/{community_id}",
        AGGREGATE,
        models.CommunityDetail,
        "One community's health",
        not_found=True,
    )
    async def community(community_id: Id) -> dict[str, Any]:
        listing = await every_community()
        for row in listing["communities"]:
            if row["community"] == community_id:
                return {"now": listing["now"], **row}
        raise views.NotFound(f"community {community_id[:100]!r} is not known")

    async def every_community() -> dict[str, Any]:
        # Every community's figures read the whole membership: computed at most once per
        # ESN_API_CACHE_SECONDS and shared by the listing, its filters and the one-community route.
        async def compute() -> dict[str, Any]:
            now = await context.now_ms()
            return await views.communities_view(store, settings, definitions, now, "all")

        _, listing = await context.cache.get("communities", compute)
        return dict(listing)

    @route("/content", AGGREGATE, models.Content, "Content mix: events by type and object type")
    async def content(
        from_: Annotated[date | None, Query(alias="from", description="First UTC day.")] = None,
        to: Annotated[date | None, Query(description="Last UTC day (default: today).")] = None,
    ) -> dict[str, Any]:
        now = await context.now_ms()
        first, last = views.parse_range(settings, now, _iso(from_), _iso(to), 30)
        return await views.content_view(store, first, last)

    @route("/content/top", AGGREGATE, models.TopItems, "Most-interacted-with items of a period")
    async def top(
        request: Request,
        period: Annotated[Literal["day", "week"], Query()] = "day",
        day: Annotated[date | None, Query(alias="date", description="A day of the period.")] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        now = await context.now_ms()
        first = views.parse_date("date", _iso(day), day_of_ms(now))
        answer = await views.top_view(store, period, first, limit)
        return people_items_for(request, answer)

    @route("/initiatives", AGGREGATE, models.Initiatives, "Stored initiatives")
    async def initiatives() -> dict[str, Any]:
        return await views.initiatives_view(store)

    @route(
        "/initiatives/{name}",
        AGGREGATE,
        models.Initiative,
        "An initiative against everyone else, week by week",
        not_found=True,
    )
    async def initiative(name: Id) -> dict[str, Any]:
        return await views.initiative_view(store, settings, name, await context.now_ms())

    return router


def people_items_for(request: Request, answer: dict[str, Any]) -> dict[str, Any]:
    """Top items as this caller may see them: a profile is a person, so its id (a pseudonym, or
    the raw id without ESN_PSEUDONYMIZE_KEY) goes to a people-scope token only, and is logged."""
    profiles = [item for item in answer["items"] if item["object_type"] == PROFILE]
    if not profiles:
        return answer
    if PEOPLE in getattr(request.state, "api_scopes", frozenset()):
        setattr(request.state, NAMED_PEOPLE, True)
        return answer
    items = [
        {**item, "item": PROFILE, "id": None} if item["object_type"] == PROFILE else item
        for item in answer["items"]
    ]
    return {**answer, "items": items}


def _threshold(settings: Settings, definitions: Definitions, raw: str | None) -> int | None:
    if not raw:
        return None
    try:
        threshold_ms = parse_duration_ms(raw)
    except ValueError:
        threshold_ms = -1
    if threshold_ms not in definitions.thresholds_ms:
        raise views.BadRequest(
            "threshold", f"not a configured threshold ({settings.inactivity_thresholds})"
        )
    return threshold_ms
