"""`oms migrate`: the app role, then Alembic to head, then the role's data privileges."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

from core.roles import ensure_app_role, grant_app_role
from core.settings import ROOT, Settings


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "platform" / "migrations"))
    cfg.set_main_option(
        "sqlalchemy.url", settings.owner_url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


async def _with_owner(settings: Settings, grant: bool) -> None:
    engine = create_async_engine(settings.owner_url)
    try:
        async with engine.begin() as conn:
            if grant:
                await grant_app_role(conn, settings.app_db_role)
            else:
                await ensure_app_role(conn, settings.app_db_role, settings.app_db_password,
                                      settings.sweeper_db_role)
    finally:
        await engine.dispose()


def migrate(settings: Settings) -> None:
    """Idempotent: safe to run at every start."""
    asyncio.run(_with_owner(settings, grant=False))
    command.upgrade(alembic_config(settings), "head")
    asyncio.run(_with_owner(settings, grant=True))
