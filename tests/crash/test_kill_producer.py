"""SIGKILL a producing process at random moments, again and again, and check nothing acknowledged is lost.

Each round starts ``tools/crash_producer.py`` on the same data directory (it prints ``<seq> <offset>``
after each acknowledged record), kills it with SIGKILL after a random 0.05-0.5 s, and then checks
the directory: every acknowledged record is present exactly once at the offset it was acknowledged
with, offsets run contiguously from 0, sequence numbers only increase (a record that was written but
not acknowledged may survive or be lost, but only as a tail: never a hole), and
``logbroker.inspect.verify_data_dir`` finds no problem.  Rounds alternate between checking with a
writer open (which recovers the directory and closes it cleanly) and a read-only open (which
changes nothing, so the next producer process does the recovery itself); every fourth round kills
at a random moment after the process starts, which may be during its start-up recovery.
"""

from __future__ import annotations

import os
import pathlib
import random
import signal
import time

import pytest

from logbroker.broker import Broker
from helpers import start_child
from storage._helpers import fetch_all

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "crash_producer.py"
TOPIC = "crash"
ROUNDS = 15
TIME_BUDGET_S = 90  # hard stop for the whole test; a round normally takes about a second
STARTUP_TIMEOUT_S = 30


def start_producer(data_dir: str, first_seq: int, seed: int):
    return start_child(SCRIPT, data_dir, TOPIC, first_seq, seed)


def check(records: list[tuple[int, bytes]], acked: dict[int, int]) -> None:
    offsets = [o for o, _ in records]
    assert offsets == list(range(len(records))), "offsets are not contiguous from 0"
    seqs = []
    for offset, value in records:
        assert value.startswith(b"seq:"), (offset, value[:40])
        seqs.append(int(value[4:].split(b".", 1)[0]))
    assert len(set(seqs)) == len(seqs), "a record is present twice"
    assert seqs == sorted(seqs), "sequence numbers go backwards: a hole or a reordering"
    at = dict(zip(seqs, offsets))
    missing = [n for n in acked if n not in at]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
    moved = [(n, acked[n], at[n]) for n in acked if at[n] != acked[n]]
    assert not moved, f"acknowledged records at other offsets than acknowledged: {moved[:5]}"


@pytest.mark.slow
def test_sigkill_while_producing_loses_nothing_acknowledged(tmp_path):
    from logbroker.inspect import verify_data_dir  # written alongside; imported here so the rest reads first

    data_dir = str(tmp_path / "data")
    rng = random.Random(20240611)
    acked: dict[int, int] = {}  # seq -> offset it was acknowledged at, over every round
    deadline = time.monotonic() + TIME_BUDGET_S
    kills_while_producing = 0
    for round_no in range(ROUNDS):
        assert time.monotonic() < deadline, f"time budget spent after {round_no} rounds"
        proc, lines, ready, reader = start_producer(data_dir, round_no * 1_000_000, round_no)
        try:
            early = round_no % 4 == 3
            if not early:
                assert ready.wait(STARTUP_TIMEOUT_S), "the producer never got ready"
                assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(rng.uniform(0.05, 0.5))
            exited_by_itself = proc.poll() is not None
            if not exited_by_itself:
                os.kill(proc.pid, signal.SIGKILL)  # only the process this test started
            proc.wait(timeout=STARTUP_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=STARTUP_TIMEOUT_S)
        reader.join(timeout=STARTUP_TIMEOUT_S)
        stderr = proc.stderr.read().decode()
        proc.stdout.close()
        proc.stderr.close()
        assert not exited_by_itself and proc.returncode == -signal.SIGKILL, (proc.returncode, stderr)
        this_round = 0
        for line in lines:
            if not line.endswith(b"\n"):
                continue  # cut by the kill: not a complete acknowledgement
            n, offset = map(int, line.split())
            assert n not in acked
            acked[n] = offset
            this_round += 1
        kills_while_producing += this_round > 0

        if round_no % 2 == 0:
            with Broker.open(data_dir, housekeeping=False) as broker:  # recovers the directory
                for report in broker.recovery_reports:
                    assert report.log_end_offset >= max(acked.values(), default=-1) + 1
                check(fetch_all(broker, TOPIC), acked)
            assert verify_data_dir(data_dir) == []
        else:
            with Broker.open(data_dir, read_only=True) as reader_broker:
                check(fetch_all(reader_broker, TOPIC), acked)

    assert kills_while_producing >= ROUNDS // 2, "too few rounds were killed while producing"
    assert len(acked) > 100
    with Broker.open(data_dir, housekeeping=False) as broker:
        records = fetch_all(broker, TOPIC)
        check(records, acked)
        assert len(broker.log(TOPIC, 0).segments) > 1  # rolls happened during the run
    assert verify_data_dir(data_dir) == []
