"""Webhooks: a company's events POSTed to its endpoints, signed, retried with backoff.

Domains call ``emit`` while they work; just before the transaction commits, the events
become one delivery row per subscribed endpoint plus an outbox message, so an event is sent
only if its transaction commits and is never lost if Redis is down.

Each request carries ``OMS-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
keyed with the endpoint's secret, and ``OMS-Event`` / ``OMS-Delivery`` headers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from asyncpg import Record
from sqlalchemy import bindparam, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from core import bulk, clock
from core.broker import actor
from core.db import PRE_COMMIT, Prepared, get_database
from core.ids import uuid7
from core.models import WebhookDelivery, WebhookEndpoint
from core.outbox import enqueue
from core.redrive import pending_work
from core.settings import get_settings

EVENTS = ("order.created", "order.routed", "order.on_hold", "order.backordered", "order.cancelled",
          "order.shipped", "order.delivered", "order.collected", "fulfilment.created", "fulfilment.shipped",
          "fulfilment.delivered", "fulfilment.ready_for_pickup", "fulfilment.collected", "fulfilment.rejected",
          "fulfilment.expired", "order.updated", "refund.created", "return.requested", "return.received",
          "return.inspected", "return.refunded", "return.closed", "return.cancelled")
MAX_ATTEMPTS = 8
TIMEOUT_S = 10.0
RETRY_AFTER = timedelta(seconds=5)
MAX_RETRY_AFTER = timedelta(hours=1)


class Undeliverable(Exception):
    """The endpoint answered with an error or could not be reached: Dramatiq retries with backoff."""


def emit(session: AsyncSession, tenant_id: uuid.UUID, event_type: str, data: dict[str, Any]) -> None:
    """Announce an event; it goes out only if the surrounding transaction commits."""
    session.info.setdefault("webhook_events", []).append((tenant_id, event_type, data))


async def stage(session: AsyncSession) -> None:
    """Turn the events announced so far into deliveries (done anyway before the commit; a
    transaction that must commit quickly after its last statement does it earlier)."""
    pending: list[tuple[uuid.UUID, str, dict[str, Any]]] = session.info.pop("webhook_events", [])
    if not pending:
        return
    endpoints: dict[uuid.UUID, list[Record]] = {}
    for tenant_id, event_type, data in pending:
        if tenant_id not in endpoints:
            endpoints[tenant_id] = await _ACTIVE_ENDPOINTS.fetch(session, tenant=tenant_id)
        event_id = uuid7()
        payload = {"id": str(event_id), "type": event_type, "created_at": clock.now().isoformat(), "data": data}
        for endpoint in endpoints[tenant_id]:
            if endpoint["events"] and event_type not in endpoint["events"]:
                continue
            delivery = {"tenant_id": tenant_id, "id": uuid7(), "endpoint_id": endpoint["id"], "event_id": event_id,
                        "event_type": event_type, "payload": payload, "status": "pending", "attempts": 0,
                        "next_attempt_at": clock.now()}
            bulk.defer(session, WebhookDelivery, delivery)
            enqueue(session, deliver, tenant_id=tenant_id, delivery_id=str(delivery["id"]))


_ACTIVE_ENDPOINTS = Prepared(select(WebhookEndpoint.id, WebhookEndpoint.events).where(
    WebhookEndpoint.tenant_id == bindparam("tenant"), WebhookEndpoint.active.is_(True)))


PRE_COMMIT.append(stage)


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    """Events of a transaction that rolled back (or was committed) are never staged in the next."""
    if transaction.parent is None:
        session.info.pop("webhook_events", None)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# IPv6 ranges that reach IPv4 (NAT64, 6to4, Teredo) or are deprecated, which ``is_global``
# does not all exclude: a private IPv4 address can hide behind them.
_TUNNELS = tuple(ipaddress.ip_network(n) for n in (
    "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96", "fec0::/10"))


def _public(address: Address) -> bool:
    """Only the public internet: not private, loopback, link-local (169.254.169.254, a cloud's
    metadata), shared (100.64.0.0/10), reserved or multicast, nor an IPv4 address carried in
    IPv6 (mapped, NAT64, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif any(address in network for network in _TUNNELS):
            return False
    return address.is_global and not address.is_multicast


async def resolve(url: str) -> tuple[str | None, list[Address]]:
    """Why this URL can't receive webhooks (or None), and the addresses its name resolved to,
    without blocking the event loop. A name with any address inside a private network is
    refused, unless the platform allows them (local development, tests)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "Give a full http(s) URL, such as https://example.com/oms-webhooks.", []
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError):
        return f"{parts.hostname} does not resolve.", []
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    if not get_settings().webhooks_allow_private and not all(_public(a) for a in addresses):
        return f"{parts.hostname} is a private address: webhooks go to the public internet.", []
    return None, addresses


async def check_url(url: str) -> str | None:
    return (await resolve(url))[0]


def _pinned(url: str, address: Address) -> tuple[str, dict[str, str], dict[str, str]]:
    """The request to make to ``address`` itself (the one that was checked, so a name that
    resolves elsewhere the second time can't redirect it): the name as Host (an IPv6 literal in
    brackets, an international name in its ASCII form) and, over TLS, as the server name the
    certificate is checked against; credentials in the URL become a Basic authorization."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    netloc = (f"[{address}]" if address.version == 6 else str(address)) + port
    name = parts.hostname or ""
    try:
        literal: Address | None = ipaddress.ip_address(name)
    except ValueError:
        literal = None
    if literal is not None:
        host = f"[{literal}]" if literal.version == 6 else str(literal)
    else:
        host = name.encode("idna").decode("ascii")
    headers = {"Host": host + port}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
    extensions = {"sni_hostname": host} if parts.scheme == "https" and literal is None else {}
    return urlunsplit(parts._replace(netloc=netloc)), headers, extensions


async def _post(url: str, addresses: list[Address], body: bytes, headers: dict[str, str]) -> int:
    """POST to the first checked address that takes the connection; the endpoint's status."""
    failure: Exception | None = None
    for address in addresses:
        target, pinned, extensions = _pinned(url, address)
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as client:
                response = await client.post(target, content=body, headers={**headers, **pinned},
                                             extensions=extensions)
            return response.status_code
        except httpx.ConnectError as exc:  # that address is down: the next one may answer
            failure = exc
    assert failure is not None
    raise failure


@actor("webhooks.deliver", queue="webhooks", max_retries=MAX_ATTEMPTS - 1,
       min_backoff_ms=int(RETRY_AFTER.total_seconds() * 1000),
       max_backoff_ms=int(MAX_RETRY_AFTER.total_seconds() * 1000))
async def deliver(tenant_id: str, delivery_id: str) -> None:
    """POST one delivery. Delivered ones are not sent again; each attempt is recorded."""
    tenant = uuid.UUID(tenant_id)
    async with get_database().transaction(tenant_id=tenant) as session:
        delivery = await session.scalar(select(WebhookDelivery).where(
            WebhookDelivery.tenant_id == tenant, WebhookDelivery.id == uuid.UUID(delivery_id)))
        if delivery is None or delivery.status != "pending":
            return
        endpoint = await session.scalar(select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == tenant, WebhookEndpoint.id == delivery.endpoint_id))
        if endpoint is None or not endpoint.active:
            delivery.status, delivery.last_error = "failed", "endpoint removed or disabled"
            return
        url, secret, payload, event_type = endpoint.url, endpoint.secret, delivery.payload, delivery.event_type
    body = json.dumps(payload, separators=(",", ":")).encode()
    status, error = None, None
    problem, addresses = await resolve(url)
    if problem:
        error = problem
    else:
        headers = {"Content-Type": "application/json", "User-Agent": "OMS-Webhooks/1",
                   "OMS-Event": event_type, "OMS-Delivery": delivery_id,
                   "OMS-Signature": sign(secret, int(time.time()), body)}
        try:
            status = await _post(url, addresses, body, headers)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (httpx.HTTPError, UnicodeError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    async with get_database().transaction(tenant_id=tenant) as session:
        delivery = await session.scalar(select(WebhookDelivery).where(
            WebhookDelivery.tenant_id == tenant, WebhookDelivery.id == uuid.UUID(delivery_id)).with_for_update())
        if delivery is None or delivery.status != "pending":
            return
        delivery.attempts += 1
        delivery.last_attempt_at = clock.now()
        delivery.last_status_code = status
        delivery.last_error = error
        if error is None:
            delivery.status, delivery.delivered_at = "delivered", clock.now()
            return
        if delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = "failed"
        else:  # Dramatiq retries after at most this: its backoff, doubled at most by its jitter
            delivery.next_attempt_at = clock.now() + min(2 * RETRY_AFTER * 2 ** (delivery.attempts - 1),
                                                         MAX_RETRY_AFTER)
    raise Undeliverable(f"{event_type} to endpoint: {error}")


@pending_work("webhooks.deliver", "Webhook deliveries due", table=WebhookDelivery.__table__,
              pending=WebhookDelivery.status == "pending", since=WebhookDelivery.next_attempt_at,
              threshold=timedelta(minutes=2))
async def _deliver_again(session: AsyncSession, tenant_id: uuid.UUID, delivery_ids: list[uuid.UUID]) -> None:
    for delivery_id in delivery_ids:
        enqueue(session, deliver, tenant_id=tenant_id, delivery_id=str(delivery_id))
