"""Test services: real PostgreSQL and Redis, embedded unless TEST_DATABASE_URL/TEST_REDIS_URL
point at external servers. Started once per run, before any application module is imported,
and the schema comes from the Alembic migrations."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

_state: dict[str, object] = {}


def _external_database(url: str) -> str:
    """A fresh database on the external server, named for this run."""
    import pg_admin

    name = f"oms_test_{uuid.uuid4().hex[:12]}"
    pg_admin.execute_autocommit(url, f'CREATE DATABASE "{name}"')
    _state["drop_database"] = (url, name)
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def pytest_configure(config: pytest.Config) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="oms-test-"))
    _state["tmp"] = tmp
    os.environ["OMS_VAR_DIR"] = str(tmp / "var")
    os.environ["SECRET_KEY"] = "test-secret-" + uuid.uuid4().hex
    os.environ["REDIS_NAMESPACE"] = f"omstest{uuid.uuid4().hex[:8]}"
    os.environ["LOG_JSON"] = "1"
    os.environ["PUBLIC_URL"] = "http://testserver.local"
    os.environ["WEBHOOKS_ALLOW_PRIVATE"] = "1"  # the tests' webhook receivers listen on 127.0.0.1
    os.environ.pop("GEOCODER_URL", None)  # coordinates from the shipped places: never the network

    from core.embedded import EmbeddedPostgres, EmbeddedRedis

    if url := os.environ.get("TEST_DATABASE_URL"):
        os.environ["DATABASE_URL"] = _external_database(url)
    else:
        pg = EmbeddedPostgres(tmp / "pgdata")
        os.environ["DATABASE_URL"] = pg.start()
        _state["pg"] = pg
    if url := os.environ.get("TEST_REDIS_URL"):
        os.environ["REDIS_URL"] = url
    else:
        redis_server = EmbeddedRedis(tmp / "redis", persist=False)
        os.environ["REDIS_URL"] = redis_server.start()
        _state["redis"] = redis_server

    from core.migrate import migrate
    from core.settings import get_settings

    migrate(get_settings())


def pytest_unconfigure(config: pytest.Config) -> None:
    redis_server = _state.get("redis")
    if redis_server is not None:
        redis_server.stop()  # type: ignore[attr-defined]
    pg = _state.get("pg")
    if pg is not None:
        pg.destroy()  # type: ignore[attr-defined]
    if "drop_database" in _state:
        import pg_admin

        url, name = _state["drop_database"]  # type: ignore[misc]
        pg_admin.execute_autocommit(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    tmp = _state.get("tmp")
    if isinstance(tmp, Path):
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> object:
    """The embedded Redis (tests that stop and restart it need it embedded)."""
    server = _state.get("redis")
    if server is None:
        pytest.skip("Redis is external (TEST_REDIS_URL): this test stops and restarts the embedded one")
    return server


@pytest.fixture(scope="session")
async def app() -> AsyncIterator[object]:
    from oms.app import create_app

    yield create_app()


def _client(app: object, base_url: str) -> httpx.AsyncClient:
    """An HTTP client that calls the app in the test's own event loop, so concurrent
    requests really are concurrent (Litestar's test client runs each one on a portal thread)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)  # type: ignore[arg-type]


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app, "https://testserver.local") as test_client:
        yield test_client


@pytest.fixture
async def make_client(app: object) -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """A factory of independent clients (cookie jars), as separate browsers would be."""
    clients: list[httpx.AsyncClient] = []

    async def make(base_url: str = "https://testserver.local") -> httpx.AsyncClient:
        test_client = _client(app, base_url)
        clients.append(test_client)
        return test_client

    yield make
    for test_client in clients:
        await test_client.aclose()


@pytest.fixture(scope="session")
def settings() -> object:
    from core.settings import get_settings

    return get_settings()


@pytest.fixture
async def owner_engine(settings: object) -> AsyncIterator[object]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(settings.owner_url)  # type: ignore[attr-defined]
    yield engine
    await engine.dispose()
