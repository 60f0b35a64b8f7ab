"""The access log of people-scope requests: who (token name) read which route, when, and the
answer's status. Never a query value or a path id: works councils ask who looked at whom, and the
log must not become a second copy of the data."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from stream import jsonutil
from stream.api.auth import PEOPLE

ACCESS_LOGGER: Final = "esn_pulse.api.access"
#: Set in a request's state by an aggregate route whose answer named people (a people-scope
#: caller's /content/top with profiles in it): that request is logged too.
NAMED_PEOPLE: Final = "named_people"
log = logging.getLogger(ACCESS_LOGGER)

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


def configure_access_log(path: str) -> None:
    """Lines to ``path`` (appended, JSON lines) or, when empty, to stderr."""
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def access_record(token: str, route: str, status: int, at: float) -> str:
    """One line of the log."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
    return jsonutil.dumps(
        {"time": stamp, "token": token, "route": route, "method": "GET", "status": status}
    ).decode()


class PeopleAccessLog:
    """ASGI middleware: after each request to a people-scope route, one line."""

    def __init__(self, app: Callable[..., Any], clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def remember_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            route = scope.get("route")
            extra = getattr(route, "openapi_extra", None) or {}
            state = scope.get("state") or {}
            # A people route, or an aggregate one that named people to this caller.
            if extra.get("x-scope") == PEOPLE or state.get(NAMED_PEOPLE):
                token = str(state.get("api_token", "-"))
                # The route's template (/api/v1/users/{user_id}), never the path it was called by.
                log.info(access_record(token, str(route.path), status, self.clock()))  # type: ignore[union-attr]
