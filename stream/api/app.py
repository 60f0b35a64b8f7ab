"""The FastAPI application of ``esn-pulse api`` and the OpenAPI document generated from it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from stream.api.access import PeopleAccessLog
from stream.api.auth import SCOPE_DESCRIPTIONS, Token
from stream.api.cache import AnswerCache
from stream.api.errors import QueryStringCap, install_error_handlers
from stream.api.nudge_routes import build_nudge_router
from stream.api.routes import _ERRORS as ROUTE_ERRORS
from stream.api.routes import PREFIX, ApiContext, build_router
from stream.api.security import Guard
from stream.flags.machine import definitions_from
from stream.settings import Settings
from stream.store import RedisStore

OPENAPI_PATH: Final = f"{PREFIX}/openapi.json"
_DESCRIPTION: Final = (
    "Engagement figures of an enterprise social network, served by `esn-pulse api` from Redis. "
    "Times are UTC; days are whole UTC days; the clock is the wall clock, or with ESN_CLOCK=event "
    "the highest event time folded. Every route needs a bearer token holding its scope "
    "(x-scope): "
    + "; ".join(f"`{name}`: {text}" for name, text in SCOPE_DESCRIPTIONS.items())
    + ". Requests to people-scope routes are written to an access log."
)


def create_api(settings: Settings, tokens: list[Token]) -> Any:
    """The ASGI app served: FastAPI behind the query-string cap and the people access log."""
    return PeopleAccessLog(QueryStringCap(create_fastapi(settings, tokens)))


def create_fastapi(settings: Settings, tokens: list[Token]) -> FastAPI:
    """The routes, the probes and the error handlers."""
    store = RedisStore.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.close()

    api = FastAPI(
        title="ESN Pulse analytics API",
        version="2.0.0",
        description=_DESCRIPTION,
        openapi_url=OPENAPI_PATH,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    context = ApiContext(
        settings,
        store,
        definitions_from(settings),
        AnswerCache(settings.api_cache_seconds, time.monotonic),
    )
    guard = Guard(tokens)
    api.include_router(build_router(context, guard))
    api.include_router(build_nudge_router(settings, store, guard, ROUTE_ERRORS))

    # Probes, open like the worker's: they say nothing about anyone.
    @api.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "up"}

    @api.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        redis_ok = await store.ping()
        return JSONResponse({"ready": redis_ok, "redis": redis_ok}, 200 if redis_ok else 503)

    install_error_handlers(api)
    api.openapi = lambda: _document(api)  # type: ignore[method-assign]
    return api


def _document(api: FastAPI) -> dict[str, Any]:
    if api.openapi_schema is None:
        document = get_openapi(
            title=api.title,
            version=api.version,
            description=api.description,
            routes=api.routes,
        )
        # Validation errors are answered as 400 with the Error shape (stream.api.errors), not
        # FastAPI's 422: the document says what the server does.
        for item in document["paths"].values():
            for operation in item.values():
                operation["responses"].pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            document["components"]["schemas"].pop(name, None)
        api.openapi_schema = document
    return api.openapi_schema


def openapi_document(settings: Settings | None = None) -> dict[str, Any]:
    """The document as served (docs/api/openapi.json holds a copy; a test keeps them equal)."""
    document: dict[str, Any] = create_fastapi(settings or Settings(), []).openapi()
    return document


if __name__ == "__main__":
    # python -m stream.api.app > docs/api/openapi.json
    import sys

    from stream import jsonutil

    sys.stdout.buffer.write(jsonutil.dumps_pretty(openapi_document()))
