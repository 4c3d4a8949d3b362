"""Module the Dramatiq worker loads: the broker, then every actor."""

from core import all_models, all_tasks  # noqa: F401
from core.broker import broker
from core.logging import configure_logging
from core.settings import get_settings

configure_logging(json_logs=get_settings().log_json, level=get_settings().log_level)

__all__ = ["broker"]
