"""``esn-pulse api``: serve /api/v1 from its own process (FastAPI on uvicorn), reading Redis only;
``esn-pulse api token`` makes a bearer token. Settings and scopes: docs/operations/api.md."""

from __future__ import annotations

import logging
import socket
import sys

import click

from stream.api.auth import (
    SCOPES,
    TokenConfigError,
    TokenFileUnreadable,
    entry_for,
    is_loopback,
    load_tokens,
    new_secret,
)
from stream.cli_errors import BadConfig, CliError
from stream.settings import Settings, get_settings

log = logging.getLogger("stream.api")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CliError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc})",
            "stop what holds the port or set ESN_API_PORT / ESN_API_HOST",
        ) from None
    return sock


def _configure_logging(settings: Settings) -> None:
    from stream.api.access import configure_access_log

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    for name in ("stream", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    try:
        configure_access_log(settings.api_access_log)
    except OSError as exc:
        raise BadConfig(
            f"ESN_API_ACCESS_LOG {settings.api_access_log}: cannot open ({exc.strerror or exc})",
            "point it at a writable file, or leave it empty for stderr",
        ) from None


def serve(settings: Settings) -> None:
    """Check the tokens and the interface, then serve until SIGTERM or Ctrl-C."""
    import uvicorn

    from stream.api.app import create_api

    try:
        tokens = load_tokens(settings)
    except TokenFileUnreadable as exc:
        raise BadConfig(str(exc), "point it at a readable file of token entries") from None
    except TokenConfigError as exc:
        raise BadConfig(f"API tokens: {exc}", "fix the entry (esn-pulse api token NAME)") from None
    host, port = settings.api_host, settings.api_port
    if not tokens and not is_loopback(host):
        raise BadConfig(
            f"ESN_API_HOST={host} is not loopback and no API token is configured",
            "set ESN_API_TOKENS_FILE (esn-pulse api token NAME makes an entry) or bind 127.0.0.1",
        )
    _configure_logging(settings)
    sock = _listen(host, port)
    if tokens:
        names = ", ".join(f"{t.name} ({','.join(sorted(t.scopes))})" for t in tokens)
        log.info(
            "Serving /api/v1 on http://%s:%d for %d tokens: %s", host, port, len(tokens), names
        )
    else:
        log.warning(
            "No API token configured: serving /api/v1 on http://%s:%d WITHOUT authentication, "
            "loopback only; configure ESN_API_TOKENS_FILE before exposing it",
            host,
            port,
        )
    config = uvicorn.Config(
        create_api(settings, tokens),
        log_config=None,
        # uvicorn's access log prints query strings, which may hold ids: ours logs templates.
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
        h11_max_incomplete_event_size=16 * 1024,
    )
    uvicorn.Server(config).run(sockets=[sock])


def register(main: click.Group) -> None:
    """Add ``api`` and ``api token`` to the ``esn-pulse`` group."""

    @main.group("api", invoke_without_command=True)
    @click.pass_context
    def api(ctx: click.Context) -> None:
        """Serve /api/v1 (ESN_API_HOST:ESN_API_PORT); see docs/operations/api.md."""
        if ctx.invoked_subcommand is None:
            serve(get_settings())

    @api.command("token")
    @click.argument("name")
    @click.option(
        "--scope",
        "scopes",
        type=click.Choice(SCOPES),
        multiple=True,
        required=True,
        help="aggregate and/or people (repeat for both).",
    )
    def token(name: str, scopes: tuple[str, ...]) -> None:
        """Make a token: print its secret once and the entry for ESN_API_TOKENS_FILE."""
        secret = new_secret()
        try:
            line = entry_for(name, sorted(set(scopes)), secret)
        except TokenConfigError:
            raise click.BadParameter(
                "1-64 letters, digits, '_', '.', '-' (starting with a letter or digit)",
                param_hint="'NAME'",
            ) from None
        click.echo(f"secret (shown once; give it to the client): {secret}")
        click.echo(f"entry (add this line to ESN_API_TOKENS_FILE): {line}")
