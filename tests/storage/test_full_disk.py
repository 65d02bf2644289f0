"""A full disk refuses the write with KafkaStorageError, loses nothing, and the broker keeps serving."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from logbroker import Broker, Consumer
from logbroker.errors import KafkaStorageError
from logbroker.inspect import verify_data_dir
from logbroker.records import encode_batch


def _fill_until_refused(broker: Broker, topic: str) -> tuple[list[bytes], Exception]:
    acknowledged = []
    for i in range(100_000):
        value = b"%08d" % i + b"x" * 1000
        try:
            broker.produce(topic, 0, encode_batch([(None, value, None, 1_700_000_000_000)]))
        except KafkaStorageError as exc:
            return acknowledged, exc
        acknowledged.append(value)
    raise AssertionError("the disk never filled up")


def _assert_everything_acknowledged_is_there(data_dir: str, topic: str, acknowledged: list[bytes]) -> None:
    with Broker.open(data_dir) as broker:
        consumer = Consumer(broker, topics=[topic])
        values = []
        for _ in range(10_000):
            records = consumer.poll(max_records=10_000)
            if not records:
                break
            values += [r.value for r in records]
    assert values == acknowledged
    assert verify_data_dir(data_dir) == []


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 1 MiB tmpfs: a real ENOSPC.  Needs root (CI runs as root)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"mounting a tmpfs needs root: {result.stderr}"
    yield str(mount_point)
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_enospc_refuses_the_append_and_keeps_every_acknowledged_record(tiny_filesystem):
    data_dir = os.path.join(tiny_filesystem, "data")
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.create_topic("t", config={"segment.bytes": "10000000"})
        acknowledged, error = _fill_until_refused(broker, "t")
        assert "No space left on device" in str(error)
        assert len(acknowledged) > 100
        # the broker still serves reads of everything acknowledged
        log = broker.log("t", 0)
        assert log.log_end_offset == len(acknowledged)
        assert log.read(0).records
    _assert_everything_acknowledged_is_there(data_dir, "t", acknowledged)


def test_file_size_limit_refuses_the_append_without_a_partial_batch(tmp_path):
    # RLIMIT_FSIZE makes a write past the limit fail (EFBIG) like a full disk, for any user.
    data_dir = str(tmp_path / "data")
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.create_topic("t", config={"segment.bytes": "10000000"})
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
        from logbroker import Broker
        from logbroker.errors import KafkaStorageError
        from logbroker.records import encode_batch
        with Broker.open({data_dir!r}, housekeeping=False) as broker:
            for i in range(10_000):
                value = b"%08d" % i + b"x" * 1000
                try:
                    broker.produce("t", 0, encode_batch([(None, value, None, 1_700_000_000_000)]))
                except KafkaStorageError as exc:
                    print("REFUSED", i, exc, flush=True)
                    break
                print("ACK", i, flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("REFUSED"), lines[-3:]
    acked = [int(line.split()[1]) for line in lines if line.startswith("ACK")]
    assert acked == list(range(len(acked))) and len(acked) > 100
    _assert_everything_acknowledged_is_there(data_dir, "t", [b"%08d" % i + b"x" * 1000 for i in acked])
