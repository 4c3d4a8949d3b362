"""The `oms` command line: run, migrate, web, worker, scheduler, tenants create."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator

import click

from core.settings import VAR_DIR

SERVICES_FILE = VAR_DIR / "services.json"
EMBEDDED_REDIS_PORT = 6390


@contextlib.contextmanager
def services(*, need_redis: bool) -> Iterator[None]:
    """Fill DATABASE_URL and REDIS_URL from the environment, a running `oms run`, or embedded
    servers started here (and stopped on the way out when this process started them)."""
    from core.embedded import EmbeddedPostgres, EmbeddedRedis

    started_redis: EmbeddedRedis | None = None
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = EmbeddedPostgres(VAR_DIR / "pgdata").start()
    if not os.environ.get("REDIS_URL"):
        known = json.loads(SERVICES_FILE.read_text()) if SERVICES_FILE.exists() else {}
        if known.get("redis_url") and _redis_answers(known["redis_url"]):
            os.environ["REDIS_URL"] = known["redis_url"]
        elif need_redis:
            started_redis = EmbeddedRedis(VAR_DIR / "redis")
            os.environ["REDIS_URL"] = started_redis.start(preferred_port=EMBEDDED_REDIS_PORT)
        else:
            os.environ["REDIS_URL"] = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
    try:
        yield
    finally:
        if started_redis is not None:
            started_redis.stop()


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@click.group()
def main() -> None:
    """Order management platform."""


@main.command()
def migrate() -> None:
    """Create the app role, apply migrations, grant the role its data privileges."""
    from core.migrate import migrate as run_migrations
    from core.settings import get_settings

    with services(need_redis=False):
        run_migrations(get_settings())
    click.echo("migrations applied")


@main.command()
@click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("PORT", "8000")), type=int, show_default="8000")
@click.option("--workers", default=lambda: int(os.environ.get("WEB_WORKERS", "1")), type=int, show_default="1",
              help="Server processes sharing the port (one per core at most).")
def web(host: str, port: int, workers: int) -> None:
    """The web server (console and API)."""
    import uvicorn

    from core.logging import configure_logging
    from core.settings import get_settings

    os.environ["PORT"] = str(port)  # links in mails point here unless PUBLIC_URL says otherwise
    configure_logging(json_logs=get_settings().log_json, level=get_settings().log_level)
    uvicorn.run(
        "oms.app:create_app", factory=True, host=host, port=port, proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"), log_config=None,
        access_log=False, timeout_graceful_shutdown=10, workers=workers,
    )


@main.command()
@click.option("--processes", default=1, show_default=True, help="Worker processes (1 per core is plenty).")
@click.option("--threads", default=4, show_default=True, help="Threads per process (async actors share a loop).")
def worker(processes: int, threads: int) -> None:
    """The Dramatiq worker."""
    os.execvp(sys.executable, [sys.executable, "-m", "dramatiq", "oms.worker",  # noqa: S606
                               "--processes", str(processes), "--threads", str(threads)])


@main.command()
def scheduler() -> None:
    """Periodic jobs; only one scheduler is active at a time."""
    from core.db import get_database
    from core.logging import configure_logging
    from core.scheduler import run_scheduler
    from core.settings import get_settings
    from oms import actors, models  # noqa: F401  (mappers and periodic jobs registered)

    configure_logging(json_logs=get_settings().log_json, level=get_settings().log_level)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_scheduler(get_database(), stop)
        await get_database().dispose()

    asyncio.run(_main())


@main.command()
@click.option("--port", default=lambda: int(os.environ.get("PORT", "8000")), type=int, show_default="8000")
@click.option("--threads", default=4, show_default=True)
def run(port: int, threads: int) -> None:
    """Everything on this machine: embedded services (unless DATABASE_URL/REDIS_URL are set),
    migrations, web server, worker and scheduler, each started again if it dies. Ctrl-C stops
    it all."""
    from core.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
    from core.migrate import migrate as run_migrations
    from core.settings import get_settings
    from oms.supervisor import Supervisor

    if free_port(port) != port:
        raise click.ClickException(f"port {port} is in use; stop what runs there or set PORT=<another port>")
    # Every process (the worker's mails too) links to this port unless PUBLIC_URL says otherwise.
    os.environ["PORT"] = str(port)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    embedded_pg: EmbeddedPostgres | None = None
    embedded_redis: EmbeddedRedis | None = None
    supervisor: Supervisor | None = None
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        if not os.environ.get("DATABASE_URL"):
            click.echo("starting embedded PostgreSQL (data in var/pgdata)")
            embedded_pg = EmbeddedPostgres(VAR_DIR / "pgdata")
            os.environ["DATABASE_URL"] = embedded_pg.start()
            # A machine running everything embedded is a developer's: let webhooks reach localhost.
            os.environ.setdefault("WEBHOOKS_ALLOW_PRIVATE", "1")
        if not os.environ.get("REDIS_URL"):
            embedded_redis = EmbeddedRedis(VAR_DIR / "redis")
            os.environ["REDIS_URL"] = embedded_redis.start(preferred_port=EMBEDDED_REDIS_PORT)
            click.echo(f"started embedded Redis on 127.0.0.1:{embedded_redis.port} (data in var/redis)")
            SERVICES_FILE.write_text(json.dumps({"redis_url": os.environ["REDIS_URL"]}))
        run_migrations(get_settings())
        click.echo("database migrated")
        me = [sys.executable, "-m", "oms.cli"]
        supervisor = Supervisor({"web": [*me, "web", "--port", str(port)],
                                 "worker": [*me, "worker", "--threads", str(threads)],
                                 "scheduler": [*me, "scheduler"]},
                                dict(os.environ), say=lambda line: click.echo(f"oms run: {line}", err=True))
        supervisor.start_all()
        announced = False
        started = time.monotonic()
        while not stopping:
            supervisor.check()
            if not announced and _answers(port):
                announced = True
                click.echo(f"\nOMS is running: http://127.0.0.1:{port}\n(Ctrl-C to stop)\n")
            elif not announced and time.monotonic() - started > 60:
                announced = True
                click.echo(f"the web server does not answer on port {port} yet: see the log above", err=True)
            time.sleep(0.3)
    finally:
        click.echo("stopping…")
        if supervisor is not None:
            supervisor.stop_all()
        if embedded_redis is not None:
            embedded_redis.stop()
            SERVICES_FILE.unlink(missing_ok=True)
        if embedded_pg is not None:
            embedded_pg.stop()
        click.echo("stopped")


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5):
            return True
    except OSError:
        return False


@main.group()
def tenants() -> None:
    """Tenants, for operators and scripts."""


@tenants.command("create")
@click.option("--name", required=True, help="Company name")
@click.option("--email", required=True, help="Owner's email (their sign-in)")
@click.option("--password", required=True, help="Owner's password")
@click.option("--owner-name", default=None)
@click.option("--country", default="US", show_default=True)
@click.option("--currency", default="USD", show_default=True)
@click.option("--timezone", default="UTC", show_default=True)
def tenants_create(name: str, email: str, password: str, owner_name: str | None, country: str, currency: str,
                   timezone: str) -> None:
    """Create a tenant with its owner; prints the tenant id and a new API key as JSON."""
    from core.db import Database
    from core.problems import ProblemError
    from core.settings import get_settings
    from tenants.service import create_tenant_with_owner

    async def _create() -> dict[str, str]:
        database = Database(get_settings().app_url, pool_size=1)
        try:
            async with database.transaction() as session:
                tenant, user, key = await create_tenant_with_owner(
                    session, name=name, email=email, password=password, owner_name=owner_name,
                    country=country, currency=currency, timezone=timezone,
                )
            return {"tenant_id": str(tenant.id), "user_id": str(user.id), "email": user.email, "api_key": key}
        finally:
            await database.dispose()

    from core.migrate import migrate as run_migrations
    from oms import models  # noqa: F401

    with services(need_redis=False):
        run_migrations(get_settings())
        try:
            result = asyncio.run(_create())
        except ProblemError as problem:
            details = "; ".join(f"{e.field}: {e.message}" for e in problem.errors) or problem.detail
            raise click.ClickException(details) from None
    click.echo(json.dumps(result))


if __name__ == "__main__":
    main()

