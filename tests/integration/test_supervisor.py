"""`oms run`'s supervisor with real processes: one that dies is started again after a pause while
the others keep running; one that keeps dying is reported as crash-looping and retried at the
longest pause, not in a tight loop; stopping stops everything, leftovers of a group included."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from oms.supervisor import Supervisor, exit_status


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _run(supervisor: Supervisor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        supervisor.check()
        time.sleep(0.02)


def test_a_process_that_dies_is_started_again_and_the_others_keep_running(tmp_path: Path) -> None:
    said: list[str] = []
    supervisor = Supervisor({"steady": _python("import time; time.sleep(60)"),
                             "victim": _python("import time; time.sleep(60)")},
                            dict(os.environ), say=said.append, first_pause=0.2, longest_pause=1.0, stable_after=0.5)
    supervisor.start_all()
    try:
        steady, victim = supervisor.alive("steady"), supervisor.alive("victim")
        assert steady is not None and victim is not None
        os.kill(victim.pid, signal.SIGKILL)
        _run(supervisor, 0.1)
        assert said == [f"victim (pid {victim.pid}) stopped unexpectedly: killed by SIGKILL; "
                        "starting it again in 0.2 s"]
        assert supervisor.alive("victim") is None
        _run(supervisor, 0.3)
        again = supervisor.alive("victim")
        assert again is not None and again.pid != victim.pid
        assert said[-1] == f"victim started again (pid {again.pid})"
        assert supervisor.alive("steady") is steady  # never touched
    finally:
        supervisor.stop_all(timeout=5)
    assert supervisor.alive("steady") is None and supervisor.alive("victim") is None


def test_a_crash_loop_is_reported_once_and_slowed_down(tmp_path: Path) -> None:
    said: list[str] = []
    starts = tmp_path / "starts"
    supervisor = Supervisor({"broken": _python(f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"),
                             "steady": _python("import time; time.sleep(60)")},
                            dict(os.environ), say=said.append, first_pause=0.05, longest_pause=1.5,
                            stable_after=10, crash_loop=(4, 30))
    supervisor.start_all()
    try:
        _run(supervisor, 4.0)
        loops = [line for line in said if "crash-looping" in line]
        assert len(loops) == 1, said
        assert "exited 4 times" in loops[0] and "exit status 3" in loops[0] and "every 1.5 s" in loops[0]
        # Four quick starts (0.05, 0.1, 0.2 s apart), then one per 1.5 s: not a tight loop.
        assert 5 <= len(starts.read_text()) <= 7, (starts.read_text(), said)
        assert supervisor.alive("steady") is not None
    finally:
        supervisor.stop_all(timeout=5)


def test_stopping_also_stops_what_a_process_forked(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    forker = _python("import subprocess, sys, time\n"
                     f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                     f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
                     "time.sleep(60)")
    supervisor = Supervisor({"forker": forker}, dict(os.environ), say=lambda line: None)
    supervisor.start_all()
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    supervisor.stop_all(timeout=5)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{grandchild}").exists() and "Z" not in _state(grandchild):
        assert time.monotonic() < deadline, "the forked process outlived its supervisor"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat[stat.rindex(")") + 2]


def test_exit_status_in_words() -> None:
    assert exit_status(0) == "exit status 0"
    assert exit_status(2) == "exit status 2"
    assert exit_status(-9) == "killed by SIGKILL"
