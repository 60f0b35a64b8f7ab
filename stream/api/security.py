"""The bearer-token check in front of each route, and the OpenAPI scheme that declares it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stream.api.auth import SCOPES, Token, find_token
from stream.api.errors import ApiError

SCHEME_NAME: Final = "bearer"
#: What the access log records as the caller when no tokens are configured (loopback only).
OPEN_CALLER: Final = "-loopback-no-tokens-"
_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="esn-pulse"'}


class Guard:
    """Checks a request's bearer token against the configured ones and the route's scope.

    With no token configured every request passes (the API then listens on loopback only; the
    command refuses any other interface).
    """

    scheme_name = SCHEME_NAME

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.bearer = HTTPBearer(
            auto_error=False,
            scheme_name=SCHEME_NAME,
            description="Authorization: Bearer <secret>; each route names the scope it needs "
            "(x-scope): aggregate or people.",
        )

    @property
    def open(self) -> bool:
        """True when no token is configured."""
        return not self.tokens

    def require(self, scope: str) -> Callable[..., Awaitable[str]]:
        """A dependency admitting tokens that hold ``scope``; it returns the token's name."""
        bearer = self.bearer

        # Security(..., scopes=) puts {"bearer": [scope]} in the route's OpenAPI security.
        async def check(
            request: Request,
            credentials: HTTPAuthorizationCredentials | None = Security(bearer, scopes=[scope]),  # noqa: B008
        ) -> str:
            name, scopes = self._admit(credentials, scope)
            # Read by the access log (stream.api.access) once the answer is sent, and by routes
            # that name people only to a people-scope token (/content/top's profiles).
            request.state.api_token = name
            request.state.api_scopes = scopes
            return name

        return check

    def _admit(
        self, credentials: HTTPAuthorizationCredentials | None, scope: str
    ) -> tuple[str, frozenset[str]]:
        if self.open:
            return OPEN_CALLER, frozenset(SCOPES)
        if credentials is None or not credentials.credentials:
            raise ApiError(401, "a bearer token is required (Authorization: Bearer ...)",
                           headers=_CHALLENGE)  # fmt: skip
        token = find_token(self.tokens, credentials.credentials)
        if token is None:
            raise ApiError(401, "the bearer token is not known", headers=_CHALLENGE)
        if scope not in token.scopes:
            raise ApiError(403, f"token {token.name!r} lacks the {scope!r} scope")
        return token.name, token.scopes
