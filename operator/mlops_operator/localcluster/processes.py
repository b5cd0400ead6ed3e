"""Start, find and stop the cluster's daemons by pid file, never by name."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ManagedProcess:
    """A daemon the cluster started: its pid file records pid and the start time that proves identity."""

    name: str
    pid_file: Path

    def _read(self) -> tuple[int, str] | None:
        try:
            pid_text, start_text = self.pid_file.read_text().split()
            return int(pid_text), start_text
        except (FileNotFoundError, ValueError):
            return None

    def pid(self) -> int | None:
        """The pid if the recorded process still runs (same pid and same start time)."""
        record = self._read()
        if record is None:
            return None
        pid, start = record
        return pid if process_start_time(pid) == start else None

    def start(self, argv: list[str], log_file: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        """Launch detached (own session), log to `log_file`, record the pid."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid} {process_start_time(proc.pid)}\n")
        return proc.pid

    def stop(self, grace_seconds: float = 10.0) -> bool:
        """SIGTERM, wait up to the grace period, then SIGKILL; True if something was stopped."""
        pid = self.pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        terminate(pid, grace_seconds)
        return True


def process_start_time(pid: int) -> str:
    """The kernel's start time of a process (field 22 of /proc/PID/stat), or '' if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return ""
    return fields[19]


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    return process_start_time(pid) != ""


def terminate(pid: int, grace_seconds: float) -> None:
    """Stop a process and its session: SIGTERM, then SIGKILL after the grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + (grace_seconds if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            _reap(pid)
            if not is_alive(pid):
                return
            time.sleep(0.1)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
