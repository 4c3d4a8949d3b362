"""The unsubscribe link of campaign mails, and its public page.

The link carries a token: the company's and the customer's ids and an HMAC of both under the
app's secret key, so it can't be made for anyone else and names the company whose scope the page
opens (there is no session). ``GET /unsubscribe/{token}`` only shows a confirm button: mail
scanners fetch the links of a mail, and that must not unsubscribe anyone. The ``POST`` does it
(``customers.service.unsubscribe``), honoured at once: a campaign being sent skips the customer
when their turn comes (``marketing.campaign_sending``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import set_scope
from core.deps import provide_db
from core.pages import client_ip, page
from core.problems import ProblemError
from core.settings import get_settings
from customers import service as customers
from tenants.service import Actor, audit, company_profile

_PURPOSE = b"oms.unsubscribe.v1:"
_MAC_BYTES = 16
TOKEN_LENGTH = 64  # 48 bytes in unpadded base64url


def _mac(tenant_id: uuid.UUID, customer_id: uuid.UUID) -> bytes:
    key = get_settings().secret_key.encode()
    return hmac.new(key, _PURPOSE + tenant_id.bytes + customer_id.bytes, hashlib.sha256).digest()[:_MAC_BYTES]


def token_for(tenant_id: uuid.UUID, customer_id: uuid.UUID) -> str:
    raw = tenant_id.bytes + customer_id.bytes + _mac(tenant_id, customer_id)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def verify(token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(company id, customer id) of a genuine token, else None."""
    if len(token) != TOKEN_LENGTH:
        return None
    try:  # strictly: a character outside the alphabet is refused, not skipped
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 32 + _MAC_BYTES:
        return None
    tenant_id, customer_id = uuid.UUID(bytes=raw[:16]), uuid.UUID(bytes=raw[16:32])
    if not hmac.compare_digest(raw[32:], _mac(tenant_id, customer_id)):
        return None
    return tenant_id, customer_id


def link_for(tenant_id: uuid.UUID, customer_id: uuid.UUID) -> str:
    base = get_settings().public_url.rstrip("/")
    return f"{base}/unsubscribe/{token_for(tenant_id, customer_id)}"


def _masked(email: str) -> str:
    """Enough of the address for its owner to know it is theirs (the link may be forwarded)."""
    user, _, domain = email.partition("@")
    return f"{user[:2]}{'•' * max(1, len(user) - 2)}@{domain}"


_GONE = ProblemError(404, "Link not valid",
                     "This unsubscribe link is not valid. Use the link of a recent mail, or reply to it.")


async def _opened(db: AsyncSession, token: str) -> tuple[uuid.UUID, customers.CustomerRecord, str]:
    """The company, customer and company name behind a token, in that company's scope."""
    found = verify(token)
    if found is None:
        raise _GONE
    tenant_id, customer_id = found
    await set_scope(db, tenant_id=tenant_id)
    try:
        record = await customers.get_customer(db, tenant_id, customer_id)
    except ProblemError:
        raise _GONE from None
    return tenant_id, record, (await company_profile(db, tenant_id)).name


class UnsubscribeController(Controller):
    path = "/unsubscribe"
    include_in_schema = False
    dependencies = {"db": Provide(provide_db)}

    @get("/{token:str}")
    async def confirm(self, request: Request[Any, Any, Any], db: AsyncSession, token: str) -> Template:
        _, record, company = await _opened(db, token)
        return page(request, "public/unsubscribe.html", token=token, company=company, email=_masked(record.email),
                    done=record.unsubscribed_at is not None)

    @post("/{token:str}")
    async def unsubscribe(self, request: Request[Any, Any, Any], db: AsyncSession, token: str) -> Template:
        tenant_id, record, company = await _opened(db, token)
        if record.unsubscribed_at is None:
            await customers.unsubscribe(db, tenant_id, record.id)
            await audit(db, tenant_id, Actor(label=record.email, ip=client_ip(request)), "customer.unsubscribed",
                        target=str(record.id), via="campaign link")
        return page(request, "public/unsubscribe.html", token=token, company=company, email=_masked(record.email),
                    done=True)


route_handlers: list[Any] = [UnsubscribeController]
