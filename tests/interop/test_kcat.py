"""kcat (Debian's 1.7.1, librdkafka 2.0.2 built in) against a real ``logbroker serve`` child.

librdkafka 2.0.2 decides features from exact versions in the ApiVersions answer (PROTOCOL.md §7):
without Produce v0 advertised it silently sends gzip/snappy/lz4 uncompressed, and without
FindCoordinator v0 it cannot find a group coordinator.  The compression and ``-G`` tests check both.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

import pytest

from .conftest import subprocess_env, unique, wait_until

KCAT = shutil.which("kcat") or "/usr/bin/kcat"
TIMEOUT_S = 30
FAST = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=200", "-X", "fetch.wait.max.ms=100"]


def kcat(*args: str, input: bytes | None = None, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    result = subprocess.run([KCAT, *args], input=input, capture_output=True, timeout=timeout)
    assert result.returncode == 0, (args, result.returncode, result.stderr.decode(errors="replace"))
    return result


def test_kcat_is_the_librdkafka_2_0_2_build():
    out = subprocess.run([KCAT, "-V"], capture_output=True, text=True, timeout=10).stdout
    assert "librdkafka 2.0.2" in out, out  # the version whose quirks PROTOCOL.md §7 describes


def test_metadata_lists_topics_broker_and_controller(bootstrap):
    topic = unique("kcat-meta")
    kcat("-P", "-b", bootstrap, "-t", topic, input=b"one\n")  # auto-created by the producer's Metadata
    listing = kcat("-L", "-b", bootstrap).stdout.decode()
    port = bootstrap.rsplit(":", 1)[1]
    assert f"broker 0 at 127.0.0.1:{port} (controller)" in listing
    assert f'topic "{topic}" with 1 partitions:' in listing
    assert "partition 0, leader 0, replicas: 0, isrs: 0" in listing
    as_json = json.loads(kcat("-L", "-J", "-b", bootstrap, "-t", topic).stdout)
    assert as_json["controllerid"] == 0
    assert [(t["topic"], [p["partition"] for p in t["partitions"]]) for t in as_json["topics"]] == [(topic, [0])]


def test_produce_keys_and_headers_then_consume_them(bootstrap):
    topic = unique("kcat-kh")
    lines = b"".join(b"key%d:value %d\n" % (i, i) for i in range(20))
    kcat("-P", "-b", bootstrap, "-t", topic, "-K:", "-H", "k=v", "-H", "trace=abc", input=lines)
    out = kcat("-C", "-b", bootstrap, "-t", topic, "-e", "-f", "%k %s %h\n").stdout.decode().splitlines()
    assert out == [f"key{i} value {i} k=v,trace=abc" for i in range(20)]
    offsets = kcat("-C", "-b", bootstrap, "-t", topic, "-o", "15", "-e", "-f", "%p:%o:%k\n").stdout.split()
    assert offsets == [b"0:%d:key%d" % (i, i) for i in range(15, 20)]


def _stored_compression(data_dir: str, topic: str) -> set[str]:
    paths = sorted(glob.glob(os.path.join(data_dir, f"{topic}-0", "*.log")))
    out = subprocess.run([sys.executable, "-m", "logbroker", "inspect", "dump", "--json", *paths],
                         capture_output=True, text=True, timeout=30, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    return {json.loads(line)["compression"] for line in out.stdout.splitlines() if line.startswith("{")}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_produce_is_really_compressed(bootstrap, serve_module, codec):
    topic = unique(f"kcat-{codec}")
    values = [b"%s line %d %s" % (codec.encode(), i, b"x" * (i % 50)) for i in range(200)]
    kcat("-P", "-b", bootstrap, "-t", topic, "-z", codec, "-X", "linger.ms=50", input=b"\n".join(values) + b"\n")
    assert _stored_compression(serve_module.data_dir, topic) == {codec}
    out = kcat("-C", "-b", bootstrap, "-t", topic, "-e", "-f", "%s\n").stdout.splitlines()
    assert out == values


def test_group_consumer_commits_and_a_second_run_resumes(bootstrap):
    topic, group = unique("kcat-g"), unique("kcat-group")
    kcat("-P", "-b", bootstrap, "-t", topic, input=b"".join(b"first %d\n" % i for i in range(10)))
    group_args = ["-b", bootstrap, "-G", group, "-X", "auto.offset.reset=earliest", *FAST, "-e", "-f", "%o %s\n", topic]
    first = kcat(*group_args).stdout.decode().splitlines()
    assert first == [f"{i} first {i}" for i in range(10)]
    kcat("-P", "-b", bootstrap, "-t", topic, input=b"".join(b"second %d\n" % i for i in range(3)))
    second = kcat(*group_args).stdout.decode().splitlines()
    assert second == [f"{10 + i} second {i}" for i in range(3)], "did not resume from the committed offset"
    counted = kcat("-b", bootstrap, "-G", unique("kcat-count"), "-X", "auto.offset.reset=earliest", *FAST,
                   "-c", "4", "-f", "%o\n", topic).stdout.split()
    assert counted == [b"0", b"1", b"2", b"3"]


class GroupMember:
    """A ``kcat -G`` child that runs until told to stop; stdout and stderr are pumped by threads."""

    ASSIGNED = re.compile(r"rebalanced \(memberid [^)]*\): assigned: (.*)$")

    def __init__(self, bootstrap: str, group: str, topic: str):
        argv = [KCAT, "-u", "-b", bootstrap, "-G", group, "-X", "auto.offset.reset=earliest", *FAST,
                "-f", "%p %o %s\n", topic]  # -u: unbuffered, so lines arrive as records do
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.log: list[str] = []
        self.assignment: set[int] | None = None
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.log), daemon=True)]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream, sink: list[str]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            sink.append(line)
            if sink is self.log:
                if match := self.ASSIGNED.search(line):
                    self.assignment = {int(p) for p in re.findall(r"\[(\d+)\]", match.group(1))}
                elif "revoked:" in line:
                    self.assignment = set()

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # kcat leaves the group and commits on SIGTERM
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(10)
        for thread in self._threads:
            thread.join(5)
        return code


def test_two_group_members_split_a_topic(bootstrap):
    from confluent_kafka.admin import AdminClient, NewTopic

    topic, group = unique("kcat-split"), unique("kcat-group")
    client = AdminClient({"bootstrap.servers": bootstrap})
    client.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(10)
    del client
    members = [GroupMember(bootstrap, group, topic)]
    try:
        wait_until(lambda: members[0].assignment == {0, 1, 2, 3}, 15, what="the first member owning everything")
        members.append(GroupMember(bootstrap, group, topic))
        wait_until(lambda: all(m.assignment and len(m.assignment) == 2 for m in members), 20,
                   what="a 2+2 split")
        split = [set(m.assignment) for m in members]
        assert split[0] | split[1] == {0, 1, 2, 3}
        for p in range(4):
            kcat("-P", "-b", bootstrap, "-t", topic, "-p", str(p),
                 input=b"".join(b"p%d-%d\n" % (p, i) for i in range(10)))
        wait_until(lambda: sum(len(m.lines) for m in members) >= 40, 20, what="40 records between the two")
    finally:
        codes = [m.stop() for m in members]
    assert codes == [0] * len(members), [m.log[-5:] for m in members]
    for member, owned in zip(members, split):
        assert member.lines and {int(line.split()[0]) for line in member.lines} <= owned, \
            (member.lines[:3], member.log[-5:])
    everything = sorted(line for m in members for line in m.lines)
    assert everything == sorted(f"{p} {i} p{p}-{i}" for p in range(4) for i in range(10))
