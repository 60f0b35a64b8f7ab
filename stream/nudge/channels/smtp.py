"""E-mail over SMTP (smtplib in a thread): STARTTLS before AUTH, a Message-ID derived from the
flag's event id, and the hand-over split at DATA, the one command after which the server may
hold the message."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from stream.nudge.channels import ChannelFailure, Outgoing, SendResult, scrub
from stream.nudge.settings import NudgeSettings


def build_email(message: Outgoing, sender: str, unsubscribe: str = "") -> EmailMessage:
    """The e-mail of a nudge (plain text, UTF-8), marked as automatic."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.address or ""
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message.message_id
    # Auto-replies (out of office) must not answer a machine (RFC 3834).
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-ESN-Nudge"] = f"{message.kind}; template={message.template}"
    if unsubscribe:
        mail["List-Unsubscribe"] = f"<{unsubscribe}>"
    mail.set_content(message.body)
    return mail


class _SmtpHandover:
    def __init__(self, client: smtplib.SMTP, mail: EmailMessage, password: str) -> None:
        self._client = client
        self._mail = mail
        self._password = password

    async def commit(self) -> SendResult:
        return await asyncio.to_thread(self._data)

    def _data(self) -> SendResult:
        try:
            code, reply = self._client.data(self._mail.as_bytes())
        except smtplib.SMTPDataError as exc:
            return _refused(exc.smtp_code, exc.smtp_error, self._password)
        except (smtplib.SMTPException, OSError) as exc:
            # Cut off after DATA began: the server may have queued it.
            return SendResult("uncertain", scrub(f"{type(exc).__name__}: {exc}", self._password))
        self._quit()
        if code == 250:
            return SendResult("sent")
        return _refused(code, reply, self._password)

    async def abort(self) -> None:
        await asyncio.to_thread(self._quit)

    def _quit(self) -> None:
        try:
            self._client.quit()
        except (smtplib.SMTPException, OSError):
            self._client.close()


def _refused(code: int, reply: bytes | str, password: str) -> SendResult:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    reason = scrub(f"SMTP {code} {text}", password)
    return SendResult("retry" if 400 <= code < 500 else "rejected", reason)


class SmtpChannel:
    """Opens an SMTP session per message (nudges are few; a session per message keeps a
    crash's damage to one message)."""

    def __init__(self, settings: NudgeSettings, unsubscribe: str = "") -> None:
        self.settings = settings
        self.unsubscribe = unsubscribe

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.settings.smtp_tls_cafile or None)
        return context

    async def open(self, message: Outgoing) -> _SmtpHandover:
        if not message.address:
            raise ChannelFailure("no address", permanent=True)
        return await asyncio.to_thread(self._open, message)

    def _open(self, message: Outgoing) -> _SmtpHandover:
        s = self.settings
        try:
            password = s.password()
        except OSError as exc:
            raise ChannelFailure(f"cannot read the SMTP password file: {exc.strerror}") from None
        try:
            client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelFailure(scrub(f"SMTP connect: {exc}", password)) from None
        try:
            client.ehlo()
            if s.smtp_starttls:
                client.starttls(context=self._tls())
                client.ehlo()
            if s.smtp_username:
                client.login(s.smtp_username, password)
            client.mail(s.smtp_from)
            code, reply = client.rcpt(message.address or "")
            if code not in (250, 251):
                failure = _refused(code, reply, password)
                raise ChannelFailure(failure.reason, permanent=failure.status == "rejected")
        except ChannelFailure:
            client.close()
            raise
        except smtplib.SMTPResponseException as exc:
            client.close()
            permanent = exc.smtp_code >= 500
            raise ChannelFailure(
                scrub(f"SMTP {exc.smtp_code} {exc.smtp_error!r}", password), permanent
            ) from None
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            client.close()
            raise ChannelFailure(scrub(f"SMTP {type(exc).__name__}: {exc}", password)) from None
        return _SmtpHandover(client, build_email(message, s.smtp_from, self.unsubscribe), password)
