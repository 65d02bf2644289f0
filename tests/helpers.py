"""Helpers shared by tests in every folder (importable as ``helpers``: tests/ is on sys.path)."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent


def tree(root) -> set[str]:
    """Every path under ``root``, relative to it."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def child_env() -> dict:
    """This environment with this working tree's logbroker importable and no default data directory."""
    env = dict(os.environ)
    env.pop("LOGBROKER_DATA_DIR", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class ChildProcess:
    """A child (a crash harness, ``logbroker serve``) whose stdout a thread keeps reading, so the pipe
    never blocks it: every line is kept in ``lines``; ``ready`` is set by a line starting with one of
    ``ready_prefixes`` (``ready_at`` notes when) or once stdout closes; ``finished`` by a ``done`` line.
    stderr goes to ``stderr_path`` (a file: log lines never block the child).  Only its own pid is ever
    signalled."""

    def __init__(self, argv: list[str], stderr_path: str, *, ready_prefixes: tuple[bytes, ...] = (b"ready\n",)):
        self.stderr_path = stderr_path
        self._ready_prefixes = ready_prefixes
        with open(stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
                                         env=child_env())
        self.lines: list[bytes] = []
        self.ready = threading.Event()
        self.ready_at: float | None = None
        self.finished = False
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith(self._ready_prefixes):
                self.ready_at = time.monotonic()
                self.ready.set()
            elif line == b"done\n":
                self.finished = True
            self.on_line(line)
        self.ready.set()

    def on_line(self, line: bytes) -> None:
        """Called (from the reader thread) for every line; subclasses note what they need."""

    def signal(self, signum: int) -> bool:
        """Send ``signum`` to the child (only this pid); False if it had already exited."""
        alive = self.proc.poll() is None
        if alive:
            os.kill(self.proc.pid, signum)
        return alive

    def kill(self) -> bool:
        return self.signal(signal.SIGKILL)

    def reap(self, timeout: float = 20.0) -> tuple[int, str]:
        """Wait for the exit (killing it after ``timeout``); (return code, stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=20.0)
        self.reader.join(timeout=20.0)
        self.proc.stdout.close()
        with open(self.stderr_path, "rb") as f:
            return self.proc.returncode, f.read().decode(errors="replace")


def start_child(script, *args) -> tuple[subprocess.Popen, list[bytes], threading.Event, threading.Thread]:
    """Run ``python script args...`` with this working tree's logbroker importable.  A thread keeps
    reading its stdout (so the pipe never fills and blocks the child): lines go to the list, and the
    event is set once the child prints ``ready`` (or its stdout closes)."""
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env())
    lines: list[bytes] = []
    ready = threading.Event()

    def pump():
        for line in proc.stdout:
            if line == b"ready\n":
                ready.set()
            else:
                lines.append(line)
        ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return proc, lines, ready, reader
