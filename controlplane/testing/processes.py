"""Start and stop helper processes by the pid we started, never by name."""

import os
import signal
import subprocess
from pathlib import Path


def spawn(cmd: list[str], log_path: Path, **kwargs) -> subprocess.Popen:
    """Run cmd in its own session with stdout+stderr going to log_path."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )


def stop_process(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM, wait, then SIGKILL the process (and its session) we started."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait(10)


def stop_pid(pid: int, timeout: float = 15) -> None:
    """Same as stop_process for a pid recorded in a file (CLI use)."""
    import time

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    _kill_group(pid)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and ") Z " in state.read_text())


def _kill_group(pid: int) -> None:
    # The process leads its own session (spawn), so the group is only ours.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
