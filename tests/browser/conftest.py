"""Fixtures for the real-browser tests: the web server and a worker as subprocesses (against the
embedded PostgreSQL and Redis the session conftest started), and the system Chromium driven
through Playwright's sync API."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from processes import start_oms, stop_process, wait_healthy

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


class Journey:
    """Screenshots ``<prefix>NN-name.png`` in the order taken, JavaScript errors seen in any page,
    and the failures of checks that need not stop the journey (the test asserts them at the end)."""

    def __init__(self, artifacts: Path, prefix: str = "") -> None:
        self.artifacts = artifacts
        self.prefix = prefix
        self.count = 0
        self.page_errors: list[str] = []
        self.failures: list[str] = []
        for old in artifacts.glob(f"{prefix}[0-9][0-9]-*.png"):  # only this journey's own
            old.unlink()

    def watch(self, page: Any, label: str) -> Any:
        page.on("pageerror", lambda error: self.page_errors.append(f"{label}: {error}"))
        return page

    def shot(self, page: Any, name: str) -> None:
        self.count += 1
        page.screenshot(path=str(self.artifacts / f"{self.prefix}{self.count:02d}-{name}.png"), full_page=True)

    @contextlib.contextmanager
    def soft(self, page: Any, what: str) -> Iterator[None]:
        try:
            yield
        except AssertionError as exc:
            self.failures.append(f"{what}:\n{exc}")
            self.shot(page, "FAILED-" + re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")[:40])


@dataclass
class LiveServer:
    base_url: str
    port: int
    web_log: Path
    worker_log: Path
    clock_shift_file: Path

    def shift_clock(self, seconds: float) -> None:
        """Move the server's and the worker's clock (core.clock) this far from the real time."""
        self.clock_shift_file.write_text(str(seconds))

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.web_log, self.worker_log):
            text = path.read_text(errors="replace") if path.exists() else ""
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- {path.name} (last {lines} lines) ---\n{tail}")
        return "\n".join(parts)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@contextlib.contextmanager
def serving(artifacts_dir: Path, **extra_env: str) -> Iterator[LiveServer]:
    """`oms web` on a free port and `oms worker`, sharing the test run's database and Redis
    (with ``extra_env`` set for both: a fake Stripe's address, say)."""
    from core.embedded import free_port

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    clock_shift = artifacts_dir / f"clock-shift-{port}"
    clock_shift.write_text("0")
    env = dict(os.environ, PUBLIC_URL=base_url, OMS_CLOCK_SHIFT_FILE=str(clock_shift), **extra_env)
    web_log, worker_log = artifacts_dir / "web.log", artifacts_dir / "worker.log"
    started: list[tuple[subprocess.Popen[bytes], Any]] = []
    try:
        started.append(start_oms(["web", "--port", str(port)], env, web_log))
        started.append(start_oms(["worker", "--threads", "2"], env, worker_log))
        wait_healthy(f"{base_url}/healthz", started[0][0], web_log)
        yield LiveServer(base_url=base_url, port=port, web_log=web_log, worker_log=worker_log,
                         clock_shift_file=clock_shift)
    finally:
        for process, log_file in started:
            stop_process(process)
            log_file.close()
        clock_shift.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def live_server(artifacts_dir: Path) -> Iterator[LiveServer]:
    with serving(artifacts_dir) as server:
        yield server


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"the system Chromium is not installed at {CHROMIUM} (browser tests drive it; "
                    "nothing is downloaded)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_context(browser: Any) -> Iterator[Any]:
    """A factory of independent browser contexts (separate cookies), closed after the test."""
    contexts: list[Any] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("viewport", {"width": 1280, "height": 900})
        kwargs.setdefault("locale", "en-GB")
        context = browser.new_context(**kwargs)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def journey_for(artifacts_dir: Path) -> Any:
    """``journey_for(prefix)`` gives a Journey that keeps its screenshots under that prefix."""
    return lambda prefix="": Journey(artifacts_dir, prefix)
