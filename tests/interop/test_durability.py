"""SIGKILL ``logbroker serve`` while real librdkafka producers and a consumer group are busy.

Two idempotent ``acks=all`` confluent-kafka producers stream records into a 3-partition topic and
write down every delivery report that came back without an error; a group member reads and commits
offsets synchronously, writing down each commit the broker confirmed (and the one in flight).  When
enough has been acknowledged the server gets SIGKILL; a new ``logbroker serve`` opens the same
directory, and then every acknowledged record must be at its offset with its value, no record may
appear twice, offsets run from 0 without holes, the group's committed offsets must be the last
confirmed commit (or the one that was in flight at the kill), and ``logbroker inspect verify`` must
find the directory clean once that server has stopped.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .conftest import subprocess_env, wait_until

TOPIC, GROUP, PARTITIONS = "durable", "durable-group", 3
PER_PRODUCER = 100_000  # an upper bound: paced at ~5000/s, the kill comes long before
KILL_AFTER_ACKED = 2500
TIME_BUDGET_S = 30
# Fail fast instead of retrying for minutes against a dead broker.
QUICK = {"socket.timeout.ms": 3000, "reconnect.backoff.max.ms": 200, "socket.connection.setup.timeout.ms": 2000}


class Writer(threading.Thread):
    """One idempotent acks=all producer; ``acked`` holds (partition, offset, value) per good report."""

    def __init__(self, bootstrap: str, name: str, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 2, "message.timeout.ms": 8000, "client.id": name, **QUICK})
        self.stop = stop
        self.acked: list[tuple[int, int, bytes]] = []
        self.failed = 0
        self.sent = 0

    def _report(self, err, msg) -> None:
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            self.failed += 1

    def run(self) -> None:
        for seq in range(PER_PRODUCER):
            if self.stop.is_set():
                break
            value = b"%s-%06d-" % (self.name.encode(), seq) + b"x" * 100
            while True:
                try:
                    self.producer.produce(TOPIC, value=value, partition=seq % PARTITIONS, on_delivery=self._report)
                    break
                except BufferError:
                    self.producer.poll(0.01)
            self.sent += 1
            self.producer.poll(0)
            if seq % 50 == 49:
                time.sleep(0.01)  # paced, so that records are still being sent when the kill comes
        self.producer.poll(0.1)


class Committer(threading.Thread):
    """A group member that reads and commits, one commit in flight at a time; remembers which commits
    the broker confirmed and which were sent (a commit in flight at the kill may or may not survive)."""

    def __init__(self, bootstrap: str, stop: threading.Event):
        super().__init__(name="committer", daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                                  "heartbeat.interval.ms": 200, "on_commit": self._on_commit, **QUICK})
        self.stop = stop
        self.confirmed: dict[int, int] = {}
        self.attempted: dict[int, set[int]] = {p: set() for p in range(PARTITIONS)}
        self.in_flight = False
        self.error: BaseException | None = None

    def _on_commit(self, err, partitions) -> None:  # runs inside poll()
        self.in_flight = False
        if err is None:
            for tp in partitions:
                if tp.error is None:
                    self.confirmed[tp.partition] = tp.offset

    def run(self) -> None:
        position: dict[int, int] = {}
        try:
            self.consumer.subscribe([TOPIC])
            while not self.stop.is_set():
                msg = self.consumer.poll(0.05)
                if msg is not None and msg.error() is None:
                    position[msg.partition()] = msg.offset() + 1
                if self.in_flight or sum(position.values()) - sum(self.confirmed.values()) < 150:
                    continue
                offsets = [TopicPartition(TOPIC, p, o) for p, o in sorted(position.items())]
                for tp in offsets:
                    self.attempted[tp.partition].add(tp.offset)
                self.in_flight = True
                self.consumer.commit(offsets=offsets, asynchronous=True)
        except BaseException as exc:  # reported by the test
            self.error = exc


def read_everything(bootstrap: str) -> dict[int, list[tuple[int, bytes]]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "durability-reader", "enable.auto.commit": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10) for p in range(PARTITIONS)}
        assert all(low == 0 for low, _ in ends.values()), ends
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        stored: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        total = sum(high for _, high in ends.values())
        deadline = time.monotonic() + 30
        while sum(map(len, stored.values())) < total and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                stored[msg.partition()].append((msg.offset(), msg.value()))
        assert sum(map(len, stored.values())) == total, f"read {sum(map(len, stored.values()))} of {total}"
        return stored
    finally:
        consumer.close()


def close_within(client, timeout: float) -> None:
    """Close a librdkafka consumer from a helper thread so a slow LeaveGroup cannot hang the test."""
    closer = threading.Thread(target=client.close, daemon=True)
    closer.start()
    closer.join(timeout)
    assert not closer.is_alive(), f"consumer.close() still running after {timeout}s"


def check_records(stored: dict[int, list[tuple[int, bytes]]], acked: list[tuple[int, int, bytes]]) -> None:
    for p, records in stored.items():
        assert [o for o, _ in records] == list(range(len(records))), f"partition {p}: offsets have holes"
    at = {(p, o): v for p, records in stored.items() for o, v in records}
    lost = [(p, o) for p, o, v in acked if at.get((p, o)) != v]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged records lost or moved, e.g. {lost[:5]}"
    values = [v for records in stored.values() for _, v in records]
    duplicates = len(values) - len(set(values))
    assert duplicates == 0, f"{duplicates} records stored twice"


def check_commits(bootstrap: str, committer: Committer, stored: dict[int, list]) -> None:
    confirmed, attempted = dict(committer.confirmed), committer.attempted
    client = AdminClient({"bootstrap.servers": bootstrap})
    group = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)],
                                               request_timeout=10)[GROUP].result(10)
    committed = {tp.partition: tp.offset for tp in group.topic_partitions if tp.offset >= 0}
    for p in range(PARTITIONS):
        later = {o for o in attempted[p] if o > confirmed.get(p, -1)}  # in flight at the kill: either way
        if p in confirmed:
            assert committed.get(p) == confirmed[p] or committed.get(p) in later, (p, committed.get(p), confirmed[p])
        else:
            assert committed.get(p) is None or committed[p] in later, (p, committed.get(p))
        assert committed.get(p, 0) <= len(stored[p]), "a committed offset beyond the log end"


@pytest.mark.slow
@pytest.mark.parametrize("producers", ["abandoned", "ride-through"])
def test_sigkill_mid_stream_loses_no_acknowledged_record_or_commit(fresh_server, tmp_path, producers):
    """``abandoned``: the producers' unanswered records are purged at the kill.  ``ride-through``: the
    server comes back on the same port and the same idempotent producers carry on, retrying what was
    in flight; then every record sent must be stored exactly once."""
    data_dir = tmp_path / "data"
    server = fresh_server(data_dir)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])[TOPIC].result(10)
    del admin

    stop_writers, stop_committer = threading.Event(), threading.Event()
    writers = [Writer(server.bootstrap, f"writer{i}", stop_writers) for i in range(2)]
    committer = Committer(server.bootstrap, stop_committer)
    threads = (*writers, committer)
    for thread in threads:
        thread.start()
    restarted = None
    try:
        wait_until(lambda: sum(len(w.acked) for w in writers) >= KILL_AFTER_ACKED and committer.confirmed,
                   TIME_BUDGET_S, what=f"{KILL_AFTER_ACKED} acknowledged records and a confirmed commit")
        assert all(w.is_alive() for w in writers), "a writer finished before the kill: raise PER_PRODUCER"
        unanswered = sum(w.sent - len(w.acked) - w.failed for w in writers)
        server.kill()  # SIGKILL, mid-stream
        stop_committer.set()
        if producers == "abandoned":
            stop_writers.set()
        restarted = fresh_server(data_dir, port=server.port)
        if producers == "ride-through":
            before = sum(len(w.acked) for w in writers)
            wait_until(lambda: sum(len(w.acked) for w in writers) >= before + 1000, 30,
                       what="the producers acknowledged again after the restart")
    finally:
        stop_writers.set()
        stop_committer.set()
        for thread in threads:
            thread.join(15)
    assert not any(t.is_alive() for t in threads)
    assert committer.error is None, committer.error
    close_within(committer.consumer, 15)
    assert unanswered > 0, "nothing was in flight at the kill"
    for writer in writers:
        if producers == "abandoned":
            writer.producer.purge()
        assert writer.producer.flush(20) == 0
    acked = [a for w in writers for a in w.acked]
    if producers == "ride-through":
        assert [w.failed for w in writers] == [0, 0], "records failed although the broker came back"
        assert len(acked) == sum(w.sent for w in writers)

    stored = read_everything(restarted.bootstrap)
    check_records(stored, acked)
    check_commits(restarted.bootstrap, committer, stored)

    assert restarted.terminate() == 0, restarted.log()
    verify = subprocess.run([sys.executable, "-m", "logbroker", "inspect", "verify", str(data_dir)],
                            capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert verify.returncode == 0, verify.stdout + verify.stderr
