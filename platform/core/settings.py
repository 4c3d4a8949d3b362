"""Settings read from the environment once per process.

`oms run` fills DATABASE_URL and REDIS_URL for its children when it starts embedded
services; every other process only reads them.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import URL, make_url

ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("OMS_VAR_DIR", ROOT / "var"))
WEB_DIR = ROOT / "web"


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept under var/."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def to_async_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed


@dataclass(frozen=True)
class Settings:
    database_url: str  # the owner's URL: migrations, role bootstrap
    redis_url: str
    app_db_role: str = "oms_app"
    app_db_password: str = "oms_app_local_only"  # noqa: S105  (embedded mode; set APP_DB_PASSWORD elsewhere)
    app_database_url: str | None = None  # set to override the derived app-role URL
    secret_key: str = field(default_factory=_secret_key, repr=False)
    public_url: str = "http://127.0.0.1:8000"
    redis_namespace: str = "oms"
    smtp_url: str | None = None
    mail_from: str = "OMS <no-reply@oms.localhost>"
    db_pool_size: int = 10
    log_json: bool = True
    log_level: str = "INFO"
    webhooks_allow_private: bool = False  # let webhooks reach private addresses (local development, tests)
    stripe_api_base: str | None = None  # a local fake Stripe in development and tests; None: Stripe itself
    geocoder_url: str | None = None  # a Nominatim-compatible service; None: the places shipped offline
    live_per_process: int = 2000  # open live-page streams a web process serves (core.live)

    @property
    def owner_url(self) -> URL:
        return to_async_url(self.database_url)

    @property
    def sweeper_db_role(self) -> str:
        """The role the scheduler's sweeps take for one transaction to learn which companies have
        work due, and to purge what has expired (see ``core.sweeper``): no login, a few columns
        of the due rows only."""
        return f"{self.app_db_role}_sweeper"

    @property
    def app_url(self) -> URL:
        """The restricted login role's URL: same server and database, another user."""
        if self.app_database_url:
            return to_async_url(self.app_database_url)
        return self.owner_url.set(username=self.app_db_role, password=self.app_db_password)


def public_url() -> str:
    """The address links in mails point to: PUBLIC_URL, else this machine on the port the web
    server listens on (PORT, which `oms run` and `oms web` set for their processes)."""
    if url := os.environ.get("PUBLIC_URL", "").strip():
        return url.rstrip("/")
    port = os.environ.get("PORT", "").strip()
    return f"http://127.0.0.1:{port if port.isdigit() and 0 < int(port) < 65536 else 8000}"


def load() -> Settings:
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if not database_url or not redis_url:
        raise RuntimeError(
            "DATABASE_URL and REDIS_URL are not set: start the platform with `oms run`, "
            "which starts embedded PostgreSQL and Redis and sets them for its processes."
        )
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        app_db_role=os.environ.get("APP_DB_ROLE", "oms_app"),
        app_db_password=os.environ.get("APP_DB_PASSWORD", "oms_app_local_only"),
        app_database_url=os.environ.get("APP_DATABASE_URL") or None,
        public_url=public_url(),
        redis_namespace=os.environ.get("REDIS_NAMESPACE", "oms"),
        smtp_url=os.environ.get("SMTP_URL") or None,
        mail_from=os.environ.get("MAIL_FROM", "OMS <no-reply@oms.localhost>"),
        db_pool_size=int(os.environ.get("DB_POOL_SIZE", "10")),
        log_json=_flag("LOG_JSON", True),
        log_level=os.environ.get("LOG_LEVEL", "INFO"),
        webhooks_allow_private=_flag("WEBHOOKS_ALLOW_PRIVATE", False),
        stripe_api_base=os.environ.get("STRIPE_API_BASE") or None,
        geocoder_url=os.environ.get("GEOCODER_URL") or None,
        live_per_process=int(os.environ.get("LIVE_PER_PROCESS", "2000")),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load()
