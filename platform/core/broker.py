"""The Dramatiq broker: Redis, async actors, retries with backoff, time limits, stuck work.

Importing this module sets the global broker, so every ``tasks`` module imports ``actor``
from here before declaring its actors. Actors take ids (always ``tenant_id`` first), never
ORM objects, and may run twice: each one checks state before acting.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO, CurrentMessage, Retries

from core.dead_letters import RecordFailures

F = TypeVar("F", bound=Callable[..., Any])

# The coroutine behind each async actor: Dramatiq's wrapper needs a worker's event loop
# thread, while tests and the console may run an actor's body inline in their own loop.
COROUTINES: dict[str, Callable[..., Any]] = {}

DEFAULT_QUEUE = "default"


def build_broker(url: str, namespace: str) -> RedisBroker:
    # A worker that dies (killed, machine lost) leaves its messages unacknowledged; after the
    # heartbeat timeout, queue maintenance by the remaining workers puts them back. The crash
    # test shortens both so that it doesn't wait half a minute.
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        url=url, namespace=namespace,
        heartbeat_timeout=int(os.environ.get("BROKER_HEARTBEAT_TIMEOUT_MS", "30000")),
        maintenance_chance=int(os.environ.get("BROKER_MAINTENANCE_CHANCE", "1000")),
    )
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CurrentMessage())
    # "after" hooks run in reverse order: placed before Retries, this one runs after it and
    # so sees whether the message failed for good.
    broker.add_middleware(RecordFailures(), before=Retries)
    return broker


broker = build_broker(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), os.environ.get("REDIS_NAMESPACE", "oms")
)
dramatiq.set_broker(broker)


def actor(
    name: str,
    *,
    queue: str = DEFAULT_QUEUE,
    max_retries: int = 8,
    min_backoff_ms: int = 1_000,
    max_backoff_ms: int = 300_000,
    time_limit_ms: int = 120_000,
) -> Callable[[F], dramatiq.Actor[Any, Any]]:
    """Declare an actor with the platform's defaults: dotted name, bounded retries with
    exponential backoff, and a time limit."""

    def decorate(fn: F) -> dramatiq.Actor[Any, Any]:
        declared: dramatiq.Actor[Any, Any] = dramatiq.actor(
            actor_name=name,
            queue_name=queue,
            max_retries=max_retries,
            min_backoff=min_backoff_ms,
            max_backoff=max_backoff_ms,
            time_limit=time_limit_ms,
        )(fn)
        COROUTINES[name] = fn
        return declared

    return decorate
