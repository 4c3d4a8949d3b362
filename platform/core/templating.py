"""Jinja2 for the console: filters for money and times in the tenant's time zone."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from core.money import exponent as currency_exponent
from core.settings import WEB_DIR


def local_time(value: datetime | None, tz: str | None = None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(tz or "UTC")).strftime(fmt)


def money(minor: int | None, currency: str = "EUR", exponent: int | None = None) -> str:
    if minor is None:
        return "—"
    exponent = currency_exponent(currency) if exponent is None else exponent
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 10**exponent)
    return f"{sign}{units:,}.{cents:0{exponent}d} {currency}" if exponent else f"{sign}{units:,} {currency}"


def _configure(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.filters["local_time"] = local_time
    env.filters["money"] = money
    env.globals["static_version"] = "1"


def template_config() -> TemplateConfig[Any]:
    return TemplateConfig(directory=WEB_DIR / "templates", engine=JinjaTemplateEngine,
                          engine_callback=_configure)
