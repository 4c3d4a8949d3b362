"""Outgoing mail through one interface.

Code that sends mail calls ``queue_mail``: a ``mail_messages`` row (the tenant's mail log)
and an outbox message in the caller's transaction. The ``mail.send`` actor delivers it
through the configured transport: by default the log itself (plus a log line with the
text, so links work on a fresh machine), or SMTP when ``SMTP_URL`` is set.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import uuid
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk
from core.auth import Principal
from core.ids import uuid7
from core.models import MailMessage
from core.settings import get_settings

log = structlog.get_logger(__name__)


class Transport(Protocol):
    name: str

    async def deliver(self, message: MailMessage) -> None: ...


class LogTransport:
    """Delivery is the mail log entry itself; the text also goes to the process log."""

    name = "log"

    async def deliver(self, message: MailMessage) -> None:
        log.info("mail.delivered", to=message.to_address, subject=message.subject, body=message.body_text)


class SmtpTransport:
    name = "smtp"

    def __init__(self, url: str, sender: str) -> None:
        self.url = urlparse(url)
        self.sender = sender

    def _send(self, message: MailMessage) -> None:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.to_address
        email["Subject"] = message.subject
        email["Message-ID"] = f"<{message.id}@oms>"
        email.set_content(message.body_text)
        port = self.url.port or (465 if self.url.scheme == "smtps" else 25)
        smtp_class = smtplib.SMTP_SSL if self.url.scheme == "smtps" else smtplib.SMTP
        with smtp_class(self.url.hostname or "localhost", port, timeout=30) as smtp:
            if self.url.scheme == "smtp+starttls":
                smtp.starttls()
            if self.url.username:
                smtp.login(unquote(self.url.username), unquote(self.url.password or ""))
            smtp.send_message(email)

    async def deliver(self, message: MailMessage) -> None:
        await asyncio.to_thread(self._send, message)


def transport() -> Transport:
    settings = get_settings()
    if settings.smtp_url:
        return SmtpTransport(settings.smtp_url, settings.mail_from)
    return LogTransport()


async def queue_mail(
    session: AsyncSession, *, tenant_id: uuid.UUID, to: str, subject: str, body: str, kind: str,
    sent_by: uuid.UUID | None = None, meta: dict[str, Any] | None = None,
) -> MailMessage:
    """``sent_by`` and ``meta`` say who may read the mail's links in the log (``body_for_log``)."""
    from core.outbox import enqueue
    from core.tasks import send_mail

    row = {"tenant_id": tenant_id, "id": uuid7(), "to_address": to, "subject": subject, "body_text": body,
           "kind": kind, "sent_by": sent_by, "meta": meta or {}}
    bulk.defer(session, MailMessage, row)  # one INSERT for all of a transaction's mails
    enqueue(session, send_mail, tenant_id=tenant_id, message_id=str(row["id"]))
    return bulk.detached(MailMessage, row)


_RESET_LINK = re.compile(r"https?://\S+/reset-password/\S+")
_INVITATION_LINK = re.compile(r"https?://\S+/invitations/\S+")


def body_for_log(message: MailMessage, viewer: Principal) -> str:
    """The text the company's mail log shows ``viewer``. A password-reset link is for its
    recipient only, never for the company's admins. Without SMTP the log is how an invitation is
    handed over, so its link shows, but only to who sent it and to owners: an admin reading
    the link that makes someone else owner would take that role."""
    text = _RESET_LINK.sub("[reset link: sent to the recipient only]", message.body_text)
    invited = (message.meta or {}).get("role")
    shown = not get_settings().smtp_url and (
        viewer.role == "owner" or (viewer.user_id is not None and viewer.user_id == message.sent_by
                                   and invited != "owner"))
    if not shown:
        text = _INVITATION_LINK.sub("[invitation link: sent to the recipient only]", text)
    return text
