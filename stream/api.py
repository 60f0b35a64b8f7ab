"""The /api/v1 JSON endpoints on the worker's Faust web server (documented in stream/openapi.py).

Handlers only parse parameters and map errors to status codes; the answers come from
:mod:`stream.analytics.views`, which the CLI and the report share.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from redis.exceptions import RedisError

from stream.analytics import views
from stream.analytics.community_flags import FLAGS
from stream.analytics.days import clock_now_ms
from stream.analytics.trends import TREND_METRICS
from stream.inactivity import definitions_from, parse_duration_ms
from stream.openapi import openapi_document
from stream.privacy import lookup_id
from stream.settings import Settings
from stream.store import RedisStore

Handler = Callable[[dict[str, str], dict[str, str], int], Awaitable[dict[str, Any]]]


def _error(
    view: faust.web.View, status: int, message: str, param: str | None = None
) -> faust.web.Response:
    body: dict[str, Any] = {"status": status, "message": message}
    if param is not None:
        body["param"] = param
    return view.json({"error": body}, status=status)


def register_api(app: faust.App, settings: Settings, store: RedisStore) -> None:
    """Add every /api/v1 page to the app."""
    definitions = definitions_from(settings)
    document = openapi_document()

    def route(path: str, handler: Handler) -> None:
        async def page(
            self: faust.web.View, request: faust.web.Request, **path_params: str
        ) -> faust.web.Response:
            query = dict(request.query)
            try:
                now_ms = await clock_now_ms(store, settings)
                answer = await handler(query, path_params, now_ms)
                return self.json(answer)
            except views.BadRequest as exc:
                return _error(self, 400, exc.message, exc.param)
            except views.NotFound as exc:
                return _error(self, 404, str(exc))
            except RedisError as exc:
                return _error(self, 503, f"Redis unavailable: {exc}")

        app.page(path, name=f"api{path.replace('/', '_')}")(page)

    async def summary(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        return await views.summary(store, settings, definitions, now)

    async def trends(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        if not q.get("metric"):
            raise views.BadRequest("metric", f"required: one of {', '.join(TREND_METRICS)}")
        metric = views.parse_choice("metric", q.get("metric"), "dau", tuple(TREND_METRICS))
        first, last = views.parse_range(settings, now, q.get("from"), q.get("to"), 30)
        return await views.trends(store, metric, first, last)

    async def user(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        return await views.user_view(
            store, settings, definitions, lookup_id(settings, p["user_id"])
        )

    async def inactive(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        threshold_ms = None
        if q.get("threshold"):
            try:
                threshold_ms = parse_duration_ms(q["threshold"])
            except ValueError:
                threshold_ms = -1
            if threshold_ms not in definitions.thresholds_ms:
                raise views.BadRequest(
                    "threshold", f"not a configured threshold ({settings.inactivity_thresholds})"
                )
        never = views.parse_choice(
            "never_active", q.get("never_active"), "false", ("true", "false")
        )
        limit = views.parse_int("limit", q.get("limit"), 1000, 1, 10_000)
        return await views.inactive_list(
            store, settings, definitions, threshold_ms, never == "true", limit
        )

    async def communities(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        state = views.parse_choice("state", q.get("state"), "all", ("all", *FLAGS))
        return await views.communities_view(store, settings, definitions, now, state)

    async def community(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        return await views.community_view(store, settings, definitions, now, p["community_id"])

    async def content(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        first, last = views.parse_range(settings, now, q.get("from"), q.get("to"), 30)
        return await views.content_view(store, first, last)

    async def top(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        period = views.parse_choice("period", q.get("period"), "day", ("day", "week"))
        day, _ = views.parse_range(settings, now, q.get("date"), q.get("date"), 1)
        limit = views.parse_int("limit", q.get("limit"), 10, 1, 100)
        return await views.top_view(store, period, day, limit)

    async def initiatives(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        return await views.initiatives_view(store)

    async def initiative(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        return await views.initiative_view(store, settings, p["name"], now)

    async def openapi(q: dict[str, str], p: dict[str, str], now: int) -> dict[str, Any]:
        return document

    route("/api/v1/summary", summary)
    route("/api/v1/trends", trends)
    route("/api/v1/users/{user_id}", user)
    route("/api/v1/inactive", inactive)
    route("/api/v1/communities", communities)
    route("/api/v1/communities/{community_id}", community)
    route("/api/v1/content", content)
    route("/api/v1/content/top", top)
    route("/api/v1/initiatives", initiatives)
    route("/api/v1/initiatives/{name}", initiative)
    route("/api/v1/openapi.json", openapi)
