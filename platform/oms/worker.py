"""Module the Dramatiq worker loads: the broker, then every actor.

Async actors share one event loop per worker process, which Dramatiq's AsyncIO middleware makes
when the worker boots, from the current policy: uvloop's, as under the web server, for asyncpg.
"""

import asyncio

import uvloop

from core.broker import broker
from core.logging import configure_logging
from core.settings import get_settings
from oms import actors, models  # noqa: F401  (mappers and actors registered)

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
configure_logging(json_logs=get_settings().log_json, level=get_settings().log_level)

__all__ = ["broker"]
