"""Outbox, relay, real workers on Redis, at-least-once delivery with effects once."""

from __future__ import annotations

import json
import uuid

import pytest
from dramatiq import Message
from sqlalchemy import func, select

from factories import create_tenant, run_outbox_inline
from workers import eventually, running_worker


async def queue_test_mail(tenant_id: uuid.UUID, to: str = "buyer@example.test") -> uuid.UUID:
    from core.db import get_database
    from core.mail import queue_mail

    async with get_database().transaction(tenant_id=tenant_id) as session:
        message = await queue_mail(session, tenant_id=tenant_id, to=to, subject="Hello", body="Hi", kind="test")
        return message.id


async def mail_status(tenant_id: uuid.UUID, message_id: uuid.UUID) -> str | None:
    from core.db import get_database
    from core.models import MailMessage

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return await session.scalar(select(MailMessage.status).where(MailMessage.id == message_id))


async def outbox_rows(tenant_id: uuid.UUID) -> list:
    from core.db import get_database
    from core.models import OutboxMessage

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return list(await session.scalars(select(OutboxMessage).where(OutboxMessage.tenant_id == tenant_id)))


class CountingTransport:
    name = "counting"

    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def deliver(self, message) -> None:
        self.delivered.append(str(message.id))


@pytest.fixture
def counting_transport(monkeypatch) -> CountingTransport:
    import core.tasks

    transport = CountingTransport()
    monkeypatch.setattr(core.tasks, "transport", lambda: transport)
    return transport


async def test_a_rolled_back_transaction_leaves_no_message() -> None:
    from core.db import get_database
    from core.mail import queue_mail

    tenant = await create_tenant()
    with pytest.raises(RuntimeError):
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            await queue_mail(session, tenant_id=tenant.tenant_id, to="x@example.test", subject="s", body="b",
                             kind="test")
            raise RuntimeError("the work failed")
    assert await outbox_rows(tenant.tenant_id) == []


async def test_committed_work_reaches_a_real_worker_through_redis(counting_transport) -> None:
    from core.broker import broker
    from core.db import get_database
    from core.outbox import relay_all

    tenant = await create_tenant()
    message_id = await queue_test_mail(tenant.tenant_id)
    assert await relay_all(get_database(), broker) >= 1
    [row] = await outbox_rows(tenant.tenant_id)
    assert row.sent_at is not None
    async with running_worker():
        await eventually(lambda: _is_sent(tenant.tenant_id, message_id), what="mail delivered by the worker")
    assert counting_transport.delivered.count(str(message_id)) == 1


async def _is_sent(tenant_id: uuid.UUID, message_id: uuid.UUID) -> bool:
    return await mail_status(tenant_id, message_id) == "sent"


async def test_the_same_message_delivered_twice_has_its_effect_once(counting_transport) -> None:
    from core.broker import COROUTINES, broker
    from core.tasks import send_mail

    tenant = await create_tenant()
    message_id = await queue_test_mail(tenant.tenant_id)
    kwargs = {"tenant_id": str(tenant.tenant_id), "message_id": str(message_id)}
    duplicate_id = str(uuid.uuid4())
    for _ in range(2):
        broker.enqueue(Message(queue_name=send_mail.queue_name, actor_name=send_mail.actor_name, args=(),
                               kwargs=kwargs, options={}, message_id=duplicate_id))
    async with running_worker(threads=2):
        await eventually(lambda: _is_sent(tenant.tenant_id, message_id), what="mail delivered")
        # and once more, called directly after a JSON round trip, as a redelivery would be
        await COROUTINES[send_mail.actor_name](**json.loads(json.dumps(kwargs)))
    assert counting_transport.delivered.count(str(message_id)) == 1


async def test_with_redis_down_messages_wait_in_the_outbox_and_go_out_when_it_returns(
    redis_server, counting_transport
) -> None:
    from core.broker import broker
    from core.db import get_database
    from core.outbox import relay_all

    tenant = await create_tenant()
    redis_server.stop()
    try:
        message_id = await queue_test_mail(tenant.tenant_id)  # the work itself commits without Redis
        assert await relay_all(get_database(), broker) == 0
        [row] = await outbox_rows(tenant.tenant_id)
        assert row.sent_at is None and row.attempts >= 1 and row.last_error
    finally:
        redis_server.restart()
    assert await relay_all(get_database(), broker) >= 1
    [row] = await outbox_rows(tenant.tenant_id)
    assert row.sent_at is not None
    async with running_worker():
        await eventually(lambda: _is_sent(tenant.tenant_id, message_id), what="mail delivered after Redis returned")
    assert counting_transport.delivered == [str(message_id)]


async def test_the_relay_only_sees_outbox_rows_in_its_own_scope() -> None:
    """The relay's widening is named: a plain tenant session never sees another tenant's rows."""
    from core.db import get_database
    from core.models import OutboxMessage

    a, b = await create_tenant(), await create_tenant()
    await queue_test_mail(a.tenant_id)
    async with get_database().transaction(tenant_id=b.tenant_id) as session:
        seen = await session.scalar(select(func.count()).select_from(OutboxMessage)
                                    .where(OutboxMessage.tenant_id == a.tenant_id))
    assert seen == 0
    await run_outbox_inline(a.tenant_id)
