"""Every failure of /api/v1 as a JSON error: ``{"error": {"status", "message", "param"?}}``.

A client's mistake (a bad parameter, no token, an unknown path) is a 4xx logged at most at
DEBUG; Redis being down is a 503 logged as a warning; only a bug is a 500 with a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisClusterException, RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from stream.analytics import views

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than 200, raised anywhere below a route."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = headers


def error_response(
    status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one error shape."""
    body: dict[str, Any] = {"status": status, "message": message}
    if param is not None:
        body["param"] = param
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str | None, str]:
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ())]
    param = location[1] if len(location) > 1 and location[0] in ("query", "path") else None
    # pydantic's message, never the input: a query value may be an id or 10 KB of junk.
    return param, str(first.get("msg", "invalid request"))[:200]


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the error shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param, exc.headers)

    @app.exception_handler(views.BadRequest)
    async def bad_request(request: Request, exc: views.BadRequest) -> JSONResponse:
        return error_response(400, exc.message, exc.param)

    @app.exception_handler(views.NotFound)
    async def not_found(request: Request, exc: views.NotFound) -> JSONResponse:
        return error_response(404, str(exc)[:300])

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        param, message = _validation_message(exc)
        return error_response(400, message, param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail)[:200])

    @app.exception_handler(RedisError)
    @app.exception_handler(RedisClusterException)  # a cluster failing over: not a RedisError
    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("Redis unavailable for %s: %s", request.url.path[:200], type(exc).__name__)
        return error_response(503, "Redis unavailable; retry shortly")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("Unexpected error answering %s", request.url.path[:200], exc_info=exc)
        return error_response(500, f"unexpected {type(exc).__name__}")


#: Longest query string served; the routes take at most four short parameters.
MAX_QUERY_BYTES = 8192


class QueryStringCap:
    """ASGI middleware: a query string over MAX_QUERY_BYTES gets a 414 before anything parses it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            response = error_response(414, f"the query string is over {MAX_QUERY_BYTES} bytes")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
