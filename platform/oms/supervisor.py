"""What keeps `oms run`'s processes running: a web server, worker or scheduler that exits
without being asked to is started again, with a growing pause, while the others keep serving.

Why not a process manager: supervisord and circus run as daemons driven by configuration
files, and honcho (like foreman) stops every process when one exits, the very thing to avoid.
`oms run` also starts and stops the embedded PostgreSQL and Redis around its processes, and
must stop them last; a few dozen lines here do exactly that.

Each process leads its own process group (the worker forks its own workers): before one is
started again, whatever is left of its group is stopped, so two generations never run side
by side. A process that keeps exiting is reported as crash-looping, with its exit status, and
tried again at the longest pause rather than in a tight loop; once it has stayed up for a
while it counts as recovered.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def exit_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


@dataclass
class Child:
    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    pause: float = 0.0  # before the next start, after an unexpected exit
    due_at: float | None = None  # when to start it again
    exits: list[float] = field(default_factory=list)  # recent unexpected exits
    crash_looping: bool = False


class Supervisor:
    def __init__(self, commands: dict[str, list[str]], env: dict[str, str], *, say: Callable[[str], None],
                 first_pause: float = 1.0, longest_pause: float = 60.0, stable_after: float = 60.0,
                 crash_loop: tuple[int, float] = (5, 300.0)) -> None:
        self.children = [Child(name, args) for name, args in commands.items()]
        self.env = env
        self.say = say
        self.first_pause, self.longest_pause, self.stable_after = first_pause, longest_pause, stable_after
        self.loop_exits, self.loop_window = crash_loop

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def _start(self, child: Child) -> None:
        # Its own process group: Ctrl-C reaches the supervisor only, which stops the children in
        # order; and a process that died can have its group's leftovers stopped with it.
        child.process = subprocess.Popen(child.args, env=self.env, start_new_session=True)  # noqa: S603
        child.started_at = time.monotonic()
        child.due_at = None

    def check(self) -> None:
        """Notice exits, start again what is due; call it often."""
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if process is not None and process.poll() is None:
                if child.pause and now - child.started_at >= self.stable_after:
                    if child.crash_looping:
                        self.say(f"{child.name} is running again (pid {process.pid})")
                    child.pause, child.exits, child.crash_looping = 0.0, [], False
                continue
            if process is not None:
                self._exited(child, process, now)
            if child.due_at is not None and now >= child.due_at:
                self._start(child)
                assert child.process is not None
                self.say(f"{child.name} started again (pid {child.process.pid})")

    def _exited(self, child: Child, process: subprocess.Popen[bytes], now: float) -> None:
        _stop_group(process.pid, grace=5.0)
        child.process = None
        child.exits = [t for t in child.exits if now - t < self.loop_window] + [now]
        child.pause = min(self.longest_pause, child.pause * 2 if child.pause else self.first_pause)
        if len(child.exits) >= self.loop_exits:
            child.pause = self.longest_pause
            if not child.crash_looping:
                child.crash_looping = True
                self.say(f"{child.name} is crash-looping: it exited {len(child.exits)} times in "
                         f"{int(self.loop_window)} s (last: {exit_status(process.returncode)}); the others keep "
                         f"running, and it is tried again every {self.longest_pause:g} s. See its log above.")
                child.due_at = now + child.pause
                return
        self.say(f"{child.name} (pid {process.pid}) stopped unexpectedly: {exit_status(process.returncode)}; "
                 f"starting it again in {child.pause:g} s")
        child.due_at = now + child.pause

    def alive(self, name: str) -> subprocess.Popen[bytes] | None:
        for child in self.children:
            if child.name == name and child.process is not None and child.process.poll() is None:
                return child.process
        return None

    def stop_all(self, timeout: float = 20.0) -> None:
        running = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # And whatever each left behind in its group (a worker's forked processes), given the
        # rest of the time, and a few seconds at least, to finish the message in hand.
        groups = [child.process.pid for child in self.children if child.process is not None]
        _stop_groups(groups, grace=max(3.0, deadline - time.monotonic()))


def _stop_group(pgid: int, *, grace: float) -> None:
    """Stop what remains of a process group (a dead worker's forked workers)."""
    _stop_groups([pgid], grace=grace)


def _stop_groups(groups: list[int], *, grace: float) -> None:
    """Ask what remains of these process groups to stop, and kill what is still there after
    ``grace`` seconds."""
    alive = []
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
            alive.append(pgid)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = [pgid for pgid in alive if _exists(pgid)]
        if alive:
            time.sleep(0.1)
    for pgid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
