"""Log compaction regressions: the cleaner offset survives a policy change and restarts, and two
compactions of one log never run at once (nor lose a record that must survive).

Real data directories, real threads, real subprocesses; every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

from logbroker.broker import Broker
from logbroker.records import decode_all, encode_batch, iter_batches
from logbroker.storage.cleaner import compact_log
from logbroker.storage.files import CLEANED_SUFFIX, read_checkpoint
from logbroker.storage.log_manager import (CLEAN_SHUTDOWN_MARKER, CLEANER_OFFSET_CHECKPOINT,
                                           RECOVERY_POINT_CHECKPOINT)

from ._helpers import T0, abandon, open_log, read_all

REPO = pathlib.Path(__file__).resolve().parents[2]
TOPIC = "t"
COMPACT_CONFIG = {"cleanup.policy": "compact", "segment.bytes": "1024", "index.interval.bytes": "128"}
KEYS = [b"k%d" % i for i in range(6)]


# ---- helpers ---------------------------------------------------------------------------------


def make_chunks(seed: int, count: int, ts: int):
    """``count`` chunks of 1-4 single-record batches: (key, value) lists, keys from KEYS or None.

    One record per batch, so compaction drops whole batches (gaps between batches and at the end of
    segments); a few tombstones (value None) for keyed records."""
    rng = random.Random(seed)
    chunks = []
    n = 0
    for _ in range(count):
        chunk = []
        for _ in range(rng.randint(1, 4)):
            key = rng.choice(KEYS + [None])
            value = None if key is not None and rng.random() < 0.08 else b"v%d-" % n + b"x" * rng.randint(0, 40)
            chunk.append((key, value, ts + n))
            n += 1
        chunks.append(chunk)
    return chunks


def encode_chunk(chunk) -> bytes:
    return b"".join(encode_batch([(k, v, None, t)]) for k, v, t in chunk)


def survivors(model, active_base):
    """What one compaction (nothing older than delete.retention.ms) must leave: every keyless record,
    everything from the active segment's base on, and the latest record per key below it."""
    latest = {}
    for offset, key, _ in model:
        if key is not None and offset < active_base:
            latest[key] = offset
    return [(o, k, v) for o, k, v in model if k is None or o >= active_base or latest[k] == o]


def broker_records(broker, topic=TOPIC, partition=0):
    """(offset, key, value) of every record from the log start to the high watermark (bounded)."""
    offset = broker.list_offsets(topic, partition, -2)[0]
    end = broker.list_offsets(topic, partition, -1)[0]
    out = []
    for _ in range(100_000):
        if offset >= end:
            break
        data = broker.fetch(topic, partition, offset, max_bytes=700).records
        headers = [h for _, h in iter_batches(data)]
        assert headers, f"empty fetch at {offset} below the high watermark {end}"
        out += [(r.offset, r.key, r.value) for r in decode_all(data) if r.offset >= offset]
        offset = max(offset, headers[-1].next_offset)
    return out


def assert_compaction_left_gaps(partition_log):
    """The scenario only means something when compaction removed whole batches, inside segments
    and at the end of a segment (so the next segment does not start where the previous one ends)."""
    segments = partition_log.segments
    at_end = [s for s, nxt in zip(segments[:-1], segments[1:]) if s.next_offset != nxt.base_offset]
    assert at_end, "no inactive segment lost its last batch; the test data does not exercise the bug"
    inner = 0
    for segment in segments[:-1]:
        expected = None
        for _, header, _ in segment.batches_from(0):
            if expected is not None and header.base_offset != expected:
                inner += 1
            expected = header.next_offset
    assert inner, "no gap between batches inside a segment; the test data does not exercise the bug"


def produce_model(broker, chunks):
    model = []
    for chunk in chunks:
        info = broker.produce(TOPIC, 0, encode_chunk(chunk))
        model += [(info.base_offset + i, k, v) for i, (k, v, _) in enumerate(chunk)]
    return model


def build_compacted_then_delete(path, seed=1, count=70):
    """A compacted topic with gaps, switched to cleanup.policy=delete; returns (expected, cleaner offset)."""
    ts = int(time.time() * 1000)  # recent: retention.ms (7 days) must not delete anything after the switch
    with Broker.open(path, housekeeping=False) as broker:
        broker.create_topic(TOPIC, 1, COMPACT_CONFIG)
        model = produce_model(broker, make_chunks(seed, count, ts))
        partition_log = broker.log(TOPIC, 0)
        assert len(partition_log.segments) >= 5
        active_base = partition_log.active_segment.base_offset
        done = broker.run_housekeeping(force=True)
        assert (TOPIC, 0) in done["compacted"] and done["compacted"][(TOPIC, 0)].records_removed > 0
        expected = survivors(model, active_base)
        assert broker_records(broker) == expected
        assert_compaction_left_gaps(partition_log)
        assert partition_log.cleaner_offset == active_base
        broker.alter_topic_config(TOPIC, set={"cleanup.policy": "delete"})
        assert broker.describe_topic(TOPIC)["config"]["cleanup.policy"] == "delete"
        assert broker_records(broker) == expected
        log_end = partition_log.log_end_offset
    assert read_checkpoint(os.path.join(path, CLEANER_OFFSET_CHECKPOINT)) == {(TOPIC, 0): active_base}
    return expected, active_base, log_end


def check_reopened(path, expected, log_end, *, unclean: bool):
    with Broker.open(path, housekeeping=False) as broker:
        reports = broker.recovery_reports
        assert not [r for r in reports if r.dropped_anything], [r.describe() for r in reports]
        if unclean:
            assert reports and all(r.log_end_offset == log_end for r in reports)
        else:
            assert reports == []
        partition_log = broker.log(TOPIC, 0)
        assert partition_log.log_end_offset == log_end
        assert broker_records(broker) == expected
        # every surviving record can be read by seeking to it directly, too
        for offset, key, value in expected[::7]:
            data = broker.fetch(TOPIC, 0, offset, max_bytes=1).records
            first = [r for r in decode_all(data) if r.offset >= offset][0]
            assert (first.offset, first.key, first.value) == (offset, key, value)
        # housekeeping under the delete policy deletes nothing recent and breaks nothing
        broker.run_housekeeping(force=True)
        assert broker_records(broker) == expected
        info = broker.produce(TOPIC, 0, encode_batch([(b"new", b"after-reopen", None, int(time.time() * 1000))]))
        assert info.base_offset == log_end
        expected = expected + [(log_end, b"new", b"after-reopen")]
        assert broker_records(broker) == expected
    return expected, log_end + 1


# ---- defect 1: compact -> delete, then restart ---------------------------------------------------


def test_compact_then_delete_policy_survives_clean_restarts(tmp_path):
    path = str(tmp_path / "data")
    expected, _, log_end = build_compacted_then_delete(path)
    expected, log_end = check_reopened(path, expected, log_end, unclean=False)
    check_reopened(path, expected, log_end, unclean=False)  # and again, after a write under "delete"


@pytest.mark.parametrize("also_drop_recovery_points", [False, True], ids=["marker", "marker+recovery-points"])
def test_compact_then_delete_policy_survives_unclean_restarts(tmp_path, also_drop_recovery_points):
    """Without the marker the log is recovered; without the recovery points every segment is
    recovered (the compacted ones included), and still nothing may be dropped."""
    path = str(tmp_path / "data")
    expected, _, log_end = build_compacted_then_delete(path, seed=2)
    os.unlink(os.path.join(path, CLEAN_SHUTDOWN_MARKER))
    if also_drop_recovery_points:
        os.unlink(os.path.join(path, RECOVERY_POINT_CHECKPOINT))
    expected, log_end = check_reopened(path, expected, log_end, unclean=True)
    check_reopened(path, expected, log_end, unclean=False)


CHILD = r"""
import json, sys, time
from logbroker.broker import Broker
from logbroker.records import encode_batch
from logbroker.storage.cleaner import compact_log
from tests.storage.test_compaction import (COMPACT_CONFIG, TOPIC, assert_compaction_left_gaps, broker_records,
                                           make_chunks, produce_model, survivors)

path, how = sys.argv[1], sys.argv[2]
broker = Broker.open(path, housekeeping=False)
broker.create_topic(TOPIC, 1, COMPACT_CONFIG)
now = int(time.time() * 1000)
model = produce_model(broker, make_chunks(3, 70, now))
partition_log = broker.log(TOPIC, 0)
active_base = partition_log.active_segment.base_offset
if how == "housekeeping":   # checkpoints the recovery points too: only the active segment is recovered
    assert broker.run_housekeeping(force=True)["compacted"]
else:                       # no recovery point on disk: every segment is recovered after the kill
    assert compact_log(partition_log, now, force=True) is not None
expected = survivors(model, active_base)
assert broker_records(broker) == expected
assert_compaction_left_gaps(partition_log)
broker.alter_topic_config(TOPIC, set={"cleanup.policy": "delete"})
info = broker.produce(TOPIC, 0, encode_batch([(b"k0", b"acked-after-switch", None, now)]))
expected.append((info.base_offset, b"k0", b"acked-after-switch"))
assert broker_records(broker) == expected
out = [[o, k.hex() if k is not None else None, v.hex() if v is not None else None] for o, k, v in expected]
sys.stdout.write(json.dumps({"records": out, "log_end": partition_log.log_end_offset}) + "\nready\n")
sys.stdout.flush()
time.sleep(60)  # killed long before
"""


@pytest.mark.parametrize("how", ["compact_log", "housekeeping"])
def test_compact_then_delete_policy_survives_sigkill(tmp_path, how):
    path = str(tmp_path / "data")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, path, how], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=str(REPO))
    out = b""
    try:
        deadline = time.monotonic() + 30
        fd = proc.stdout.fileno()
        while time.monotonic() < deadline and not out.endswith(b"ready\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            piece = os.read(fd, 1 << 16)
            if not piece:
                break
            out += piece
        assert out.endswith(b"ready\n"), (out[-300:], proc.stderr.read() if proc.poll() is not None else b"")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    state = json.loads(out.splitlines()[-2])
    expected = [(o, bytes.fromhex(k) if k is not None else None, bytes.fromhex(v) if v is not None else None)
                for o, k, v in state["records"]]
    assert not os.path.exists(os.path.join(path, CLEAN_SHUTDOWN_MARKER))
    with Broker.open(path, housekeeping=False) as broker:
        reports = broker.recovery_reports
        assert reports, "a SIGKILLed broker must be recovered"
        assert not [r for r in reports if r.dropped_anything], [r.describe() for r in reports]
        if how == "compact_log":
            assert reports[0].segments_recovered == len(broker.log(TOPIC, 0).segments)
        assert broker.log(TOPIC, 0).log_end_offset == state["log_end"]
        assert broker_records(broker) == expected
    with Broker.open(path, housekeeping=False) as broker:  # that close was clean
        assert broker.recovery_reports == []
        assert broker_records(broker) == expected


# ---- defect 2: two compactions of one log at once ------------------------------------------------


ROUNDS = 60
APPENDS = 600
TIME_BUDGET_S = 3.0


def test_concurrent_compactions_never_lose_a_record_and_never_overlap(tmp_path):
    """Two threads compact the same log again and again (released together by a barrier) while a
    third appends and a fourth reads.  Nothing that must survive is ever lost, what is read always
    matches what was appended at that offset, and the segment swaps of one pass are never
    interleaved with another pass's (one pass at a time)."""
    log, _ = open_log(tmp_path, cleanup_policy="compact", segment_bytes=1024, index_interval_bytes=128)
    model: dict[int, tuple] = {}  # offset -> (key, value), filled in before the data can be read
    chunks = make_chunks(4, APPENDS, T0)
    stop = threading.Event()
    errors: list[BaseException] = []
    deadline = time.monotonic() + TIME_BUDGET_S

    # a recording wrapper around the real method: which pass made each segment swap
    swaps: list[tuple[int, int]] = []
    tls = threading.local()
    real_replace = log.replace_segment

    def recording_replace(old, new_path):
        swaps.append(tls.pass_id)
        return real_replace(old, new_path)

    log.replace_segment = recording_replace

    def appender():
        try:
            for chunk in chunks:
                if stop.is_set() or time.monotonic() > deadline:
                    return
                info = log.append(encode_chunk(chunk))
                for i, (k, v, _) in enumerate(chunk):
                    model[info.base_offset + i] = (k, v)
                log.wait_durable(info.last_offset + 1)
                time.sleep(0.002)  # paced: appends go on through all the rounds, the log stays small
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    barrier = threading.Barrier(2, timeout=20)
    results: list[list] = [[], []]

    def compactor(index: int):
        try:
            for round_ in range(ROUNDS):
                if time.monotonic() > deadline:
                    break
                barrier.wait()
                tls.pass_id = (round_, index)
                results[index].append(compact_log(log, T0 + 1_000, force=True))
                time.sleep(0.005)  # let the appender roll a few segments between rounds
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            barrier.abort()  # the other compactor must not wait for a round this one will not run

    def reader():
        try:
            for _ in range(10_000):
                if stop.is_set():
                    return
                offset = log.log_start_offset
                for record in read_all(log, offset, max_bytes=512):
                    assert model[record.offset] == (record.key, record.value), record
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=appender, daemon=True), threading.Thread(target=reader, daemon=True)]
    threads += [threading.Thread(target=compactor, args=(i,), daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads[2:]:
        thread.join(timeout=TIME_BUDGET_S + 20)
    stop.set()
    for thread in threads[:2]:
        thread.join(timeout=20)
    assert not [t.name for t in threads if t.is_alive()], "a thread is stuck"
    if errors:
        raise errors[0]
    log.replace_segment = real_replace
    assert sum(r is not None for rs in results for r in rs) >= 3, "too few passes did any work"
    assert len(log.segments) > 5

    # the swaps of one pass are contiguous: no other pass swapped a segment in between
    seen_done: set = set()
    previous = None
    for pass_id in swaps:
        if pass_id != previous:
            assert pass_id not in seen_done, f"pass {pass_id} was interleaved with another pass: {swaps[:80]}"
            if previous is not None:
                seen_done.add(previous)
            previous = pass_id

    # nothing that must survive is gone, nothing changed, nothing left over
    appended = sorted((o, k, v) for o, (k, v) in model.items())
    assert [o for o, _, _ in appended] == list(range(len(appended)))
    got = [(r.offset, r.key, r.value) for r in read_all(log)]
    assert all(model[o] == (k, v) for o, k, v in got)
    assert [o for o, _, _ in got] == sorted(set(o for o, _, _ in got))
    got_offsets = {o for o, _, _ in got}
    latest = {}
    for offset, key, _ in appended:
        if key is not None:
            latest[key] = offset
    must = {o for o, k, _ in appended if k is None or o >= log.active_segment.base_offset} | set(latest.values())
    assert must <= got_offsets, sorted(must - got_offsets)[:20]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(CLEANED_SUFFIX)]

    # one more (uncontended) pass leaves exactly what compaction promises
    active_base = log.active_segment.base_offset
    compact_log(log, T0 + 1_000, force=True)
    expected = survivors(appended, active_base)
    got = [(r.offset, r.key, r.value) for r in read_all(log)]
    assert got == expected

    # and it all survives a clean and an unclean restart
    cleaner_offset = log.cleaner_offset
    assert cleaner_offset == active_base
    log.close()
    log, report = open_log(tmp_path, cleanup_policy="compact", segment_bytes=1024, cleaner_offset=cleaner_offset)
    assert report is None
    assert [(r.offset, r.key, r.value) for r in read_all(log)] == expected
    abandon(log)
    log, report = open_log(tmp_path, clean=False, cleanup_policy="delete", segment_bytes=1024,
                           cleaner_offset=cleaner_offset)
    assert report is not None and not report.dropped_anything, report.describe()
    assert report.segments_recovered == len(log.segments)
    assert [(r.offset, r.key, r.value) for r in read_all(log)] == expected
    log.close()


def test_a_second_pass_started_during_a_pass_does_nothing(tmp_path):
    """While one pass is between its segment swaps, new dirty segments arrive; a compaction started
    from another thread then returns at once without touching the log, and the first pass finishes
    normally.  A later pass compacts the new segments."""
    log, _ = open_log(tmp_path, cleanup_policy="compact", segment_bytes=1024)
    chunks = make_chunks(5, 120, T0)
    model = []

    def append(chunk):
        info = log.append(encode_chunk(chunk))
        log.wait_durable(info.last_offset + 1)
        model.extend((info.base_offset + i, k, v) for i, (k, v, _) in enumerate(chunk))

    for chunk in chunks[:60]:
        append(chunk)
    inside = threading.Event()
    release = threading.Event()
    real_replace = log.replace_segment
    calls = []

    def pausing_replace(old, new_path):  # the real swap, after a pause the first time
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            inside.set()
            release.wait(10)
        return real_replace(old, new_path)

    log.replace_segment = pausing_replace
    outcome = []
    first = threading.Thread(target=lambda: outcome.append(compact_log(log, T0, force=True)), name="first",
                             daemon=True)
    first.start()
    try:
        assert inside.wait(10), "the first pass never reached a segment swap"
        for chunk in chunks[60:]:  # more dirty segments, beyond the first pass's reach
            append(chunk)
        log.roll()
        files_before = sorted(os.listdir(tmp_path))
        started = time.monotonic()
        assert compact_log(log, T0, force=True) is None
        assert time.monotonic() - started < 5, "the second pass waited for the first"
        assert sorted(os.listdir(tmp_path)) == files_before
        assert calls == ["first"]
    finally:
        release.set()
        first.join(timeout=20)
    assert not first.is_alive()
    log.replace_segment = real_replace
    assert outcome and outcome[0] is not None and outcome[0].records_removed > 0
    assert set(calls) == {"first"}
    active_base = log.active_segment.base_offset
    assert compact_log(log, T0, force=True) is not None  # the new segments' turn
    assert [(r.offset, r.key, r.value) for r in read_all(log)] == survivors(model, active_base)
    log.close()
