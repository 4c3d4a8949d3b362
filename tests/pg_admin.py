"""Autocommit statements (CREATE/DROP DATABASE) on an external server, for the test setup."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.engine import make_url


def execute_autocommit(url: str, statement: str) -> None:
    parsed = make_url(url)

    async def run() -> None:
        conn = await asyncpg.connect(
            user=parsed.username, password=parsed.password, host=parsed.host or parsed.query.get("host"),
            port=parsed.port, database=parsed.database or "postgres",
        )
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())
