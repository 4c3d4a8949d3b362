"""Passwords, secrets and tokens."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2id at OWASP's floor: 19 MiB of memory, 2 iterations, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verifying against this when the email is unknown keeps sign-in timing the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

COMMON_PASSWORDS = frozenset(
    """password password1 password123 123456789012 1234567890 qwertyuiop qwerty123 letmein123
    iloveyou123 welcome123 admin12345 changeme123 passw0rd123 abc1234567 1q2w3e4r5t monkey12345
    dragon12345 football123 baseball123 sunshine123 princess123 trustno1234""".split()
)
MIN_PASSWORD_LENGTH = 10


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def password_problem(password: str, *, avoid: list[str]) -> str | None:
    """Why a password is too weak, or None. Long beats clever: length first, then the obvious."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > 200:
        return "Use at most 200 characters."
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(lowered)) < 4:
        return "This password is too common or too simple; choose another."
    for word in avoid:
        word = word.strip().lower()
        if len(word) >= 4 and word in lowered:
            return "Don't use your name, email or company name in the password."
    return None


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def scoped_token(tenant_id: uuid.UUID, prefix: str) -> tuple[str, str]:
    """A secret that names its tenant: ``<prefix>_<tenant hex>_<secret>``.

    Reading the tenant from the token lets lookups run inside that tenant's row-level
    security scope; only the hash of the secret is stored. Returns (token, hash).
    """
    secret = new_secret()
    return f"{prefix}_{tenant_id.hex}_{secret}", sha256_hex(secret)


def parse_scoped_token(token: str, prefix: str) -> tuple[uuid.UUID, str] | None:
    """(tenant_id, hash of the secret), or None when the token is malformed."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != prefix or len(parts[1]) != 32 or not parts[2]:
        return None
    try:
        tenant_id = uuid.UUID(hex=parts[1])
    except ValueError:
        return None
    return tenant_id, sha256_hex(parts[2])


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
