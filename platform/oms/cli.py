"""The `oms` command line: run, migrate, web, worker, scheduler, tenants create, billing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from core.settings import VAR_DIR

SERVICES_FILE = VAR_DIR / "services.json"
EMBEDDED_REDIS_PORT = 6390
T = TypeVar("T")


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
    from oms import actors, models  # noqa: F401  (mappers, and the hooks a sign-up runs: billing's trial)

    with services(need_redis=False):
        run_migrations(get_settings())
        try:
            result = asyncio.run(_create())
        except ProblemError as problem:
            details = "; ".join(f"{e.field}: {e.message}" for e in problem.errors) or problem.detail
            raise click.ClickException(details) from None
    click.echo(json.dumps(result))


@main.group()
def billing() -> None:
    """The platform's invoices to companies, across companies (for the operator)."""


def _billing(work: Callable[[Any, list[Any]], Awaitable[T]], tenant: str | None = None) -> T:
    """Run ``work(database, companies)`` as the app role: every company, or the one ``tenant`` names."""
    from sqlalchemy import select

    from billing.operator import Company
    from core.db import Database
    from core.problems import ProblemError
    from core.settings import get_settings
    from oms import actors, models  # noqa: F401  (mappers, and the actors invoices are collected by)
    from tenants.models import Tenant

    wanted: uuid.UUID | None = None
    if tenant is not None:
        try:
            wanted = uuid.UUID(tenant)
        except ValueError:
            raise click.ClickException(f"{tenant!r} is not a company id (a UUID).") from None

    async def _run() -> T:
        database = Database(get_settings().app_url, pool_size=2)
        try:
            async with database.transaction() as session:
                query = select(Tenant.id, Tenant.name, Tenant.timezone).order_by(Tenant.name)
                if wanted is not None:
                    query = query.where(Tenant.id == wanted)
                companies = [Company(row.id, row.name, row.timezone) for row in await session.execute(query)]
            if wanted is not None and not companies:
                raise click.ClickException(f"No company has the id {wanted}.")
            return await work(database, companies)
        finally:
            await database.dispose()

    with services(need_redis=False):
        try:
            return asyncio.run(_run())
        except ProblemError as problem:
            details = "; ".join(f"{e.field}: {e.message}" for e in problem.errors) or problem.detail
            raise click.ClickException(details) from None


@billing.command("close")
@click.option("--tenant", required=True, help="The company's id")
def billing_close(tenant: str) -> None:
    """Close the company's open period at the start of its day and issue its invoice (a trial closes
    with none); say what was found instead when there was nothing to close."""
    from billing import operator

    closing = _billing(lambda db, companies: operator.close_now(db, companies[0].id), tenant)
    click.echo(closing.words())


@billing.command("invoices")
@click.option("--status", type=click.Choice(["open", "paid"]), default=None, help="Only invoices with this status")
@click.option("--tenant", default=None, help="Only this company's (its id)")
def billing_invoices(status: str | None, tenant: str | None) -> None:
    """Invoices and credit notes of every company: number, company, issued, total, status."""
    from billing import config, display, operator
    from core.locale import format_money

    found = _billing(lambda db, companies: operator.invoices_across(db, companies, status=status), tenant)
    zone = ZoneInfo(config.issuer().timezone)
    rows = [("NUMBER", "COMPANY", "ISSUED", "TOTAL", "STATUS")]
    rows += [(doc.number, company.name, doc.issued_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
              format_money(doc.total_minor, doc.currency), display.status_of(doc)[0]) for company, doc in found]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(cell.rjust(w) if i == 3 else cell.ljust(w)
                             for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
    if not found:
        click.echo("no invoices")


@billing.command("export")
@click.option("--period", required=True, help="A month of the issuer's calendar, YYYY-MM")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="The CSV file to write (standard output when not given)")
def billing_export(period: str, output: str | None) -> None:
    """Every invoice and credit note issued in a month, as CSV for the accountants."""
    import re

    from billing import operator

    if not (match := re.fullmatch(r"(\d{4})-(0[1-9]|1[0-2])", period.strip())):
        raise click.ClickException(f"{period!r} is not a month: write it YYYY-MM, such as 2026-10.")
    start, end = operator.month_bounds(int(match[1]), int(match[2]))
    found = _billing(lambda db, companies: operator.invoices_across(db, companies, start=start, end=end))
    if output is None:
        operator.write_export(found, sys.stdout)
        return
    with open(output, "w", newline="", encoding="utf-8") as out:
        operator.write_export(found, out)
    click.echo(f"{len(found)} documents written to {output}", err=True)


@billing.command("credit")
@click.option("--invoice", "number", required=True, help="The invoice's number, such as INV-2026-000123")
@click.option("--amount", type=click.IntRange(min=1), required=True, help="Minor units, VAT included (4990 is 49.90)")
@click.option("--reason", required=True, help="Why, as the credit note will say")
def billing_credit(number: str, amount: int, reason: str) -> None:
    """Issue a credit note on an invoice (refunded through Stripe when the invoice was paid there)."""
    from billing import operator

    company, note = _billing(lambda db, companies: operator.credit(db, companies, number.strip(), amount, reason))
    click.echo(f"{note.number} for {company.name}")


if __name__ == "__main__":
    main()

