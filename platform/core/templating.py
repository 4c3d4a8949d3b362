"""Jinja2 for the console: money and times in the company's locale and time zone.

The filters read the signed-in ``principal`` of the page (its locale and time zone) so a template
writes ``{{ order.total_minor | money(order.currency) }}`` and ``{{ at | local_time }}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import pass_context
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from core import clock
from core.locale import format_age, format_money, format_time, money_input
from core.settings import WEB_DIR


def _principal(ctx: Any) -> Any:
    return ctx.get("principal") if ctx is not None else None


@pass_context
def local_time(ctx: Any, value: datetime | None, tz: str | None = None, fmt: str | None = None) -> str:
    """A time in the company's time zone (or ``tz``): with ``fmt`` as strftime, else in its locale."""
    if value is None:
        return "—"
    principal = _principal(ctx)
    tz = tz or getattr(principal, "timezone", None) or "UTC"
    if fmt is not None:
        return value.astimezone(ZoneInfo(tz)).strftime(fmt)
    return format_time(value, tz, getattr(principal, "locale", None), "medium")


@pass_context
def age(ctx: Any, since: datetime | None) -> str:
    """How long ago, in words of the company's locale ("3 hours")."""
    if since is None:
        return "—"
    return format_age(since, clock.now(), getattr(_principal(ctx), "locale", None))


@pass_context
def money(ctx: Any, minor: int | None, currency: str = "EUR") -> str:
    return format_money(minor, currency, getattr(_principal(ctx), "locale", None))


@pass_context
def money_field(ctx: Any, minor: int | None, currency: str = "EUR") -> str:
    """An amount as an input's value, for editing ("59,00")."""
    return money_input(minor, currency, getattr(_principal(ctx), "locale", None))


def _configure(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.filters["local_time"] = local_time
    env.filters["money"] = money
    env.filters["age"] = age
    env.filters["money_field"] = money_field
    env.globals["static_version"] = "1"


def template_config() -> TemplateConfig[Any]:
    return TemplateConfig(directory=WEB_DIR / "templates", engine=JinjaTemplateEngine,
                          engine_callback=_configure)
