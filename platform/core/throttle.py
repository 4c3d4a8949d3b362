"""Counting failures in Redis to slow down password guessing."""

from __future__ import annotations

from core.redis import get_redis, key

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_IP = 30


async def blocked_for(account: str, ip: str) -> int:
    """Seconds until sign-in may be tried again for this account or address (0 if allowed)."""
    redis = get_redis()
    account_key, ip_key = key("login_fail", account.lower()), key("login_fail_ip", ip)
    account_count, ip_count = await redis.mget(account_key, ip_key)
    waits = []
    if int(account_count or 0) >= MAX_FAILURES_PER_ACCOUNT:
        waits.append(await redis.ttl(account_key))
    if int(ip_count or 0) >= MAX_FAILURES_PER_IP:
        waits.append(await redis.ttl(ip_key))
    return max([w for w in waits if w > 0], default=0)


async def record_failure(account: str, ip: str) -> None:
    redis = get_redis()
    for name in (key("login_fail", account.lower()), key("login_fail_ip", ip)):
        # The window starts at the first failure (EXPIRE ... NX needs Redis 7; the embedded one is 6.2).
        if await redis.incr(name) == 1:
            await redis.expire(name, WINDOW_SECONDS)


async def clear_failures(account: str) -> None:
    await get_redis().delete(key("login_fail", account.lower()))
