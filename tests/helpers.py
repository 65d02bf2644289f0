"""Helpers shared by tests in every folder (importable as ``helpers``: tests/ is on sys.path)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading

REPO = pathlib.Path(__file__).resolve().parent.parent


def tree(root) -> set[str]:
    """Every path under ``root``, relative to it."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def start_child(script, *args) -> tuple[subprocess.Popen, list[bytes], threading.Event, threading.Thread]:
    """Run ``python script args...`` with this working tree's logbroker importable.  A thread keeps
    reading its stdout (so the pipe never fills and blocks the child): lines go to the list, and the
    event is set once the child prints ``ready`` (or its stdout closes)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
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
