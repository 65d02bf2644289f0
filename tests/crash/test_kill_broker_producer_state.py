"""SIGKILL a process appending idempotent batches, reopen its data directory, and retry as a producer would.

Each round starts ``tools/crash_idempotent_producer.py`` with one fixed producer id (it prints
``<base sequence> <records> <base offset>`` after each fsynced batch), kills it with SIGKILL after a
random 0.2-0.6 s, and reopens the directory in this process (which recovers it and rebuilds the
producer state from the newest snapshot and the log after it).  Then, as a producer whose last
acknowledgement may have been lost: re-sending the producer's last batch (same producer id, epoch and
sequences) is answered as a duplicate with the original offsets and appends nothing; re-sending the
last acknowledged batch, when a later unacknowledged one survived, is a duplicate or refused as out of
order, never appended; the next sequence is accepted; a sequence gap gets OutOfOrderSequenceError.
The next round's process continues the same producer id from there.  The records carry 2023
timestamps, far older than ``producer.id.expiration.ms``: a restart that expired producers by their
batch timestamps would forget this one, and the retry would be appended a second time.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import random
import signal
import time

import pytest

from logbroker.broker import Broker
from logbroker.errors import OutOfOrderSequenceError
from logbroker.inspect import verify_data_dir
from helpers import start_child
from storage._helpers import fetch_all

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "crash_idempotent_producer.py"
TOPIC = "idem"
PRODUCER_ID = 4242
ROUNDS = 3
STARTUP_TIMEOUT_S = 30

_spec = importlib.util.spec_from_file_location("crash_idempotent_producer", SCRIPT)
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


def run_until_killed(data_dir: str, first_seq: int, seed: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """One child process, killed while producing; the (sequence, records, offset) it acknowledged."""
    proc, lines, ready, reader = start_child(SCRIPT, data_dir, TOPIC, PRODUCER_ID, first_seq, seed)
    try:
        assert ready.wait(STARTUP_TIMEOUT_S), "the child never got ready"
        time.sleep(rng.uniform(0.2, 0.6))
        assert proc.poll() is None, proc.stderr.read().decode()
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
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, stderr)
    return [tuple(map(int, line.split())) for line in lines if line.endswith(b"\n")]


def batch_boundaries(broker: Broker) -> list[tuple[int, int, int]]:
    """(base sequence, records, base offset) of every stored batch, from the batch headers."""
    log = broker.log(TOPIC, 0)
    out = []
    for segment in log.segments:
        for _, header, _ in segment.batches_from():
            assert header.producer_id == PRODUCER_ID and header.producer_epoch == 0
            out.append((header.base_sequence, header.records_count, header.base_offset))
    return out


@pytest.mark.slow
def test_producer_state_survives_sigkill(tmp_path):
    data_dir = str(tmp_path / "data")
    rng = random.Random(20240612)
    next_seq = 0
    acked_total = 0
    for round_no in range(ROUNDS):
        acked = run_until_killed(data_dir, next_seq, round_no, rng)
        assert acked, "nothing was acknowledged before the kill"
        acked_total += len(acked)
        with Broker.open(data_dir, housekeeping=False) as broker:
            batches = batch_boundaries(broker)
            # everything acknowledged is there, at its offset, exactly once
            assert set(acked) <= set(batches)
            assert [b[0] for b in batches] == sorted(b[0] for b in batches)
            values = [v for _, v in fetch_all(broker, TOPIC)]
            assert len(values) == len(set(values)) == sum(b[1] for b in batches)
            last_acked = acked[-1]
            assert batches.index(last_acked) >= len(batches) - 2  # at most one unacknowledged batch after it
            end = broker.log(TOPIC, 0).log_end_offset

            # the producer's last batch, sent again: a duplicate with the original offsets
            last_seq, last_count, last_offset = batches[-1]
            info = broker.produce(TOPIC, 0, tool.idempotent_batch(PRODUCER_ID, last_seq, last_count))
            assert info.duplicate and (info.base_offset, info.last_offset) == (last_offset, last_offset + last_count - 1)
            if last_acked != batches[-1]:
                try:
                    info = broker.produce(TOPIC, 0, tool.idempotent_batch(PRODUCER_ID, *last_acked[:2]))
                except OutOfOrderSequenceError:
                    pass  # only each producer's last batch is in a snapshot (Kafka's trade-off)
                else:
                    assert info.duplicate and info.base_offset == last_acked[2]
            assert broker.log(TOPIC, 0).log_end_offset == end, "a retried batch was appended"

            # a gap is refused; the next sequence goes in at the log end
            next_seq = last_seq + last_count
            with pytest.raises(OutOfOrderSequenceError):
                broker.produce(TOPIC, 0, tool.idempotent_batch(PRODUCER_ID, next_seq + 1, 1))
            info = broker.produce(TOPIC, 0, tool.idempotent_batch(PRODUCER_ID, next_seq, 2))
            assert not info.duplicate and info.base_offset == end
            next_seq += 2
        assert verify_data_dir(data_dir) == []
    with Broker.open(data_dir, housekeeping=False) as broker:
        assert len(broker.log(TOPIC, 0).segments) > 1  # rolls (and snapshots) happened during the run
    assert acked_total > 20
