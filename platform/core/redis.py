"""The async Redis client of the running event loop (sessions, throttling)."""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from core.settings import get_settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def get_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # Reconnect transparently after a Redis restart instead of failing the next request.
        client = aioredis.Redis.from_url(
            get_settings().redis_url, decode_responses=True, health_check_interval=15,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
            retry_on_error=[ConnectionError, TimeoutError],
        )
        _clients[loop] = client
    return client


def key(*parts: str) -> str:
    return ":".join((get_settings().redis_namespace, *parts))


async def close_redis() -> None:
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
