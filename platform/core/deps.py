"""Request-scoped dependencies: the principal and one database transaction per request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, principal_of, require_principal
from core.db import before_commit, get_database

_background: set[asyncio.Task[Any]] = set()


_relay: dict[str, Any] = {"task": None, "again": False}
# Under load, the pause between relay passes: the more commits a pass gathers, the larger the
# routing and mail batches it merges (one worker transaction each). 50 ms measured better than 10.
RELAY_GATHER_S = 0.05


def kick_relay() -> None:
    """Relay right after a commit that wrote outbox rows, so work starts within milliseconds;
    the scheduler's sweep catches anything this misses. Kicks that arrive while a relay runs
    make it go round once more instead of starting another: under load, one relay sends
    the messages of many requests in a batch."""
    task: asyncio.Task[Any] | None = _relay["task"]
    if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
        _relay["again"] = True
        return
    task = asyncio.create_task(_relay_until_quiet())
    _relay["task"] = task
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _relay_until_quiet() -> None:
    from core.broker import broker
    from core.outbox import relay_all

    while True:
        _relay["again"] = False
        await relay_all(get_database(), broker)
        if not _relay["again"]:
            return
        # Busy: let a few more requests commit, so that one pass relays (and merges) them all.
        await asyncio.sleep(RELAY_GATHER_S)


async def provide_db(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """The request's session, scoped to the caller's tenant; committed when the handler
    returns, rolled back when it raises (so a refused request changes nothing)."""
    principal = principal_of(request)
    session = get_database().session(
        tenant_id=principal.tenant_id if principal else None,
        user_id=principal.user_id if principal else None,
    )
    try:
        yield session
        await before_commit(session)
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    finally:
        await session.close()
    relay_if_pending(session)


def relay_if_pending(session: AsyncSession) -> None:
    """After a commit that wrote outbox rows: relay them now."""
    if session.info.get("outbox_pending"):
        kick_relay()


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return require_principal(request)


# What every console and API controller injects: the request's session and its principal.
DEPS = {"db": Provide(provide_db), "principal": Provide(provide_principal, sync_to_thread=False)}
