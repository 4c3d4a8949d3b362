"""Outgoing mail through one interface.

Code that sends mail calls ``queue_mail``: a ``mail_messages`` row (the tenant's mail log)
and an outbox message in the caller's transaction. The ``mail.send`` actor delivers it
through the configured transport: by default the log itself (plus a log line with the
text, so links work on a fresh machine), or SMTP when ``SMTP_URL`` is set. A mail may carry an
HTML version besides its text: SMTP sends both as multipart/alternative.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
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

    def build(self, message: MailMessage) -> EmailMessage:
        """The message as it goes on the wire: its text, and its HTML as the alternative when it
        has one; from the platform's address, under the company's name when the mail gives one."""
        email = EmailMessage()
        email["From"] = self._from((message.meta or {}).get("from_name"))
        email["To"] = message.to_address
        email["Subject"] = " ".join(message.subject.split())  # a line break would end the header
        email["Message-ID"] = f"<{message.id}@oms>"
        unsubscribe = (message.meta or {}).get("list_unsubscribe")
        if isinstance(unsubscribe, str) and unsubscribe.startswith(("https://", "http://")) \
                and not any(c in unsubscribe for c in "<>\r\n "):
            # RFC 2369 and 8058: mail clients offer "unsubscribe", done with one POST to the link.
            email["List-Unsubscribe"] = f"<{unsubscribe}>"
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email.set_content(message.body_text)
        if message.body_html:
            email.add_alternative(message.body_html, subtype="html")
        return email

    def _from(self, name: str | None) -> str:
        if not name:
            return self.sender
        _, address = parseaddr(self.sender)
        if "@" not in address:
            return self.sender
        user, _, domain = address.rpartition("@")
        return str(Address(display_name=" ".join(str(name).split())[:100], username=user, domain=domain))

    def _send(self, message: MailMessage) -> None:
        email = self.build(message)
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
    sent_by: uuid.UUID | None = None, meta: dict[str, Any] | None = None, body_html: str | None = None,
    sender_name: str | None = None,
) -> MailMessage:
    """``sent_by`` and ``meta`` say who may read the mail's links in the log (``body_for_log``).
    ``body_html`` is the HTML alternative of ``body`` (which stays the whole message in text);
    ``sender_name`` the name the recipient sees it from (the company's, for its customers)."""
    from core.outbox import enqueue
    from core.tasks import send_mail

    meta = dict(meta or {})
    if sender_name:
        meta["from_name"] = sender_name
    subject = " ".join(subject.split())[:300]
    row = {"tenant_id": tenant_id, "id": uuid7(), "to_address": to, "subject": subject, "body_text": body,
           "body_html": body_html, "kind": kind, "sent_by": sent_by, "meta": meta}
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


def html_for_log(message: MailMessage, viewer: Principal) -> str | None:
    """The HTML version the log shows ``viewer``: none when the text had a link hidden from them
    (the HTML would carry it too). The page shows it in a sandboxed frame, never as its own."""
    if not message.body_html or body_for_log(message, viewer) != message.body_text:
        return None
    return message.body_html
