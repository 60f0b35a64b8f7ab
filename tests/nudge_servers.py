"""Real servers on loopback for the nudge tests: an SMTP server (aiosmtpd) that requires
STARTTLS and AUTH with a self-signed certificate made by openssl, and an HTTP server that
receives webhooks. Either can hold a message before answering, so a test can SIGKILL the
sender between the hand-over and the answer."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.support import free_port

SMTP_USER = "nudger"
SMTP_PASSWORD = "s3cret-smtp-pass"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, made by openssl."""
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class Held:
    """Messages to a recipient (or for a person) wait for ``release`` before the answer."""

    match: str
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler:
    def __init__(self, inbox: SmtpInbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        import asyncio

        mail = message_from_bytes(envelope.original_content or b"")
        self.inbox.received(envelope.rcpt_tos, mail, session.ssl is not None)
        hold = self.inbox.hold
        if hold is not None and hold.match in envelope.rcpt_tos:
            hold.arrived.set()
            await asyncio.to_thread(hold.release.wait, 30)
        return "250 OK"


def _authenticate(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok)


class SmtpInbox:
    """A running SMTP server and what it received: (recipients, message, over TLS)."""

    def __init__(self, folder: Path) -> None:
        self.cafile, key = self_signed(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cafile, key)
        self.port = free_port()
        self.messages: list[tuple[list[str], Message, bool]] = []
        self.hold: Held | None = None
        self._lock = threading.Lock()
        self.controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
            authenticator=_authenticate,
            auth_required=True,
            auth_require_tls=True,
        )

    def received(self, rcpts: list[str], mail: Message, tls: bool) -> None:
        with self._lock:
            self.messages.append((list(rcpts), mail, tls))

    def to(self, address: str) -> list[Message]:
        """The messages one address received."""
        with self._lock:
            return [m for rcpts, m, _ in self.messages if address in rcpts]

    def __enter__(self) -> SmtpInbox:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.release.set()
        self.controller.stop()


class WebhookInbox:
    """A running HTTP server and the webhooks it received: (headers, JSON body)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.hold: Held | None = None
        self.fail_next = 0
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if inbox.fail_next > 0:
                    inbox.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                inbox.requests.append((headers, body))
                hold = inbox.hold
                if hold is not None and body.get("person") == hold.match:
                    hold.arrived.set()
                    hold.release.wait(30)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def about(self, person: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """The webhooks about one person."""
        return [r for r in self.requests if r[1].get("person") == person]

    def __enter__(self) -> WebhookInbox:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.release.set()
        self.server.shutdown()
        self.server.server_close()


def servers(folder: Path) -> Iterator[tuple[SmtpInbox, WebhookInbox]]:
    """Both servers, started, and stopped afterwards."""
    with SmtpInbox(folder) as smtp, WebhookInbox() as hooks:
        yield smtp, hooks
