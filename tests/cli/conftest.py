"""Shared fixtures for the CLI tests: an isolated data directory and a CliRunner bound to it."""

from __future__ import annotations

import json
import os
import pathlib
import select
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner, Result

from logbroker.cli.main import cli

REPO = pathlib.Path(__file__).resolve().parents[2]


def subprocess_env() -> dict[str, str]:
    """Environment for child Pythons: import this working tree's logbroker, no inherited data dir."""
    env = dict(os.environ)
    env.pop("LOGBROKER_DATA_DIR", None)
    env.pop("LOGBROKER_BOOTSTRAP", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def wait_for_line(proc: subprocess.Popen, expected: str, timeout: float = 20.0) -> None:
    """Read the child's stdout until a line equal to ``expected`` arrives (bounded in time)."""
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        if line.strip() == expected.encode():
            return
    proc.kill()
    proc.wait(timeout=10)
    raise AssertionError(f"child never printed {expected!r}; stdout so far: {seen!r}; "
                         f"stderr: {proc.stderr.read() if proc.stderr else b''!r}")


HOLDER = """
import sys, time
from logbroker.broker import Broker
broker = Broker.open(sys.argv[1], housekeeping=False)
print("ready", flush=True)
time.sleep(60)
"""


def start_lock_holder(data_dir: str) -> subprocess.Popen:
    """A child process that opens ``data_dir`` for writing (taking its lock) and sleeps."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, data_dir], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=subprocess_env())
    wait_for_line(proc, "ready")
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


class Cli:
    """``cli("topic", "list")`` runs ``logbroker --data-dir <tmp> topic list`` in-process."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | bytes | None = None, env: dict | None = None,
                 data_dir: bool = True) -> Result:
        argv = (["--data-dir", self.data_dir] if data_dir else []) + list(args)
        return self.runner.invoke(cli, argv, input=input, env=env, catch_exceptions=False, prog_name="logbroker")

    def ok(self, *args: str, **kwargs) -> Result:
        result = self(*args, **kwargs)
        assert result.exit_code == 0, (result.exit_code, result.output)
        return result

    def consume_json(self, topic: str, *args: str) -> list[dict]:
        result = self.ok("consume", topic, "-e", "--json", *args)
        return [json.loads(line) for line in result.stdout.splitlines()]

    def consume_values(self, topic: str, *args: str) -> list[str]:
        return self.ok("consume", topic, "-e", *args).stdout.splitlines()


@pytest.fixture
def data_dir(tmp_path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def run(data_dir, monkeypatch) -> Cli:
    monkeypatch.delenv("LOGBROKER_DATA_DIR", raising=False)
    monkeypatch.delenv("LOGBROKER_BOOTSTRAP", raising=False)
    return Cli(data_dir)
