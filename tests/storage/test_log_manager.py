"""The data directory as a whole: the owner lock across processes, read-only opens following a writer
in another process, the clean-shutdown marker, topic metadata and checkpoints across restarts and
crashes, and refusal of bad names and configs before anything reaches the disk."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest

from logbroker.broker import Broker
from logbroker.errors import DataDirLockedError, InvalidConfigError, InvalidTopicError, ReadOnlyError
from logbroker.records import encode_batch
from logbroker.storage.lock import is_locked, read_lock_owner
from logbroker.storage.log_manager import CLEAN_SHUTDOWN_MARKER

from helpers import tree

from ._helpers import fetch_all as values

REPO = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT = 30

CHILD = textwrap.dedent(r"""
    import json, os, sys
    from logbroker.broker import Broker
    from logbroker.records import encode_batch

    broker = Broker.open(sys.argv[1], housekeeping=False)
    print(json.dumps({"pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op, topic = cmd.pop("op"), cmd.pop("topic", None)
        result = None
        try:
            if op == "create":
                result = broker.create_topic(topic, cmd.get("partitions", 1), cmd.get("config")).topic_id
            elif op == "produce":
                data = encode_batch([(None, v.encode(), None, 1_700_000_000_000) for v in cmd["values"]])
                result = broker.produce(topic, cmd.get("partition", 0), data).last_offset
            elif op == "roll":
                broker.log(topic, 0).roll()
            elif op == "delete_records":
                result = broker.delete_records(topic, 0, cmd["offset"])
            elif op == "delete_topic":
                broker.delete_topic(topic)
            elif op == "alter":
                result = broker.alter_topic_config(topic, set=cmd.get("set"), delete=cmd.get("delete"))
            elif op == "add_partitions":
                broker.create_partitions(topic, cmd["total"])
            elif op == "close":
                broker.close()
            print(json.dumps({"ok": result}), flush=True)
        except Exception as exc:
            print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
""")


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Writer:
    """A Broker owning ``path`` in another process, driven one JSON command at a time."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
        hello = self._reply()
        self.pid = hello["pid"]
        assert self.pid == self.proc.pid

    def _reply(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=TIMEOUT)
            raise AssertionError(f"writer process ended: {self.proc.stderr.read()}")
        return json.loads(line)

    def __call__(self, op, **kwargs):
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        reply = self._reply()
        if "error" in reply:
            raise AssertionError(f"{op} failed in the writer: {reply}")
        return reply["ok"]

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        assert self.proc.returncode == -signal.SIGKILL

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "data")


@pytest.fixture
def writer_factory(path):
    writers = []

    def make():
        writers.append(Writer(path))
        return writers[-1]

    yield make
    for w in writers:
        w.stop()


def try_open_elsewhere(path):
    """Broker.open(path) in a fresh process; (exception name, owner pid, message) or ("ok", None, "")."""
    script = textwrap.dedent(f"""
        import json
        from logbroker.broker import Broker
        from logbroker.errors import DataDirLockedError
        try:
            Broker.open({str(path)!r}, housekeeping=False).close()
            print(json.dumps(["ok", None, ""]))
        except DataDirLockedError as exc:
            print(json.dumps([type(exc).__name__, exc.owner_pid, str(exc)]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT,
                         env=child_env())
    assert out.returncode == 0, out.stderr
    return tuple(json.loads(out.stdout))


# ---- the owner lock --------------------------------------------------------------------------


def test_second_writer_in_another_process_is_refused_naming_the_owner(path):
    with Broker.open(path, housekeeping=False):
        name, owner, message = try_open_elsewhere(path)
        assert (name, owner) == ("DataDirLockedError", os.getpid())
        assert f"process {os.getpid()}" in message and path in message
        assert read_lock_owner(path)["pid"] == str(os.getpid()) and is_locked(path)
    assert not is_locked(path)
    assert try_open_elsewhere(path) == ("ok", None, "")


def test_lock_held_by_another_process_and_released_when_it_is_killed(path, writer_factory):
    writer = writer_factory()
    with pytest.raises(DataDirLockedError) as info:
        Broker.open(path, housekeeping=False)
    assert info.value.owner_pid == writer.pid and f"process {writer.pid}" in str(info.value)
    writer.kill()
    assert not is_locked(path)
    assert read_lock_owner(path)["pid"] == str(writer.pid)  # stale text; the kernel dropped the lock
    with Broker.open(path, housekeeping=False):
        assert read_lock_owner(path)["pid"] == str(os.getpid())


# ---- read-only opens ---------------------------------------------------------------------------


def test_read_only_open_follows_a_writer_in_another_process(path, writer_factory):
    writer = writer_factory()
    writer("create", topic="t", config={"segment.bytes": "1024", "index.interval.bytes": "128"})
    writer("produce", topic="t", values=["a", "b"])
    with Broker.open(path, read_only=True) as ro:
        assert values(ro, "t") == [(0, b"a"), (1, b"b")]
        expected = [(0, b"a"), (1, b"b")]
        for i in range(30):  # enough to roll several segments under the reader
            vs = [f"{i}-{j}-" + "x" * 40 for j in range(3)]
            last = writer("produce", topic="t", values=vs)
            expected += [(last - 2 + j, v.encode()) for j, v in enumerate(vs)]
            if i % 7 == 0:
                assert values(ro, "t") == expected
        assert len(os.listdir(os.path.join(path, "t-0"))) > 6
        assert values(ro, "t") == expected
        assert ro.list_offsets("t", 0, -1) == (len(expected), -1)
        with pytest.raises(ReadOnlyError):
            ro.produce("t", 0, encode_batch([(None, b"no", None, 0)]))
        # a topic created after the reader opened is not known to it; the writer is unaffected
        writer("create", topic="later")
        writer("produce", topic="later", values=["z"])
    writer("close")


def test_read_only_open_sees_the_writers_log_start_offset(path, writer_factory):
    writer = writer_factory()
    writer("create", topic="t", config={"segment.bytes": "1024"})
    for i in range(20):
        writer("produce", topic="t", values=[f"{i}" + "x" * 100])
    with Broker.open(path, read_only=True) as ro:
        assert ro.list_offsets("t", 0, -2) == (0, -1)
        assert writer("delete_records", topic="t", offset=12) == 12
        values(ro, "t")  # a fetch refreshes the reader's view
        assert ro.list_offsets("t", 0, -2) == (12, -1), "reader still offers records the writer deleted"
        assert values(ro, "t")[0][0] == 12


# ---- the clean shutdown marker ---------------------------------------------------------------


def test_clean_shutdown_marker(path, writer_factory):
    marker = os.path.join(path, CLEAN_SHUTDOWN_MARKER)
    writer = writer_factory()
    writer("create", topic="t")
    writer("produce", topic="t", values=["a"])
    assert not os.path.exists(marker)  # removed as soon as a writer owns the directory
    writer("close")
    assert os.path.exists(marker)
    with Broker.open(path, read_only=True):  # a reader neither removes nor needs it
        assert os.path.exists(marker)
    assert os.path.exists(marker)

    with Broker.open(path, housekeeping=False) as broker:
        assert broker._manager.clean_start and broker.recovery_reports == []
        assert not os.path.exists(marker)
    assert os.path.exists(marker)

    writer = writer_factory()
    writer("produce", topic="t", values=["b"])
    writer.kill()
    assert not os.path.exists(marker)
    with Broker.open(path, housekeeping=False) as broker:
        assert not broker._manager.clean_start
        (report,) = broker.recovery_reports
        assert report.segments_recovered >= 1 and not report.dropped_anything
        assert values(broker, "t") == [(0, b"a"), (1, b"b")]


# ---- topics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "x" * 250, "ü", "", "a\x00b", "/etc"])
def test_bad_topic_names_are_refused_and_nothing_is_created(tmp_path, path, name):
    with Broker.open(path, housekeeping=False) as broker:
        before = tree(tmp_path)
        with pytest.raises(InvalidTopicError):
            broker.create_topic(name)
        with pytest.raises(InvalidTopicError):
            broker.delete_topic(name)
        assert tree(tmp_path) == before
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "data" / "a")


def test_topic_metadata_persists_across_clean_and_unclean_restarts(path, writer_factory):
    writer = writer_factory()
    ids = {name: writer("create", topic=name, partitions=2, config={"retention.ms": "1000"})
           for name in ("keep", "altered", "gone", "grown")}
    writer("alter", topic="altered", set={"segment.bytes": "2048", "cleanup.policy": "compact"},
           delete=["retention.ms"])
    writer("delete_topic", topic="gone")
    writer("add_partitions", topic="grown", total=3)
    writer("produce", topic="keep", partition=1, values=["k"])
    writer.kill()

    def check(broker):
        assert broker.list_topics() == ["altered", "grown", "keep"]
        for name in ("keep", "altered", "grown"):
            info = broker.describe_topic(name)
            assert info["topic_id"] == ids[name]
            for p in range(broker.partition_count(name)):
                with open(os.path.join(path, f"{name}-{p}", "partition.metadata")) as fh:
                    assert fh.read() == f"version: 0\ntopic_id: {ids[name]}\n"
        assert broker.describe_topic("keep")["overrides"] == {"retention.ms": "1000"}
        assert broker.describe_topic("altered")["overrides"] == {"segment.bytes": "2048", "cleanup.policy": "compact"}
        assert broker.describe_topic("altered")["config"]["retention.ms"] == "604800000"
        assert broker.partition_count("grown") == 3
        assert values(broker, "keep", 1) == [(0, b"k")]
        assert not any(n.startswith("gone") or n.endswith("-delete") for n in os.listdir(path))

    with Broker.open(path, housekeeping=False) as broker:  # after the crash
        check(broker)
    with Broker.open(path, housekeeping=False) as broker:  # after a clean close
        check(broker)
        new = broker.create_topic("gone")
        assert new.topic_id != ids["gone"]
        assert values(broker, "gone") == []


def test_leftover_delete_directories_are_removed_on_open(path):
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic("t")
    leftover = os.path.join(path, "0123456789abcdef-delete")
    os.makedirs(leftover)
    with open(os.path.join(leftover, "00000000000000000000.log"), "wb") as fh:
        fh.write(b"junk")
    with Broker.open(path, housekeeping=False) as broker:
        assert not os.path.exists(leftover)
        assert broker.list_topics() == ["t"]


BAD_CONFIGS = [
    {"segment.bytes": "abc"}, {"segment.bytes": "100"}, {"retention.ms": "-2"}, {"cleanup.policy": "nope"},
    {"message.timestamp.type": "Whenever"}, {"min.cleanable.dirty.ratio": "1.5"}, {"no.such.config": "1"},
    {"max.message.bytes": "-1"}, {"flush.messages": "0"}, {"compression.type": "brotli"},
    {"cleanup.policy": "delete,delete"}, {"segment.ms": "0"},
]


@pytest.mark.parametrize("config", BAD_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_invalid_config_values_are_refused(tmp_path, path, config):
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic("t", config={"retention.ms": "5000"})
        before = tree(tmp_path)
        with pytest.raises(InvalidConfigError):
            broker.create_topic("u", config=config)
        with pytest.raises(InvalidConfigError):
            broker.alter_topic_config("t", set=config)
        assert tree(tmp_path) == before
        assert broker.list_topics() == ["t"]
        assert broker.describe_topic("t")["overrides"] == {"retention.ms": "5000"}
    with Broker.open(path, housekeeping=False) as broker:
        assert broker.describe_topic("t")["overrides"] == {"retention.ms": "5000"}


# ---- checkpoints -----------------------------------------------------------------------------


def test_log_start_offset_survives_a_crash(path, writer_factory):
    writer = writer_factory()
    writer("create", topic="t", config={"segment.bytes": "1024"})
    for i in range(30):
        writer("produce", topic="t", values=[f"{i}-" + "x" * 100])
    assert writer("delete_records", topic="t", offset=17) == 17
    writer.kill()
    with Broker.open(path, housekeeping=False) as broker:
        assert broker.list_offsets("t", 0, -2) == (17, -1)
        assert [o for o, _ in values(broker, "t")] == list(range(17, 30))
    with Broker.open(path, housekeeping=False) as broker:
        assert broker.list_offsets("t", 0, -2) == (17, -1)
