"""Running `oms` commands as subprocesses for end-to-end tests and benchmarks: each in its own
process group (the worker forks), stopped group and all."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEALTH_TIMEOUT = 30.0


def start_oms(args: list[str], env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], Any]:
    log_file = log_path.open("wb")
    # Own session (process group): the worker forks; teardown signals the whole group it leads.
    process = subprocess.Popen(
        [sys.executable, "-m", "oms.cli", *args], cwd=ROOT, env=env,
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return process, log_file


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def wait_healthy(url: str, web: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last_error = "no answer"
    while time.monotonic() < deadline:
        if web.poll() is not None:
            raise RuntimeError(f"web server exited with {web.returncode} before answering:\n"
                               + log_path.read_text(errors="replace")[-4000:])
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
                last_error = f"status {response.status}"
        except (OSError, urllib.error.URLError) as exc:
            last_error = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {HEALTH_TIMEOUT:.0f}s ({last_error}):\n"
                       + log_path.read_text(errors="replace")[-4000:])


def cli_tenant(company: str, email: str, password: str, *, owner: str, timezone: str = "Europe/Paris",
               ) -> dict[str, str]:
    """A French company made with `oms tenants create`, as an operator would: its ids and API key."""
    import json

    result = subprocess.run(
        [sys.executable, "-m", "oms.cli", "tenants", "create", "--name", company, "--email", email,
         "--password", password, "--owner-name", owner, "--country", "FR", "--currency", "EUR",
         "--timezone", timezone],
        env=os.environ, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    created: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return created


def cpu_seconds(*, session: int | None = None, command: str | None = None) -> float:
    """CPU time (user + system) of the live processes of a session (a started `oms` command and
    the processes it forked) or of a command name (``postgres``, ``redis-server``), from /proc;
    0 where /proc is not there."""
    total = 0
    proc = Path("/proc")
    if not proc.is_dir():
        return 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if (session is not None and int(fields[3]) == session) or (command is not None and name == command):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def fake_stripe_server() -> Iterator[str]:
    """A local fake Stripe (localstripe) on a free port, never the network; its base URL."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    binary = Path(sys.executable).parent / "localstripe"
    process = subprocess.Popen([str(binary), "--port", str(port), "--from-scratch"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=os.environ)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
