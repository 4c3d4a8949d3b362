"""Live pages, pushed (core.live): real HTTP streams from a real server (uvicorn, in this process so
that its database use can be counted), changes committed by a worker or through the service
functions, announced by the database at commit.

Where a page must hear nothing, a later announcement it does hear proves it: the database delivers
announcements in commit order and the listener hands each to every stream at once, so a stream
that had heard the earlier one would have sent it first."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from test_orders import act_ok, by_priority, capture, member, network, order_body, publish_rules, routed_order

from factories import PASSWORD, create_tenant, login
from inventory_factories import apply_feeds, send_feed
from workers import eventually, running_worker

DELIVERY_S = 1.0  # the promise: a committed change reaches an open page within a second
WAIT_S = 20.0  # generous: a worker starting, a first connection


@dataclass
class Event:
    name: str
    data: str
    at: float  # time.time() when it arrived


@dataclass
class Stream:
    """One server-sent-event stream, read in the background as a browser's EventSource would."""

    path: str
    status: int = 0
    retry: int | None = None
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def read(self, browser: httpx.AsyncClient) -> None:
        try:
            async with browser.stream("GET", self.path) as response:
                self.status = response.status_code
                if response.status_code != 200:
                    return
                name, data = "", []
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                        if line[1:].strip() == "listening":
                            self.opened.set()
                    elif line == "":
                        if name or data:
                            self.events.append(Event(name or "message", "\n".join(data), time.time()))
                            if name == "limit":
                                self.opened.set()
                        name, data = "", []
                    else:
                        key, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if key == "event":
                            name = value
                        elif key == "data":
                            data.append(value)
                        elif key == "retry":
                            self.retry = int(value)
        finally:
            self.opened.set()
            self.ended.set()

    async def next(self, after: int = 0, *, within: float = WAIT_S, name: str | None = None) -> Event:
        """The first event past the ``after`` first ones (named ``name``), waiting ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            found = [e for e in self.events[after:] if name is None or e.name == name]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.path}: no event within {within} s (had {self.events})")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class _Server:
    """uvicorn in this event loop, without taking the process's signals."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:
                yield

        self.server = Quiet(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None,
                                           access_log=False, timeout_graceful_shutdown=1))


@pytest.fixture(scope="module")
async def base_url(app: Any) -> AsyncIterator[str]:
    from core.embedded import free_port

    port = free_port()
    server = _Server(app, port).server
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert not task.done(), "the web server stopped at once"
        assert time.monotonic() < deadline, "the web server did not start"
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def open_stream(base_url: str) -> AsyncIterator[Callable[..., Awaitable[Stream]]]:
    """``open_stream(browser, path)``: a stream, once the server listens for it (or refused it)."""
    streams: list[Stream] = []

    async def open_one(browser: httpx.AsyncClient, path: str) -> Stream:
        stream = Stream(path)
        stream.task = asyncio.create_task(stream.read(browser))
        streams.append(stream)
        async with asyncio.timeout(WAIT_S):
            await stream.opened.wait()
        return stream

    yield open_one
    for stream in streams:
        await stream.close()


@pytest.fixture
async def browser(base_url: str) -> AsyncIterator[Callable[[str], Awaitable[httpx.AsyncClient]]]:
    """``browser(email)``: a client signed in over real HTTP, as a browser tab would be."""
    clients: list[httpx.AsyncClient] = []

    async def signed_in(email: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10, read=None),
                                   limits=httpx.Limits(max_connections=50))
        clients.append(client)
        await login(client, email, PASSWORD)
        return client

    yield signed_in
    for client in clients:
        await client.aclose()


def owner_of(tenant: Any) -> Any:
    from core.auth import Principal

    return Principal(tenant_id=tenant.tenant_id, role="owner", label=tenant.email, tenant_name=tenant.name,
                     timezone="Europe/Paris", currency="EUR", user_id=tenant.user_id)


async def add_note(tenant: Any, order_id: str, body: str) -> float:
    """A note on the order's timeline, committed through the service function from a connection
    of its own; returns the time the commit began."""
    from core.db import get_database
    from orders import amendments

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await amendments.add_note(session, owner_of(tenant), uuid.UUID(order_id), body)
        began = time.time()
    return began


async def announce(owner_engine: Any, tenant_id: uuid.UUID, kind: str) -> None:
    """A marker announcement of ``kind`` for the company, committed now."""
    await announce_raw(owner_engine, f'{{"t": "{tenant_id}", "k": "{kind}"}}')


async def announce_raw(owner_engine: Any, payload: str) -> None:
    async with owner_engine.begin() as conn:
        await conn.execute(text("SELECT pg_notify('oms_live', CAST(:p AS text))"), {"p": payload})


async def last_event_at(owner_engine: Any, tenant_id: uuid.UUID, order_id: str) -> datetime:
    async with owner_engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        return (await conn.execute(text("SELECT max(created_at) FROM order_events WHERE tenant_id = :t "
                                        "AND order_id = :o"), {"t": tenant_id, "o": uuid.UUID(order_id)})).scalar_one()


async def order_status(client: httpx.AsyncClient, key: str, order_id: str) -> str:
    from factories import bearer

    response = await client.get(f"/api/v1/orders/{order_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


# --- delivery, companies, rollbacks -----------------------------------------------------------------------------


async def test_a_change_a_worker_commits_reaches_the_open_pages_within_a_second_and_no_other_company(
        client, browser, open_stream, owner_engine) -> None:
    a, b = await create_tenant(), await create_tenant()
    c = await network(client, a.api_key)
    await publish_rules(client, a.api_key, by_priority())
    alice, bob = await browser(a.email), await browser(b.email)
    orders_a = await open_stream(alice, "/app/orders/live")
    usage_a = await open_stream(alice, "/app/billing/usage/live")
    tasks_b = await open_stream(bob, "/app/service-tasks/live")
    orders_b = await open_stream(bob, "/app/orders/live")
    assert [s.status for s in (orders_a, usage_a, tasks_b, orders_b)] == [200] * 4

    # Taken by the web (in this process); routed later by a real worker, in its own thread and loop.
    order = await capture(client, a.api_key, order_body((c["sku"], 1, 2500)))
    taken = await orders_a.next()
    assert taken.data == "orders"
    assert await order_status(client, a.api_key, order["id"]) == "received"

    seen = len(orders_a.events)
    async with running_worker():
        await eventually(lambda: _routed(client, a.api_key, order["id"]), timeout=WAIT_S, what="the order routed")
        # The routing's last timeline entry was written before its transaction committed: the page
        # hears of it within a second of that (an event before it is of an earlier transaction).
        written = (await last_event_at(owner_engine, a.tenant_id, order["id"])).timestamp()
        await eventually(lambda: _heard_since(orders_a, seen, written), timeout=written + DELIVERY_S - time.time(),
                         what="the routing announced within a second")
        assert (await usage_a.next()).data == "usage"  # the routed order is metered: the billing panel hears

    # Company B heard none of it: its first event is the marker announced after all of A's.
    await announce(owner_engine, b.tenant_id, "tasks")
    assert [e.data for e in [await tasks_b.next()]] == ["tasks"]
    assert tasks_b.events[1:] == [] and orders_b.events == []


async def _heard_since(stream: Stream, seen: int, moment: float) -> bool:
    return any(e.at >= moment for e in stream.events[seen:])


async def _routed(client: httpx.AsyncClient, key: str, order_id: str) -> bool:
    return await order_status(client, key, order_id) != "received"


async def test_a_rolled_back_change_is_never_announced(client, browser, open_stream, owner_engine) -> None:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key)
    order = await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500)))
    tasks = await open_stream(await browser(tenant.email), "/app/service-tasks/live")
    began = await add_note(tenant, order["id"], "Committed")
    heard = await tasks.next()
    assert heard.data == "orders" and heard.at - began < DELIVERY_S

    from core.db import get_database
    from orders import amendments

    with pytest.raises(RuntimeError):
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            await amendments.add_note(session, owner_of(tenant), uuid.UUID(order["id"]), "Never happened")
            raise RuntimeError("the work failed")
    for garbage in ("not json", "[1]", '{"t": "nobody", "k": "orders"}', f'{{"t": "{tenant.tenant_id}", "k": 7}}',
                    f'{{"t": "{tenant.tenant_id}", "k": "orders", "o": [3]}}'):
        await announce_raw(owner_engine, garbage)  # ignored, and the listener goes on
    await announce(owner_engine, tenant.tenant_id, "tasks")
    assert (await tasks.next(1)).data == "tasks"  # not "orders", nor "orders,tasks"


def test_what_a_page_hears() -> None:
    from core.live import Interest, parse

    company, order, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def note(**fields: Any) -> Any:
        import json

        return parse(json.dumps({"t": str(company), **fields}))

    everything = Interest(company, frozenset({"orders"}))
    page = Interest(company, frozenset({"orders"}), order_id=order)
    store = Interest(company, frozenset({"orders"}), locations=frozenset({"ST1"}))
    feed = Interest(company, frozenset({"feeds"}), ids=frozenset({"f1"}))
    assert everything.hears(note(k="orders", o=[str(other)], l=["WH"]))
    assert not Interest(uuid.uuid4(), frozenset({"orders"})).hears(note(k="orders"))
    assert not everything.hears(note(k="tasks"))
    assert page.hears(note(k="orders", o=[str(order), str(other)])) and page.hears(note(k="orders"))
    assert not page.hears(note(k="orders", o=[str(other)]))
    assert store.hears(note(k="orders", o=[str(order)], l=["ST1", "WH"])) and store.hears(note(k="orders", o=None))
    assert not store.hears(note(k="orders", o=[str(order)], l=["WH"])) and not store.hears(note(k="orders", l=[]))
    assert feed.hears(note(k="feeds", i=["f1", "f2"])) and feed.hears(note(k="feeds"))
    assert not feed.hears(note(k="feeds", i=["f2"]))
    assert [parse(p) for p in ("", "null", '{"k": "orders"}', f'{{"t": "{company}", "k": "orders", "l": "WH"}}')] == \
        [None] * 4


# --- narrowed pages -------------------------------------------------------------------------------------------


async def test_an_order_page_hears_its_order_and_not_another_of_the_company(client, browser, open_stream) -> None:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key)
    first = await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500)))
    second = await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500)))
    owner = await browser(tenant.email)
    everything = await open_stream(owner, "/app/orders/live")
    page = await open_stream(owner, f"/app/orders/{first['id']}/live")

    await add_note(tenant, second["id"], "About the other order")
    await everything.next()  # announced, and handed to every stream of the company
    began = await add_note(tenant, first["id"], "About this order")
    heard = await page.next()
    assert began < heard.at < began + DELIVERY_S
    assert len(page.events) == 1


async def test_a_store_associate_hears_their_location_and_not_another(client, browser, open_stream) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 10}, "sku2": {"wh2": 10}})
    await publish_rules(client, key, by_priority())
    here = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    there = await routed_order(client, tenant, order_body((c["sku2"], 1, 4000)))
    [mine], [theirs] = here["fulfilments"], there["fulfilments"]
    assert (mine["location"], theirs["location"]) == (c["wh"], c["wh2"])

    everything = await open_stream(await browser(tenant.email), "/app/orders/live")
    associate = await browser(await member(tenant.tenant_id, "store_associate", [c["wh"]]))
    queue = await open_stream(associate, f"/app/fulfilments/live?location={c['wh']}")
    orders = await open_stream(associate, "/app/orders/live")
    elsewhere = await open_stream(associate, f"/app/fulfilments/live?location={c['wh2']}")
    assert (queue.status, orders.status, elsewhere.status) == (200, 200, 404)

    await act_ok(client, key, theirs["id"], "accept")
    await everything.next()
    began = time.time()
    await act_ok(client, key, mine["id"], "accept")
    for stream in (queue, orders):
        heard = await stream.next()
        assert began < heard.at < began + DELIVERY_S
        assert len(stream.events) == 1


async def test_a_feed_page_hears_its_feed_applied_and_the_stream_ends(client, browser, open_stream) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    sent = await send_feed(client, key, "live-1", "delta", [(c["sku"], c["wh"], 5)])
    assert sent.status_code == 202, sent.text
    feed = sent.json()
    stream = await open_stream(await browser(tenant.email), f"/app/inventory/feeds/{feed['id']}/events?since=accepted")
    assert stream.events == []  # as the page shows it
    await apply_feeds(tenant.tenant_id)
    async with asyncio.timeout(WAIT_S):
        await stream.ended.wait()  # done: the stream ends
    # Each status it took, as it took it (applying may come and go within one event).
    assert [e.name for e in stream.events] in (["status"], ["status", "status"])
    assert [e.data for e in stream.events] in (["applied"], ["applying", "applied"])


# --- caps ---------------------------------------------------------------------------------------------------------


async def test_one_live_page_too_many_of_one_person_ends_their_oldest_which_is_told_why(
        browser, open_stream, monkeypatch, owner_engine) -> None:
    from core import live

    tenant = await create_tenant()
    owner = await browser(tenant.email)
    eight = [await open_stream(owner, "/app/orders/live") for _ in range(live.LIVE_PER_USER)]
    assert all(s.status == 200 and s.events == [] for s in eight)

    # The page just opened is the one looked at: it is served, and the oldest page gives way (a tablet
    # that slept may hold dead connections the server has not noticed yet).
    ninth = await open_stream(owner, "/app/orders/live")
    assert ninth.status == 200 and ninth.events == []
    ended = await eight[0].next(name="limit")
    assert ended.data == (f"Live updates stopped on this page: you opened more than {live.LIVE_PER_USER} live "
                          "pages. Reload this page to follow changes here again.")
    assert eight[0].retry is not None and eight[0].retry >= 600_000  # a browser left alone doesn't come back soon
    async with asyncio.timeout(WAIT_S):
        await eight[0].ended.wait()
    assert all(s.events == [] for s in eight[1:])

    await announce(owner_engine, tenant.tenant_id, "orders")
    for stream in (ninth, *eight[1:]):  # every page still open hears changes
        assert (await stream.next(name="changed")).data == "orders"

    # The process's cap: another person, past it, is told so.
    monkeypatch.setattr(live.get_hub(), "per_process", live.get_hub().open)
    colleague = await browser(await member(tenant.tenant_id, "read_only"))
    [full] = (await open_stream(colleague, "/app/orders/live")).events
    assert full.name == "limit" and "the server has as many live pages open as it can serve" in full.data


# --- idle cost, lost connection ------------------------------------------------------------------------------------


async def test_open_pages_with_nothing_changing_cost_no_query(client, browser, open_stream, monkeypatch) -> None:
    from core import live
    from core.db import get_database

    monkeypatch.setattr(live, "KEEPALIVE_S", 0.2)  # keep-alives flow during the watch
    tenant = await create_tenant()
    c = await network(client, tenant.api_key)
    order = await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500)))
    people = [tenant.email, *[await member(tenant.tenant_id, "customer_service") for _ in range(2)]]
    streams = []
    for email in people:
        person = await browser(email)
        for n in range(live.LIVE_PER_USER):
            page = "/app/orders/live" if n % 2 else f"/app/orders/{order['id']}/live"
            streams.append(await open_stream(person, page))

    # What the server could ask the database: its pool's connections, checked out for any statement,
    # and the listener's own connection.
    statements: list[str] = []
    hub = live.get_hub()
    listener = hub.connection
    assert listener is not None

    def logged(record: Any) -> None:
        statements.append(record.query)

    listener.add_query_logger(logged)
    engine = get_database().engine.sync_engine
    checkouts: list[object] = []

    def checkout(*_: Any) -> None:
        checkouts.append(object())

    event.listen(engine, "checkout", checkout)
    try:
        comments = sum(len(s.comments) for s in streams)
        await asyncio.sleep(2.0)  # the watch: nothing changes
        assert (checkouts, statements) == ([], [])
        assert sum(len(s.comments) for s in streams) > comments  # keep-alives went out, for free
    finally:
        event.remove(engine, "checkout", checkout)
        listener.remove_query_logger(logged)
    assert all(s.events == [] for s in streams)

    await add_note(tenant, order["id"], "Everyone hears this")
    for stream in streams:
        assert (await stream.next()).data == "orders"


async def test_the_listener_survives_a_terminated_connection(client, browser, open_stream, owner_engine) -> None:
    from core import live

    tenant = await create_tenant()
    c = await network(client, tenant.api_key)
    order = await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500)))
    stream = await open_stream(await browser(tenant.email), "/app/orders/live")
    hub = live.get_hub()
    assert hub.connection is not None
    before = hub.connection.get_server_pid()
    async with owner_engine.begin() as conn:
        assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})).scalar_one()

    # Listening again, it tells the page something may have changed while it could not hear.
    assert (await stream.next()).data == "orders"
    assert hub.connection is not None and hub.connection.get_server_pid() != before
    began = await add_note(tenant, order["id"], "After the reconnection")
    heard = await stream.next(1)
    assert began < heard.at < began + DELIVERY_S
