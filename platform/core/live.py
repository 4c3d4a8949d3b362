"""Live pages, pushed: one LISTEN connection per web process (per event loop) fans the database's
announcements out to the pages' server-sent-event streams.

Triggers ``NOTIFY oms_live`` at commit (never for a rolled-back transaction) with a JSON payload:
``{"t": company, "k": kind, "o": [order ids], "l": [location codes], "i": [row ids]}``, where an
absent (or null) list means "any". A stream says which announcements concern its page
(``Interest``) and sends an event when one arrives: an open page with nothing changing costs no
database query, only a keep-alive comment now and then, so that a client gone away is noticed.

Bursts are coalesced (one event per ``SPACING_S`` per stream at most, the last change never
dropped). Streams are capped per user and per process: past a person's cap their oldest page is
told in plain words and stops; past the process's, the new page is told and not served. After a
lost connection the listener reconnects with backoff and then tells every stream that something
changed, since it may have missed announcements.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import json
import math
import socket
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from core.auth import Principal

log = structlog.get_logger(__name__)

CHANNEL = "oms_live"
# Fewer than the 6 connections a browser keeps per site over HTTP/1.1: a person's live pages, each
# holding one, never leave a new page without a connection to load on.
LIVE_PER_USER = 5
SPACING_S = 0.5  # at most one event per stream this often; the trailing change is kept
KEEPALIVE_S = 20.0  # a comment when nothing else was sent for this long
READY_WAIT_S = 5.0  # how long a new stream waits for the listener before going on without it
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 30.0
CONNECT_TIMEOUT_S = 10.0
LIMIT_RETRY_MS = 3_600_000  # a capped page's EventSource, if the page doesn't close it, waits an hour
APPLICATION_NAME = "oms-live"
KEEPALIVE_IDLE_S = 60  # the listener's TCP keep-alive probes begin after this long without traffic

# Past a person's cap, their oldest live page gives way: the page they open is the one they look at,
# and a page left on a device that went to sleep (its connection dead, not yet noticed) holds no place.
PER_USER_MESSAGE = (f"Live updates stopped on this page: you opened more than {LIVE_PER_USER} live pages. "
                    "Reload this page to follow changes here again.")
PER_PROCESS_MESSAGE = ("Live updates are off on this page: the server has as many live pages open as it can serve. "
                       "Reload this page in a few minutes.")


@dataclass(frozen=True)
class Interest:
    """What a live page wants to hear of: its company's changes of these kinds, narrowed to one
    order, to some locations (a store associate's; orders only) or to some rows (other kinds)."""

    tenant_id: uuid.UUID
    kinds: frozenset[str]  # e.g. {"orders", "tasks"}
    order_id: uuid.UUID | None = None  # only this order's changes (kind orders)
    locations: frozenset[str] | None = None  # these locations' (kind orders); None: every location
    ids: frozenset[str] | None = None  # only these rows (other kinds, e.g. a feed's id)

    def hears(self, note: Note) -> bool:
        if note.tenant_id != self.tenant_id or note.kind not in self.kinds:
            return False
        if note.kind == "orders":
            if self.order_id is not None and note.orders is not None and self.order_id not in note.orders:
                return False
            return self.locations is None or note.locations is None or not self.locations.isdisjoint(note.locations)
        return self.ids is None or note.ids is None or not self.ids.isdisjoint(note.ids)


@dataclass(frozen=True)
class Note:
    """One announcement; ``None``: any order, location or row."""

    tenant_id: uuid.UUID
    kind: str
    orders: frozenset[uuid.UUID] | None = None
    locations: frozenset[str] | None = None
    ids: frozenset[str] | None = None


def _strings(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("not a list of strings")
    return frozenset(value)


def parse(payload: str) -> Note | None:
    """The announcement in a payload, or None when it isn't one (logged, never raised)."""
    try:
        data = json.loads(payload)
        if not isinstance(data, dict) or not isinstance(data.get("t"), str) or not isinstance(data.get("k"), str):
            raise ValueError("no company or kind")
        orders = _strings(data.get("o"))
        return Note(tenant_id=uuid.UUID(data["t"]), kind=data["k"],
                    orders=None if orders is None else frozenset(uuid.UUID(o) for o in orders),
                    locations=_strings(data.get("l")), ids=_strings(data.get("i")))
    except ValueError as exc:  # json.JSONDecodeError and a bad uuid are ValueErrors
        log.debug("live.payload_ignored", payload=payload[:200], error=str(exc))
        return None


class Subscription:
    """One open stream's mailbox: the kinds announced since it last looked."""

    def __init__(self, who: str, interest: Interest) -> None:
        self.who = who
        self.interest = interest
        self.kinds: set[str] = set()
        self.ended: str | None = None  # why the hub ended it (a newer page of the same person)
        self._wake = asyncio.Event()

    def poke(self, kinds: set[str] | frozenset[str]) -> None:
        self.kinds.update(kinds)
        self._wake.set()

    async def announced(self) -> None:
        """Returns once something was announced (at once if it already was)."""
        await self._wake.wait()

    def take(self) -> frozenset[str]:
        kinds = frozenset(self.kinds)
        self.kinds.clear()
        self._wake.clear()
        return kinds


class Hub:
    """The event loop's listener and its subscriptions, by company. The connection is opened at
    the first subscription and kept (reopened when lost) until ``close``."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], per_process: int) -> None:
        self._connect = connect
        self.per_process = per_process
        self._by_tenant: dict[uuid.UUID, set[Subscription]] = {}
        self._per_user: dict[str, list[Subscription]] = {}  # oldest first
        self.open = 0
        self.listening = asyncio.Event()
        self.connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    def join(self, who: str, interest: Interest) -> Subscription | str:
        """A subscription, or the plain-words reason there is none (the process's cap is reached).
        At the person's cap, their oldest subscription is ended to make room."""
        theirs = self._per_user.get(who, [])
        if len(theirs) >= LIVE_PER_USER:
            oldest = theirs[0]
            self.leave(oldest)
            oldest.ended = PER_USER_MESSAGE
            oldest.poke(frozenset())
        if self.open >= self.per_process:
            return PER_PROCESS_MESSAGE
        subscription = Subscription(who, interest)
        self._by_tenant.setdefault(interest.tenant_id, set()).add(subscription)
        self._per_user.setdefault(who, []).append(subscription)
        self.open += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen_forever(), name="live-listener")
        return subscription

    def leave(self, subscription: Subscription) -> None:
        subscriptions = self._by_tenant.get(subscription.interest.tenant_id)
        if subscriptions is None or subscription not in subscriptions:
            return
        subscriptions.discard(subscription)
        if not subscriptions:
            del self._by_tenant[subscription.interest.tenant_id]
        theirs = self._per_user[subscription.who]
        theirs.remove(subscription)
        if not theirs:
            del self._per_user[subscription.who]
        self.open -= 1

    async def ready(self) -> bool:
        """Whether the listener is listening, waiting for it a few seconds at most."""
        try:
            async with asyncio.timeout(READY_WAIT_S):
                await self.listening.wait()
        except TimeoutError:
            return False
        return True

    def deliver(self, payload: str) -> None:
        note = parse(payload)
        if note is None:
            return
        for subscription in self._by_tenant.get(note.tenant_id, ()):
            if subscription.interest.hears(note):
                subscription.poke({note.kind})

    def _on_notification(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self.deliver(payload)

    def _wake_everyone(self) -> None:
        for subscriptions in self._by_tenant.values():
            for subscription in subscriptions:
                subscription.poke(subscription.interest.kinds)

    async def _listen_forever(self) -> None:
        delay, missed = BACKOFF_FIRST_S, False
        while True:
            lost = asyncio.Event()
            try:
                connection = await self._connect()
            except Exception as exc:  # refused, a password, a server starting up: try again later
                log.warning("live.connect_failed", error=repr(exc), retry_in_s=delay)
                missed = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            try:
                connection.add_termination_listener(functools.partial(_set, lost))
                await connection.add_listener(CHANNEL, self._on_notification)
            except Exception as exc:
                log.warning("live.listen_failed", error=repr(exc), retry_in_s=delay)
                connection.terminate()
                missed = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            _keep_alive(connection)
            self.connection = connection
            self.listening.set()
            delay = BACKOFF_FIRST_S
            if missed:
                log.info("live.listening_again", streams=self.open)
                self._wake_everyone()
            await lost.wait()
            self.listening.clear()
            self.connection = None
            missed = True
            log.warning("live.connection_lost", streams=self.open)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        connection, self.connection = self.connection, None
        self.listening.clear()
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=2)
            except Exception:  # closing anyway
                connection.terminate()


def _set(event: asyncio.Event, _connection: Any) -> None:
    event.set()


def _keep_alive(connection: asyncpg.Connection) -> None:
    """TCP keep-alives on the listener's socket: a connection silently dropped on the way (a NAT's or
    a load balancer's idle timeout) is then noticed within a couple of minutes, without a query."""
    transport = getattr(connection, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE_S), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


async def _connect() -> asyncpg.Connection:
    """A connection of its own to the app role (not one of the pool's: it stays open for good)."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    from core.settings import get_settings

    _args, params = dialect().create_connect_args(get_settings().app_url)  # type: ignore[no-untyped-call]
    connection: asyncpg.Connection = await asyncpg.connect(
        **params, timeout=CONNECT_TIMEOUT_S, server_settings={"application_name": APPLICATION_NAME})
    return connection


def get_hub() -> Hub:
    """The running event loop's hub (asyncpg connections belong to the loop that opened them)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        from core.settings import get_settings

        hub = Hub(_connect, get_settings().live_per_process)
        _hubs[loop] = hub
    return hub


async def close_hub() -> None:
    hub = _hubs.pop(asyncio.get_running_loop(), None)
    if hub is not None:
        await hub.close()


@dataclass(frozen=True)
class Update:
    """What a stream's check found: ``data`` to send as its event (None: nothing to send), and
    whether the stream is over."""

    data: str | None = None
    done: bool = False


Check = Callable[[], Awaitable[Update]]


def who(principal: Principal) -> str:
    """Whose streams count together against the per-user cap."""
    if principal.user_id is not None:
        return f"user:{principal.user_id}"
    if principal.api_key_id is not None:
        return f"key:{principal.api_key_id}"
    return f"company:{principal.tenant_id}"


def stream(principal: Principal, interest: Interest, *, event: str = "changed",
           check: Check | None = None, spacing: float = SPACING_S) -> ServerSentEvent:
    """The server-sent-event response of a live page: an ``event`` (data: the kinds announced,
    comma-separated) when a matching change is committed, a keep-alive comment now and then.

    With ``check``, the page's own test instead: run once when the stream opens and after each
    announcement; it says what to send (if anything) and when the stream is over. ``spacing``: at
    most one event this often (a page that is dear to render asks for a longer one)."""
    return ServerSentEvent(_events(principal, interest, event, check, spacing))


async def _events(principal: Principal, interest: Interest, event: str,
                  check: Check | None, spacing: float) -> AsyncIterator[ServerSentEventMessage]:
    hub = get_hub()
    joined = hub.join(who(principal), interest)
    if isinstance(joined, str):
        yield ServerSentEventMessage(event="limit", data=html.escape(joined), retry=LIMIT_RETRY_MS)
        return
    loop = asyncio.get_running_loop()
    try:
        await hub.ready()
        # Headers and this first line go out once the stream is listening.
        yield ServerSentEventMessage(data=None, comment="listening")
        if check is not None:
            update = await check()
            if update.data is not None:
                yield ServerSentEventMessage(event=event, data=update.data)
            if update.done:
                return
        sent = -math.inf
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    await joined.announced()
            except TimeoutError:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
                continue
            if joined.ended is not None:
                yield ServerSentEventMessage(event="limit", data=html.escape(joined.ended), retry=LIMIT_RETRY_MS)
                return
            pause = sent + spacing - loop.time()
            if pause > 0:  # what arrives meanwhile goes with this event
                await asyncio.sleep(pause)
            kinds = joined.take()
            sent = loop.time()
            if check is None:
                yield ServerSentEventMessage(event=event, data=",".join(sorted(kinds)))
                continue
            update = await check()
            if update.data is not None:
                yield ServerSentEventMessage(event=event, data=update.data)
            if update.done:
                return
    finally:
        hub.leave(joined)
