"""Mails queued together go out in one batch message; a mail that fails in it is retried on its
own account, and the ones already sent are never sent again."""

from __future__ import annotations

import json

import pytest
from test_outbox_and_workers import mail_status, queue_test_mail

from factories import create_tenant


class FlakyTransport:
    """Delivers everything except to addresses with "down" in them."""

    name = "flaky"

    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def deliver(self, message) -> None:
        if "down" in message.to_address:
            raise ConnectionError("mail server refused the recipient")
        self.delivered.append(message.to_address)


async def test_pending_mails_are_merged_into_one_batch_and_a_failure_is_retried_alone(monkeypatch) -> None:
    from sqlalchemy import select

    import core.tasks
    from core.broker import COROUTINES
    from core.db import get_database
    from core.models import OutboxMessage
    from core.outbox import broker_messages

    tenant = await create_tenant()
    transport = FlakyTransport()
    monkeypatch.setattr(core.tasks, "transport", lambda: transport)
    ids = [await queue_test_mail(tenant.tenant_id, to=f"{name}@example.test") for name in ("ann", "down", "bob")]
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        rows = list(await session.scalars(select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.tenant_id)
                                          .order_by(OutboxMessage.id)))

    [message] = broker_messages(rows, 0)
    assert message.actor_name == "mail.send_batch"
    assert message.kwargs["message_ids"] == [str(i) for i in ids]

    run = COROUTINES[message.actor_name]
    with pytest.raises(core.tasks.MailNotDelivered, match="1 of 3 not delivered"):
        await run(**json.loads(json.dumps(message.kwargs)))
    assert [await mail_status(tenant.tenant_id, i) for i in ids] == ["sent", "queued", "sent"]

    # The broker retries the whole message later: only the one that failed is tried again.
    monkeypatch.setattr(transport, "deliver", _always(transport))
    await run(**json.loads(json.dumps(message.kwargs)))
    assert [await mail_status(tenant.tenant_id, i) for i in ids] == ["sent", "sent", "sent"]
    assert sorted(transport.delivered) == ["ann@example.test", "bob@example.test", "down@example.test"]


def _always(transport: FlakyTransport):
    async def deliver(message) -> None:
        transport.delivered.append(message.to_address)
    return deliver


async def test_one_mail_alone_goes_as_it_is(monkeypatch) -> None:
    from sqlalchemy import select

    from core.db import get_database
    from core.models import OutboxMessage
    from core.outbox import broker_messages

    tenant = await create_tenant()
    message_id = await queue_test_mail(tenant.tenant_id)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        rows = list(await session.scalars(select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.tenant_id)))
    [message] = broker_messages(rows, 0)
    assert message.actor_name == "mail.send"
    assert message.kwargs["message_id"] == str(message_id)
    assert message.kwargs["tenant_id"] == str(tenant.tenant_id)
