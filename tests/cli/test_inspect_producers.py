"""``logbroker inspect producers`` and ``inspect dump`` of ``.snapshot`` files, over real data directories."""

from __future__ import annotations

import json
import os

import pytest

from helpers import tree
from logbroker.broker import Broker
from logbroker.client import Producer

from .conftest import start_lock_holder, stop


@pytest.fixture
def produced(data_dir) -> dict:
    """Topic ``t`` (2 partitions) written by two idempotent producers, then a plain topic ``plain``."""
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.create_topic("t", partitions=2)
        broker.create_topic("plain")
        ids = []
        for rounds in (3, 1):
            with Producer(broker, idempotent=True, linger_ms=0) as producer:
                ids.append(producer.producer_id)
                for i in range(rounds):
                    for partition in (0, 1):
                        producer.send("t", b"x%d" % i, partition=partition)
                        producer.send("t", b"y%d" % i, partition=partition)
                    producer.flush()
        with Producer(broker, linger_ms=0) as producer:
            producer.send("plain", b"not idempotent").result()
    return {"ids": ids}


def test_producers_json_lists_every_producer_per_partition(run, data_dir, produced):
    first, second = produced["ids"]
    rows = [json.loads(line) for line in run.ok("inspect", "producers", data_dir, "--json").stdout.splitlines()]
    got = sorted((r["topic"], r["partition"], r["producer_id"], r["epoch"], r["last_sequence"], r["last_offset"])
                 for r in rows)
    # producer 1: 3 flushes of 2 records per partition (sequences 0..5, offsets 0..5); producer 2 after it
    assert got == sorted([("t", p, first, 0, 5, 5) for p in (0, 1)] + [("t", p, second, 0, 1, 7) for p in (0, 1)])
    assert all(r["batches"][-1]["first_sequence"] == r["last_sequence"] - 1 for r in rows)


def test_producers_table_reads_without_the_lock_and_changes_nothing(run, data_dir, produced):
    holder = start_lock_holder(data_dir)
    try:
        before = tree(data_dir)
        result = run.ok("inspect", "producers", data_dir)
        after = tree(data_dir)
    finally:
        stop(holder)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITION", "PRODUCER_ID", "EPOCH", "LAST_SEQUENCE", "LAST_OFFSET",
                                "LAST_TIMESTAMP"]
    assert len(lines) == 5 and all(line.split()[0] == "t" for line in lines[1:])
    assert str(produced["ids"][0]) in result.stdout
    assert after == before


def test_producers_of_a_directory_without_idempotent_producers(run, data_dir):
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.create_topic("plain")
    result = run.ok("inspect", "producers", data_dir)
    assert result.stdout.strip() == "No idempotent producers in 1 partition(s)."
    assert run.ok("inspect", "producers", data_dir, "--json").stdout == ""


def test_producers_survive_a_damaged_snapshot_and_an_unreadable_partition_fails(run, data_dir, produced):
    directory = os.path.join(data_dir, "t-0")
    snapshot = next(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".snapshot"))
    with open(snapshot, "r+b") as fh:
        fh.seek(12)
        fh.write(b"\xff")
    rows = [json.loads(line) for line in run.ok("inspect", "producers", data_dir, "--json").stdout.splitlines()]
    assert len([r for r in rows if r["partition"] == 0]) == 2  # rebuilt from the log instead
    assert os.path.exists(snapshot)  # a read-only look deletes nothing
    for name in os.listdir(os.path.join(data_dir, "plain-0")):
        os.unlink(os.path.join(data_dir, "plain-0", name))
    result = run("inspect", "producers", data_dir)
    assert result.exit_code == 1
    assert "plain-0:" in result.stderr and "no log segments" in result.stderr


def test_dump_decodes_a_snapshot_file(run, data_dir, produced):
    directory = os.path.join(data_dir, "t-1")
    names = sorted(n for n in os.listdir(directory) if n.endswith(".snapshot"))
    assert names == ["00000000000000000008.snapshot"]  # written at the clean close
    path = os.path.join(directory, names[0])
    lines = run.ok("inspect", "dump", path).stdout.splitlines()
    assert lines[0] == f"Dumping {path}"
    first, second = produced["ids"]
    assert lines[1].startswith(f"producerId: {first} producerEpoch: 0 coordinatorEpoch: -1 ")
    assert "firstSequence: 4 lastSequence: 5 lastOffset: 5 offsetDelta: 1" in lines[1]
    assert "firstSequence: 0 lastSequence: 1 lastOffset: 7 offsetDelta: 1" in lines[2]
    items = [json.loads(line) for line in run.ok("inspect", "dump", path, "--json").stdout.splitlines()]
    assert [(i["producer_id"], i["last_offset"], i["current_txn_first_offset"]) for i in items] == [
        (first, 5, -1), (second, 7, -1)]
    with open(path, "r+b") as fh:
        fh.truncate(20)
    result = run("inspect", "dump", path)
    assert result.exit_code == 1 and "ERROR at position 0" in result.stdout
    verify = run("inspect", "verify", data_dir)
    assert verify.exit_code == 1 and path in verify.stdout
