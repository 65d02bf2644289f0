"""The CLI and the network clients against a real ``logbroker serve`` process.

One server per module (``--listen 127.0.0.1:0``, its data directory under pytest's tmp); every wait
is bounded, and only the server this module started is stopped (SIGTERM, then SIGKILL).  Covers
what librdkafka's mock cluster does not serve (topic admin, DescribeConfigs, ListGroups /
DescribeGroups / DeleteGroups, timestamp look-ups), and the CLI using the server that owns a data
directory when run without --bootstrap.
"""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from .conftest import Cli, start_lock_holder, stop, subprocess_env
from logbroker import Consumer, Producer
from logbroker.client.producer import partition_for_key
from logbroker.storage.lock import read_lock_owner

LISTENING = re.compile(rb"logbroker listening on (\S+)")


class Server:
    def __init__(self, data_dir: str, log_path: str):
        self.data_dir = data_dir
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logbroker", "--data-dir", data_dir, "serve", "--listen", "127.0.0.1:0",
             "--initial-rebalance-delay-ms", "0"],
            stdout=subprocess.PIPE, stderr=self.log, env=subprocess_env())
        self.bootstrap = self._wait_for_address(timeout=30.0)

    def _wait_for_address(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line:
                break
            seen += line
            match = LISTENING.search(line)
            if match:
                return match.group(1).decode()
        self.stop()
        raise AssertionError(f"logbroker serve never said where it listens; stdout: {seen!r}; "
                             f"stderr: {open(self.log.name, 'rb').read()[-2000:]!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("served")
    srv = Server(str(base / "data"), str(base / "server.log"))
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.proc.returncode == 0, open(srv.log.name, "rb").read()[-2000:]


@pytest.fixture
def remote(server, run):
    """``remote("topic", "list")`` runs ``logbroker --bootstrap <server> topic list``."""

    def call(*args, input=None, ok=True):
        result = run("--bootstrap", server.bootstrap, *args, input=input)
        if ok:
            assert result.exit_code == 0, (result.exit_code, result.output)
        return result

    return call


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def poll_until(consumers, predicate, timeout: float = 20.0) -> list:
    records: list = []
    deadline = time.monotonic() + timeout
    while not predicate(records):
        assert time.monotonic() < deadline, f"timed out; got {len(records)} records"
        for consumer in consumers:
            records += consumer.poll(timeout=0.05)
    return records


# ---- topics ------------------------------------------------------------------------------------


def test_topic_create_list_describe_alter_delete(remote):
    assert remote("topic", "create", "orders", "-p", "3", "-c", "retention.ms=3600000").stdout == \
        "Created topic orders with 3 partition(s).\n"
    assert remote("topic", "create", "orders", "--if-not-exists").stdout == ""
    again = remote("topic", "create", "orders", ok=False)
    assert again.exit_code == 1 and "already exists" in again.output
    assert "orders" in remote("topic", "list").stdout.splitlines()
    listed = {t["name"]: t for t in json.loads(remote("topic", "list", "--json").stdout)}
    assert listed["orders"]["partitions"] == 3
    remote("produce", "orders", "-p", "1", input="a\nb\n")
    text = remote("topic", "describe", "orders").stdout.splitlines()
    assert text[0].startswith("Topic: orders\tTopicId: ") and text[0].endswith("\tPartitions: 3")
    assert text[1] == "Configs: retention.ms=3600000"
    assert text[3] == "\tPartition: 1\tLogStartOffset: 0\tLogEndOffset: 2\tHighWatermark: 2\tSegments: -\tSize: -"
    described = json.loads(remote("topic", "describe", "orders", "--json").stdout)
    assert described["overrides"] == {"retention.ms": "3600000"}
    assert described["config"]["retention.ms"] == "3600000" and described["config"]["cleanup.policy"] == "delete"
    assert [p["log_end_offset"] for p in described["partitions"]] == [0, 2, 0]
    # topic alter: IncrementalAlterConfigs (SET and DELETE), answered per topic
    altered = remote("topic", "alter", "orders", "-c", "retention.ms=1000", "-c", "cleanup.policy=compact")
    assert altered.stdout == "Updated topic orders: cleanup.policy=compact,retention.ms=1000\n"
    altered = remote("topic", "alter", "orders", "-d", "cleanup.policy", "-c", "retention.bytes=4096")
    assert altered.stdout == "Updated topic orders: retention.bytes=4096,retention.ms=1000\n"
    assert json.loads(remote("topic", "describe", "orders", "--json").stdout)["overrides"] == {
        "retention.bytes": "4096", "retention.ms": "1000"}
    bad = remote("topic", "alter", "orders", "-c", "retention.ms=soon", ok=False)
    assert bad.exit_code == 1 and "retention.ms" in bad.output and "INVALID_CONFIG" in bad.output
    unknown = remote("topic", "alter", "nope", "-c", "retention.ms=1", ok=False)
    assert unknown.exit_code == 1 and unknown.output.startswith("Error: ")
    assert remote("topic", "delete", "orders").stdout == "Deleted topic orders.\n"
    assert "orders" not in remote("topic", "list").stdout.splitlines()
    missing = remote("topic", "describe", "orders", ok=False)
    assert missing.exit_code == 1 and missing.output.startswith("Error: ")
    bad = remote("topic", "create", "bad/name", ok=False)
    assert bad.exit_code == 1 and bad.output.startswith("Error: ")


# ---- produce and consume -----------------------------------------------------------------------


def test_produce_and_consume_keys_headers_offsets_and_times(remote):
    remote("topic", "create", "events", "-p", "2")
    remote("produce", "events", "-K", ":", "-H", "src=cli", "-H", "v=1", "-z", "lz4", input="u1:a\nu2:b\nu1:c\n")
    time.sleep(0.02)
    remote("produce", "events", "-p", "0", input="later\n")
    records = json_lines(remote("consume", "events", "-e", "--json").stdout)
    assert len(records) == 4
    for r in [r for r in records if r["key"]]:
        assert r["partition"] == partition_for_key(r["key"].encode(), 2)
        assert r["headers"] == [["src", "cli"], ["v", "1"]]
    later = [r for r in records if r["value"] == "later"][0]
    first_ts = min(r["timestamp"] for r in records if r["key"])
    assert later["timestamp"] > first_ts
    # -o s@TIMESTAMP: the first record at or after it (ListOffsets by time, served by the server)
    assert remote("consume", "events", "-e", "-p", "0", "-o", f"s@{later['timestamp']}").stdout == "later\n"
    assert remote("consume", "events", "-e", "-o", f"s@{later['timestamp'] + 10_000}").stdout == ""
    assert remote("consume", "events", "-e", "-p", "0", "-o", "-1").stdout == "later\n"
    assert len(remote("consume", "events", "-e", "-n", "3").stdout.splitlines()) == 3
    formatted = remote("consume", "events", "-e", "-p", "0", "-f", "%t/%p/%o:%k=%s|%h\\n").stdout.splitlines()
    assert formatted[-1] == f"events/0/{later['offset']}:=later|"


def test_consume_follows_new_records_until_count(remote, server):
    remote("topic", "create", "follow")
    proc = subprocess.Popen([sys.executable, "-m", "logbroker", "--bootstrap", server.bootstrap, "consume", "follow",
                             "-n", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    try:
        time.sleep(1.0)
        remote("produce", "follow", input="one\ntwo\n")
        out, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert out == b"one\ntwo\n", err


# ---- groups ------------------------------------------------------------------------------------


def test_groups_list_describe_reset_delete(remote, server):
    remote("topic", "create", "jobs", "-p", "2")
    remote("produce", "jobs", "-K", ":", input="".join(f"k{i}:job-{i}\n" for i in range(6)))
    printed = remote("consume", "jobs", "-g", "workers", "-e").stdout.splitlines()
    assert sorted(printed) == [f"job-{i}" for i in range(6)]
    assert remote("consume", "jobs", "-g", "workers", "-e").stdout == ""
    assert "workers\tEmpty" in remote("group", "list").stdout.splitlines()
    assert {"group": "workers", "protocol_type": "consumer", "state": "Empty"} in \
        json.loads(remote("group", "list", "--json").stdout)
    remote("produce", "jobs", "-p", "0", input="job-x\n")
    text = remote("group", "describe", "workers").stdout.splitlines()
    assert text[0] == "Group: workers\tState: Empty\tProtocol: -\tGeneration: -\tMembers: 0"
    assert text[1] == "TOPIC\tPARTITION\tCOMMITTED\tLOG-END-OFFSET\tLAG\tLAG-MS\tMEMBER"
    info = json.loads(remote("group", "describe", "workers", "--json").stdout)
    rows = {r["partition"]: r for r in info["offsets"]}
    assert rows[0]["lag"] == 1 and rows[0]["lag_ms"] >= 0 and rows[0]["log_end_offset"] == rows[0]["committed"] + 1
    assert rows[1]["lag"] == 0 and rows[1]["lag_ms"] == 0
    # a live member: described with its partitions, and a reset is refused
    member = Consumer(bootstrap=server.bootstrap, group="workers", topics=["jobs"], enable_auto_commit=False)
    try:
        poll_until([member], lambda _r: len(member.assignment()) == 2)
        live = json.loads(remote("group", "describe", "workers", "--json").stdout)
        assert live["state"] == "Stable" and len(live["members"]) == 1
        assert sorted(map(tuple, live["members"][0]["assignment"])) == [("jobs", 0), ("jobs", 1)]
        assert {r["member_id"] for r in live["offsets"]} == {live["members"][0]["member_id"]}
        refused = remote("group", "reset-offsets", "workers", "--topic", "jobs", "--to-earliest", "--execute", ok=False)
        assert refused.exit_code == 1 and "active members" in refused.output
        busy = remote("group", "delete", "workers", ok=False)
        assert busy.exit_code == 1 and "cannot delete group workers" in busy.output
    finally:
        member.close()
    plan = remote("group", "reset-offsets", "workers", "--topic", "jobs:0", "--to-earliest").stdout.splitlines()
    assert plan[-1] == "(dry run: add --execute to apply)"
    reset = json.loads(remote("group", "reset-offsets", "workers", "--topic", "jobs", "--to-earliest", "--execute",
                              "--json").stdout)
    assert reset["executed"] and {r["new"] for r in reset["plan"]} == {0}
    assert len(remote("consume", "jobs", "-g", "workers", "-e").stdout.splitlines()) == 7
    shifted = json.loads(remote("group", "reset-offsets", "workers", "--topic", "jobs:0", "--shift-by", "-1",
                                "--execute", "--json").stdout)
    assert shifted["plan"][0]["new"] == shifted["plan"][0]["current"] - 1
    unknown = remote("group", "reset-offsets", "workers", "--topic", "jobs:9", "--to-earliest", ok=False)
    assert unknown.exit_code == 1 and "no partition 9" in unknown.output
    assert remote("group", "delete", "workers").stdout == "Deleted group workers.\n"
    gone = remote("group", "delete", "workers", ok=False)
    assert gone.exit_code == 1 and "no such group" in gone.output
    assert "workers" not in remote("group", "list").stdout


# ---- the CLI finds the server that owns the data directory -------------------------------------


def test_commands_that_write_use_the_server_owning_the_data_dir(server):
    owner = read_lock_owner(server.data_dir)
    assert owner.get("listen") == server.bootstrap
    local = Cli(server.data_dir)  # no --bootstrap: only the data directory
    env = {"LOGBROKER_BOOTSTRAP": ""}
    created = local("topic", "create", "owned", "-p", "2", env=env)
    assert created.exit_code == 0, created.output
    assert local("produce", "owned", "-K", ":", input="a:1\nb:2\n", env=env).exit_code == 0
    assert local.ok("topic", "alter", "owned", "-c", "retention.ms=5000", env=env).stdout == \
        "Updated topic owned: retention.ms=5000\n"
    assert sorted(local.ok("consume", "owned", "-g", "owners", "-e", env=env).stdout.splitlines()) == ["1", "2"]
    # read-only commands read the files, next to the server
    assert "owned" in local.ok("topic", "list", env=env).stdout.splitlines()
    assert sorted(local.ok("consume", "owned", "-e", env=env).stdout.splitlines()) == ["1", "2"]
    described = json.loads(local.ok("topic", "describe", "owned", "--json", env=env).stdout)
    assert all(p["segments"] is not None for p in described["partitions"])  # from the files
    reset = local.ok("group", "reset-offsets", "owners", "--topic", "owned", "--to-earliest", "--execute", env=env)
    assert "(dry run" not in reset.stdout
    assert local.ok("group", "delete", "owners", env=env).stdout == "Deleted group owners.\n"
    assert local.ok("topic", "delete", "owned", env=env).stdout == "Deleted topic owned.\n"
    assert server.proc.poll() is None and read_lock_owner(server.data_dir).get("pid") == str(server.proc.pid)


def test_a_lock_owner_that_does_not_serve_still_refuses_writers(tmp_path):
    data_dir = str(tmp_path / "data")
    holder = start_lock_holder(data_dir)
    try:
        result = Cli(data_dir)("produce", "t", input="x\n", env={"LOGBROKER_BOOTSTRAP": ""})
        assert result.exit_code == 1 and f"in use by process {holder.pid}" in result.output
    finally:
        stop(holder)


# ---- the Python clients against the server -----------------------------------------------------


def test_clients_round_trip_timestamps_and_offsets_for_times(server, remote):
    remote("topic", "create", "clock", "-p", "2")
    with Producer(bootstrap=server.bootstrap, idempotent=True) as producer:
        metas = [producer.send("clock", b"v%d" % i, key=b"k%d" % i, timestamp=1_000 + i * 10,
                               headers={"i": b"%d" % i}).result() for i in range(10)]
    assert [m.timestamp for m in metas] == [1_000 + i * 10 for i in range(10)]  # CreateTime: as sent
    for i, meta in enumerate(metas):
        assert meta.partition == partition_for_key(b"k%d" % i, 2)
    with Consumer(bootstrap=server.bootstrap, topics=["clock"]) as consumer:
        records = poll_until([consumer], lambda got: len(got) >= 10)
        by_value = {r.value: r for r in records}
        assert by_value[b"v3"].timestamp == 1_030 and by_value[b"v3"].headers == (("i", b"3"),)
        p = metas[5].partition
        found = consumer.offsets_for_times({("clock", p): 1_045, ("clock", 1 - p): 99_999})
        first_after = min((m for m in metas if m.partition == p and m.timestamp >= 1_045), key=lambda m: m.offset)
        assert found[("clock", p)] == (first_after.offset, first_after.timestamp)
        assert found[("clock", 1 - p)] is None
        assert consumer.offsets_for_times({("clock", p): -2}) == {("clock", p): (0, -1)}


def test_group_members_split_and_commits_survive(server, remote):
    remote("topic", "create", "split", "-p", "4")
    a = Consumer(bootstrap=server.bootstrap, group="pair", topics=["split"], enable_auto_commit=False)
    b = Consumer(bootstrap=server.bootstrap, group="pair", topics=["split"], enable_auto_commit=False)
    try:
        poll_until([a, b], lambda _r: len(a.assignment()) == 2 and len(b.assignment()) == 2)
        assert a.assignment() | b.assignment() == {("split", p) for p in range(4)}
        with Producer(bootstrap=server.bootstrap) as producer:
            for i in range(20):
                producer.send("split", b"%d" % i, key=b"key-%d" % i)
        got = poll_until([a, b], lambda got: len(got) >= 20)
        assert sorted(int(r.value) for r in got) == list(range(20))
        a.commit()
        b.commit()
        committed = {**a.committed(), **b.committed()}
        ends = a.end_offsets([("split", p) for p in range(4)])
        assert committed == {tp: end for tp, end in ends.items()}
    finally:
        a.close()
        b.close()
    lag = json.loads(remote("group", "describe", "pair", "--json").stdout)["offsets"]
    assert {r["lag"] for r in lag} == {0}
