"""Counting attempts in Redis to slow down guessing.

An attempt is counted *before* the password is checked (INCR, then compare), so parallel
requests can't all slip under the limit; a success clears the account's count.
"""

from __future__ import annotations

from core.redis import get_redis, key

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_IP = 100  # a shop's whole team may sign in from one address


async def _count(name: str, window: int) -> tuple[int, int]:
    redis = get_redis()
    count = int(await redis.incr(name))
    if count == 1:
        # The window starts at the first attempt (EXPIRE ... NX needs Redis 7; the embedded one is 6.2).
        await redis.expire(name, window)
    return count, int(await redis.ttl(name))


async def take_attempt(account: str, ip: str, *, scope: str = "login") -> int:
    """Count one attempt; returns the seconds to wait when over the limit (0 to go ahead)."""
    account_count, account_ttl = await _count(key(scope, "account", account.lower()), WINDOW_SECONDS)
    ip_count, ip_ttl = await _count(key(scope, "ip", ip), WINDOW_SECONDS)
    waits = []
    if account_count > MAX_FAILURES_PER_ACCOUNT:
        waits.append(account_ttl)
    if ip_count > MAX_FAILURES_PER_IP:
        waits.append(ip_ttl)
    return max([w for w in waits if w > 0] or [0 if not waits else WINDOW_SECONDS])


async def clear_failures(account: str, ip: str | None = None, *, scope: str = "login") -> None:
    """After a success: the account starts afresh, and the address gets its attempt back
    (counted before the check), so only failures add up."""
    redis = get_redis()
    await redis.delete(key(scope, "account", account.lower()))
    if ip is not None:
        await redis.decr(key(scope, "ip", ip))


async def within_rate(name: str, limit: int, window: int) -> bool:
    """A plain rate limit: False once ``name`` was used ``limit`` times in ``window`` seconds."""
    count, _ = await _count(key("rate", name), window)
    return count <= limit


def network_of(ip: str | None) -> str | None:
    """The network an address belongs to, as far as one person or machine usually has several
    addresses: its /24 (IPv4, also when mapped into IPv6) or /48 (IPv6). None for this machine
    itself (a developer, the tests) and for a request with no usable address (a server socket
    always gives one; a shared "unknown" bucket would let one stranger lock everyone out): no
    throttle by network applies to them."""
    import ipaddress

    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None
    return str(ipaddress.ip_network(f"{address}/{24 if address.version == 4 else 48}", strict=False))
