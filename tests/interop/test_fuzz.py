"""Garbage at a real ``logbroker serve`` from raw sockets on 127.0.0.1, then a real client still works.

Cases, drawn from a seeded ``random.Random`` (so a failure reproduces with the same seed): random
bytes; a huge, negative or zero length prefix; valid requests cut short at a random byte; a valid
request header naming an unknown API key; a valid header of every served API and version with a
random body; valid read-only requests with random bytes overwritten; a valid request followed by
garbage on the same connection; a Produce whose record batch is corrupted inside its CRC.

The server runs with ``--no-auto-create`` so no mutated topic name can create a topic.  Afterwards:
the process is alive, no handler raised (the log has no traceback), every ``.log`` file is byte for
byte what it was before the garbage, confluent-kafka can still produce and consume, the topic list is
unchanged, SIGTERM exits 0 and ``logbroker inspect verify`` finds the directory clean.
"""

from __future__ import annotations

import hashlib
import pathlib
import random
import select
import socket
import struct
import subprocess
import sys
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.record.default_records import DefaultRecordBatchBuilder

from logbroker.protocol import SUPPORTED, encode_request

from .conftest import subprocess_env

TOPIC = "fuzz-target"
SEED = 20240611
CASES = 600
TIME_BUDGET_S = 40
SOCKET_TIMEOUT_S = 5.0
BATCH = 30  # connections at once
QUIET_S = 0.4
REPLY_S = 10.0
CORRUPT = "produce with a corrupted batch"


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def header(api_key: int, version: int, correlation_id: int, client_id: bytes | None = b"fuzz") -> bytes:
    client = struct.pack(">h", -1) if client_id is None else struct.pack(">h", len(client_id)) + client_id
    flexible_tags = b"\x00" if (api_key, version) in FLEXIBLE else b""
    return struct.pack(">hhi", api_key, version, correlation_id) + client + flexible_tags


FLEXIBLE = {(18, 3), (18, 4)}  # the only flexible versions served (PROTOCOL.md §8)


def record_batch(count: int = 3) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(count):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"k%d" % i, value=b"fuzz value %d" % i, headers=[])
    return bytes(builder.build())


def valid_requests() -> dict[str, bytes]:
    """Whole frames of harmless requests (nothing they do changes the data directory)."""
    return {
        "api_versions_v0": encode_request(18, 0, 1, "fuzz", {}),
        "api_versions_v3": encode_request(18, 3, 2, "fuzz", {"client_software_name": "fuzz",
                                                              "client_software_version": "1"}),
        "metadata_v4": encode_request(3, 4, 3, "fuzz", {"topics": [{"name": TOPIC}],
                                                        "allow_auto_topic_creation": False}),
        "metadata_v0": encode_request(3, 0, 4, "fuzz", {"topics": []}),
        "fetch_v11": encode_request(1, 11, 5, "fuzz", {
            "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
            "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
            "topics": [{"topic": TOPIC, "partitions": [{"partition": 0, "current_leader_epoch": -1,
                                                         "fetch_offset": 0, "log_start_offset": -1,
                                                         "partition_max_bytes": 1 << 20}]}]}),
        "list_offsets_v2": encode_request(2, 2, 6, "fuzz", {
            "replica_id": -1, "isolation_level": 0,
            "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "timestamp": -1}]}]}),
        "find_coordinator_v1": encode_request(10, 1, 7, "fuzz", {"key": "fuzz-group", "key_type": 0}),
        "list_groups_v2": encode_request(16, 2, 8, "fuzz", {}),
        "describe_groups_v3": encode_request(15, 3, 9, "fuzz", {"groups": ["fuzz-group"],
                                                                "include_authorized_operations": False}),
        "offset_fetch_v3": encode_request(9, 3, 10, "fuzz", {"group_id": "fuzz-group", "topics": None}),
    }


def produce_request(records: bytes, correlation_id: int = 11) -> bytes:
    return encode_request(0, 7, correlation_id, "fuzz", {
        "transactional_id": None, "acks": -1, "timeout_ms": 5000,
        "topic_data": [{"name": TOPIC, "partition_data": [{"index": 0, "records": records}]}]})


class Case:
    def __init__(self, name: str, data: bytes, *, half_close: bool = False):
        self.name, self.data, self.half_close = name, data, half_close


def cases(rng: random.Random) -> list[Case]:
    valid = valid_requests()
    served = sorted((key, version) for key, (low, high) in SUPPORTED.items() for version in range(low, high + 1))
    unknown_keys = [k for k in (4, 5, 6, 7, 17, 23, 24, 36, 50, 57, 60, 68, 71, 76, 99, 1000, 32767, -1, -32768)
                    if k not in SUPPORTED]
    out: list[Case] = []
    for i in range(CASES):
        kind = i % 9
        if kind == 0:
            out.append(Case("random bytes", rng.randbytes(rng.choice([1, 3, 4, 7, 64, 500, 4096]))))
        elif kind == 1:
            size = rng.choice([0x7FFFFFFF, 100 * 1024 * 1024 + 1, -1, -0x80000000, 0, 1, 2, 5])
            out.append(Case(f"length prefix {size}", struct.pack(">i", size) + rng.randbytes(rng.randint(0, 64))))
        elif kind == 2:
            name, whole = rng.choice(sorted(valid.items()))
            cut = rng.randint(1, len(whole) - 1)
            out.append(Case(f"{name} cut at {cut}", whole[:cut], half_close=rng.random() < 0.5))
        elif kind == 3:
            key = rng.choice(unknown_keys)
            out.append(Case(f"unknown api key {key}",
                            frame(header(key, rng.randint(0, 20), i) + rng.randbytes(rng.randint(0, 40)))))
        elif kind in (4, 5):
            key, version = rng.choice(served)
            body = rng.randbytes(rng.choice([0, 1, 2, 4, 8, 16, 64, 300]))
            out.append(Case(f"api {key} v{version} with a garbage body", frame(header(key, version, i) + body)))
        elif kind == 6:
            name, whole = rng.choice(sorted(valid.items()))
            data = bytearray(whole)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(4, len(data))] = rng.randrange(256)
            out.append(Case(f"{name} with bytes overwritten", bytes(data)))
        elif kind == 7:
            name, whole = rng.choice(sorted(valid.items()))
            out.append(Case(f"{name} then garbage", whole + rng.randbytes(rng.randint(1, 200))))
        else:
            batch = bytearray(record_batch())
            position = rng.randrange(21, len(batch))  # after the CRC field: covered by the CRC
            batch[position] ^= 1 << rng.randrange(8)
            out.append(Case(CORRUPT, produce_request(bytes(batch), i)))
    return out


def throw(port: int, batch: list[Case]) -> list[bytes]:
    """Send each case on its own connection, all at once; collect what comes back on each until the
    server closes it, or for at most QUIET_S (a partial frame is rightly waited on) -- longer, up to
    REPLY_S, for the corrupted produce, whose answer is checked."""
    socks = []
    try:
        for case in batch:
            sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S)
            socks.append(sock)
            try:
                sock.sendall(case.data)
                if case.half_close:
                    sock.shutdown(socket.SHUT_WR)
            except (ConnectionResetError, BrokenPipeError):
                pass  # the server may close on the first bad bytes before the rest is sent
        replies = [b""] * len(batch)
        open_ = {sock.fileno(): i for i, sock in enumerate(socks)}
        start = time.monotonic()
        while open_:
            waiting_for_reply = any(batch[i].name == CORRUPT and not replies[i] for i in open_.values())
            remaining = start + (REPLY_S if waiting_for_reply else QUIET_S) - time.monotonic()
            if remaining <= 0:
                break
            readable, _, _ = select.select(list(open_), [], [], remaining)
            for fd in readable:
                i = open_[fd]
                try:
                    chunk = socks[i].recv(65536)
                except (ConnectionResetError, socket.timeout):
                    chunk = b""
                if chunk:
                    replies[i] += chunk
                else:
                    del open_[fd]
        return replies
    finally:
        for sock in socks:
            sock.close()


def snapshot(data_dir: str) -> dict[str, str]:
    """sha256 of every segment file (all topics, ``__consumer_offsets`` included)."""
    return {str(path.relative_to(data_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(pathlib.Path(data_dir).glob("*/*.log"))}


def corrupt_produce_answer(reply: bytes) -> int:
    """The partition error code of a Produce v7 response to ``produce_request`` (one topic, one partition)."""
    size, correlation_id = struct.unpack_from(">ii", reply)
    assert size == len(reply) - 4
    pos = 8
    (topics,) = struct.unpack_from(">i", reply, pos)
    assert topics == 1
    (name_len,) = struct.unpack_from(">h", reply, pos + 4)
    pos += 6 + name_len
    (partitions,) = struct.unpack_from(">i", reply, pos)
    assert partitions == 1
    index, error_code = struct.unpack_from(">ih", reply, pos + 4)
    return error_code


@pytest.mark.slow
def test_garbage_from_raw_sockets_changes_nothing_and_real_clients_still_work(fresh_server, tmp_path):
    server = fresh_server(tmp_path / "data", "--no-auto-create")
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])[TOPIC].result(10)
    producer = Producer({"bootstrap.servers": server.bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(40):
        producer.produce(TOPIC, value=b"before-%d" % i, partition=i % 2)
    assert producer.flush(15) == 0
    topics_before = sorted(admin.list_topics(timeout=10).topics)
    files_before = snapshot(server.data_dir)

    rng = random.Random(SEED)
    deadline = time.monotonic() + TIME_BUDGET_S
    thrown = 0
    corrupt_answers: list[int] = []
    everything = cases(rng)
    for first in range(0, len(everything), BATCH):
        assert time.monotonic() < deadline, f"time budget spent after {thrown} cases"
        batch = everything[first:first + BATCH]
        for case, reply in zip(batch, throw(server.port, batch)):
            if case.name == CORRUPT:
                assert reply, "no answer to a produce with a corrupted batch"
                corrupt_answers.append(corrupt_produce_answer(reply))
        thrown += len(batch)
        assert server.alive(), f"server died during cases {first}-{thrown}; log:\n{server.log()[-3000:]}"
    assert server.alive(), server.log()[-3000:]
    assert set(corrupt_answers) == {2}, f"CORRUPT_MESSAGE expected, got {sorted(set(corrupt_answers))}"

    log = server.log()
    assert "Traceback" not in log, "a handler raised on garbage:\n" + log[log.index("Traceback") - 300:][:4000]
    assert snapshot(server.data_dir) == files_before, "segment files changed under garbage"
    assert sorted(admin.list_topics(timeout=10).topics) == topics_before

    for i in range(20):
        producer.produce(TOPIC, value=b"after-%d" % i, partition=i % 2)
    assert producer.flush(15) == 0
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "fuzz-check", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(2)])
        values = []
        end = time.monotonic() + 20
        while len(values) < 60 and time.monotonic() < end:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
    finally:
        consumer.close()
    assert sorted(values) == sorted([b"before-%d" % i for i in range(40)] + [b"after-%d" % i for i in range(20)])
    assert sorted(admin.list_topics(timeout=10).topics) == topics_before
    del admin, producer

    assert server.terminate() == 0, server.log()[-3000:]
    verify = subprocess.run([sys.executable, "-m", "logbroker", "inspect", "verify", server.data_dir],
                            capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert verify.returncode == 0, verify.stdout + verify.stderr
