"""Threads racing on one data directory: reads against retention and delete_records, checkpoint
writes against topic deletion and housekeeping, and flush-policy changes against the high watermark.

Real files and real threads; every loop is bounded in count and in time, every join has a timeout.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import traceback

import pytest

from logbroker.broker import Broker
from logbroker.clock import ManualClock
from logbroker.client import Consumer
from logbroker.config import LogConfig
from logbroker.errors import OffsetOutOfRangeError
from logbroker.records import decode_all, encode_batch, iter_batches
from logbroker.storage.log import PartitionLog

from ._helpers import T0, open_log

JOIN_TIMEOUT_S = 20


@pytest.fixture
def fast_switching():
    """Switch threads far more often than the default 5 ms, so that races show up in a short run."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def value_for(offset: int) -> bytes:
    """The value appended at ``offset``: a reader can check any record on its own."""
    return b"v%d-" % offset + b"p" * (offset % 29)


def big_value(offset: int) -> bytes:
    """A value of about 220 bytes: four batches fill a 1 KiB segment."""
    return value_for(offset).ljust(220, b"#")


def stacks_of(threads) -> str:
    frames = sys._current_frames()
    out = []
    for thread in threads:
        if thread.is_alive() and thread.ident in frames:
            out.append(f"--- {thread.name}\n" + "".join(traceback.format_stack(frames[thread.ident])))
    return "\n".join(out)


def join_all(threads, timeout=JOIN_TIMEOUT_S) -> list[str]:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


# ---- defect 3: reads racing retention and delete_records ---------------------------------------


WRITER_APPENDS = 1500
RACE_BUDGET_S = 2.0


def test_reads_racing_retention_and_delete_records_see_only_what_was_appended(tmp_path, fast_switching):
    """A writer appends (rolling 1 KiB segments), moves the log start with delete_records and
    deletes whole segments by retention.bytes; two readers walk from the log start to the high
    watermark over and over (one batch by batch with random read sizes, one offset by offset) and a
    third reads at the log start itself, again and again.
    A reader may find its offset deleted (OffsetOutOfRangeError: it moves to the new log start),
    but must never get CorruptRecordError, an empty read below the high watermark, or a record
    whose offset or value differs from what was appended there."""
    log, _ = open_log(tmp_path, segment_bytes=1024, index_interval_bytes=100, retention_bytes=3000)
    done = threading.Event()
    errors: list[str] = []
    stats = {"deletes": 0, "retention_segments": 0, "out_of_range": 0, "reads": 0, "rolls": 0}
    deadline = time.monotonic() + RACE_BUDGET_S

    def writer():
        rng = random.Random(1)
        try:
            for i in range(WRITER_APPENDS):
                if time.monotonic() > deadline:
                    break
                offset = log.log_end_offset
                chunk = b""
                for _ in range(rng.randint(1, 3)):
                    n = rng.randint(1, 3)
                    chunk += encode_batch([(None, value_for(offset + j), None, T0) for j in range(n)])
                    offset += n
                info = log.append(chunk)
                assert info.last_offset == offset - 1, info
                log.wait_durable(offset)
                stats["retention_segments"] += len(log.apply_retention(T0))
                action = rng.random()
                if action < 0.1:
                    start, hwm = log.log_start_offset, log.high_watermark
                    log.delete_records(rng.randint(start, hwm))
                    stats["deletes"] += 1
                elif action < 0.15:
                    log.roll()
                    stats["rolls"] += 1
        except BaseException:  # noqa: BLE001 - reported by the main thread
            errors.append("writer: " + traceback.format_exc())
        finally:
            done.set()

    def check(data: bytes, offset: int, high_watermark: int) -> int:
        """Check one read's batches; return the offset after them."""
        headers = [h for _, h in iter_batches(data)]
        if not headers:
            raise AssertionError(f"empty read at {offset}, below the high watermark {high_watermark}")
        records = decode_all(data)
        for record in records:
            if record.value != value_for(record.offset):
                raise AssertionError(f"offset {record.offset} holds {record.value!r}, "
                                     f"appended was {value_for(record.offset)!r}")
        wanted = [r.offset for r in records if r.offset >= offset]
        if not wanted or wanted != list(range(offset, offset + len(wanted))):
            raise AssertionError(f"a read at {offset} returned offsets {[r.offset for r in records]}")
        if headers[0].base_offset > offset:
            raise AssertionError(f"a read at {offset} started at the batch at {headers[0].base_offset}")
        return headers[-1].next_offset

    def reader(name: str, step_by_offset: bool):
        rng = random.Random(name)
        try:
            for _ in range(1_000_000):
                if done.is_set():
                    return
                offset = log.log_start_offset
                for _ in range(100_000):
                    if offset >= log.high_watermark or done.is_set():
                        break
                    try:
                        info = log.read(offset, 1 if step_by_offset else rng.choice([1, 150, 700, 4000]))
                    except OffsetOutOfRangeError:
                        stats["out_of_range"] += 1
                        start = log.log_start_offset
                        assert start > offset, f"offset {offset} refused but the log start is {start}"
                        offset = start  # deleted meanwhile: go on from the new log start
                        continue
                    stats["reads"] += 1
                    after = check(info.records, offset, info.high_watermark)
                    offset = offset + 1 if step_by_offset else after
        except BaseException:  # noqa: BLE001
            errors.append(f"{name}: " + traceback.format_exc())

    def start_reader():
        """Reads right at the log start, again and again: the offset that retention takes away."""
        try:
            for _ in range(10_000_000):
                if done.is_set():
                    return
                offset = log.log_start_offset
                try:
                    info = log.read(offset, 1)
                except OffsetOutOfRangeError:
                    stats["out_of_range"] += 1
                    assert log.log_start_offset > offset
                    continue
                stats["reads"] += 1
                if offset < info.high_watermark:
                    check(info.records, offset, info.high_watermark)
        except BaseException:  # noqa: BLE001
            errors.append("start-reader: " + traceback.format_exc())

    threads = [threading.Thread(target=writer, name="writer", daemon=True),
               threading.Thread(target=reader, args=("batch-reader", False), name="batch-reader", daemon=True),
               threading.Thread(target=reader, args=("offset-reader", True), name="offset-reader", daemon=True),
               threading.Thread(target=start_reader, name="start-reader", daemon=True)]
    for thread in threads:
        thread.start()
    stuck = join_all(threads)
    assert not stuck, f"threads still running: {stuck}\n{stacks_of(threads)}"
    assert not errors, "\n".join(errors)
    # the race really ran: the log start moved both ways, segments went, readers read a lot
    assert stats["deletes"] >= 5 and stats["retention_segments"] >= 3, stats
    assert stats["reads"] > 200, stats
    assert log.log_start_offset > 0
    log.close()


class PausingLog(PartitionLog):
    """A PartitionLog that pauses the thread changing it at one moment: when the published segments
    start above the log start offset (retention dropped the first segment but has not moved the log
    start yet).  Meanwhile a reader in another thread reads at the log start.  Nothing else differs."""

    window = None  # (writer thread, event "in the window", event "the reader is done")

    @property
    def segments(self):
        segments = PartitionLog.segments.fget(self)
        window = self.window
        if (window is not None and threading.current_thread() is window[0] and segments
                and segments[0].base_offset > self.log_start_offset):
            self.window = None
            window[1].set()
            window[2].wait(JOIN_TIMEOUT_S)
        return segments


def test_a_read_at_the_log_start_while_retention_deletes_a_segment(tmp_path):
    """Retention deletes the oldest segment and moves the log start to the next segment's base.  A
    read at the log start, in whatever state a reader catches the log, returns the records there or
    OffsetOutOfRangeError (the start moved on): never CorruptRecordError for intact data."""
    config = LogConfig.from_overrides({"segment.bytes": "1024", "retention.bytes": "1500"})
    log, _ = PausingLog.open(str(tmp_path), "t", 0, config, clock=ManualClock(T0))
    for offset in range(12):
        info = log.append(encode_batch([(None, big_value(offset), None, T0)]))
        log.wait_durable(info.last_offset + 1)
    assert len(log.segments) >= 3 and log.log_start_offset == 0
    in_window, reader_done = threading.Event(), threading.Event()
    outcome = []

    def reader():
        try:
            if not in_window.wait(JOIN_TIMEOUT_S) or log.window is not None:
                return
            offset = log.log_start_offset
            try:
                info = log.read(offset, 1)
            except OffsetOutOfRangeError:
                outcome.append(("out of range", offset, log.log_start_offset))
                return
            records = decode_all(info.records)
            outcome.append(("read", offset, [(r.offset, r.value) for r in records]))
        except BaseException as exc:  # noqa: BLE001
            outcome.append(("error", exc))
        finally:
            reader_done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    log.window = (threading.current_thread(), in_window, reader_done)
    deleted = log.apply_retention(T0)
    log.window = None
    in_window.set()  # lets the reader go if the window never came
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive()
    assert deleted and log.log_start_offset == log.segments[0].base_offset > 0
    for kind, *details in outcome:  # empty when the log never showed that state at all
        assert kind != "error", f"a read at the log start failed while retention ran: {details[0]!r}"
        if kind == "out of range":
            offset, start = details
            assert start > offset
        else:
            offset, records = details
            assert records and records[0][0] == offset
            assert all(value == big_value(o) for o, value in records)
    info = log.read(log.log_start_offset, 1)
    assert decode_all(info.records)[0].offset == log.log_start_offset
    log.close()


# ---- defect 4: checkpoint writes vs topic deletion vs housekeeping -----------------------------


DEADLOCK_ROUNDS = 60
DEADLOCK_BUDGET_S = 3.0


def test_delete_records_topic_deletion_and_housekeeping_never_deadlock(tmp_path, fast_switching):
    """delete_records writes the log-start checkpoint while holding its partition's lock; at the same
    time another thread creates and deletes topics (which closes partitions under the manager's lock
    and checkpoints) and another runs forced housekeeping (retention under partition locks, then a
    checkpoint of every partition).  Every thread finishes, and the data stays consistent."""
    path = str(tmp_path / "data")
    broker = Broker.open(path, housekeeping=False)
    config = {"segment.bytes": "1024", "retention.bytes": "2048", "index.interval.bytes": "200"}
    broker.create_topic("a", 2, config)
    errors: list[str] = []
    counts = {"delete_records": 0, "topics": 0, "housekeeping": 0}
    deadline = time.monotonic() + DEADLOCK_BUDGET_S

    def deleter(partition: int):
        rng = random.Random(partition)
        try:
            for i in range(DEADLOCK_ROUNDS * 3):
                if time.monotonic() > deadline:
                    break
                broker.produce("a", partition, encode_batch([(None, b"a%d-%d" % (partition, i) + b"." * 60, None,
                                                              int(time.time() * 1000))] * 3))
                hwm = broker.list_offsets("a", partition, -1)[0]
                start = broker.list_offsets("a", partition, -2)[0]
                broker.delete_records("a", partition, rng.randint(start, hwm))
                counts["delete_records"] += 1
        except BaseException:  # noqa: BLE001
            errors.append(f"deleter-{partition}: " + traceback.format_exc())

    def topics():
        try:
            for i in range(DEADLOCK_ROUNDS):
                if time.monotonic() > deadline:
                    break
                name = f"b{i}"
                # small segments and retention: housekeeping deletes some of them (under the
                # partition's lock, checkpointing) while this thread deletes the whole topic
                broker.create_topic(name, 2, {"segment.bytes": "1024", "retention.bytes": "1024"})
                for p in range(2):
                    for _ in range(4):
                        broker.produce(name, p, encode_batch([(None, b"x" * 500, None, int(time.time() * 1000))]))
                broker.delete_records(name, 0, 1)
                broker.delete_topic(name)
                counts["topics"] += 1
        except BaseException:  # noqa: BLE001
            errors.append("topics: " + traceback.format_exc())

    def housekeeper():
        try:
            for _ in range(DEADLOCK_ROUNDS * 5):
                if time.monotonic() > deadline:
                    break
                broker.run_housekeeping(force=True)
                counts["housekeeping"] += 1
        except BaseException:  # noqa: BLE001
            errors.append("housekeeping: " + traceback.format_exc())

    threads = [threading.Thread(target=deleter, args=(p,), name=f"deleter-{p}", daemon=True) for p in range(2)]
    threads += [threading.Thread(target=topics, name="topics", daemon=True),
                threading.Thread(target=housekeeper, name="housekeeping", daemon=True)]
    for thread in threads:
        thread.start()
    stuck = join_all(threads, DEADLOCK_BUDGET_S + 10)
    if stuck:  # a deadlock: closing the broker would hang too, so leave it (daemon threads)
        pytest.fail(f"deadlock: threads still running after {DEADLOCK_BUDGET_S + 10}s: {stuck}\n"
                    f"{stacks_of(threads)}")
    try:
        assert not errors, "\n".join(errors)
        assert counts["delete_records"] > 10 and counts["topics"] > 3 and counts["housekeeping"] > 3, counts
        assert broker.list_topics() == ["a"]
        starts = {p: broker.list_offsets("a", p, -2)[0] for p in range(2)}
        ends = {p: broker.list_offsets("a", p, -1)[0] for p in range(2)}
    finally:
        broker.close()
    with Broker.open(path, housekeeping=False) as broker:  # the checkpoints on disk agree
        assert broker.recovery_reports == []
        assert broker.list_topics() == ["a"]
        for p in range(2):
            assert broker.list_offsets("a", p, -2)[0] == starts[p]
            assert broker.list_offsets("a", p, -1)[0] == ends[p]
            if starts[p] < ends[p]:
                records = decode_all(broker.fetch("a", p, starts[p]).records)
                assert [r for r in records if r.offset >= starts[p]][0].offset == starts[p]


# ---- defect 6: relaxed -> strict flush policy never moves the high watermark back ----------------


@pytest.mark.parametrize("how", ["set", "delete"])
def test_switching_to_fsync_on_append_keeps_the_high_watermark(tmp_path, how):
    with Broker.open(str(tmp_path / "data"), housekeeping=False) as broker:
        broker.create_topic("t", 1, {"flush.messages": "1000"})
        now = int(time.time() * 1000)
        for i in range(40):
            broker.produce("t", 0, encode_batch([(None, b"r%d" % i, None, now)]))
        partition_log = broker.log("t", 0)
        assert partition_log.flushed_offset < 40, "relaxed flushing should have left appends unfsynced"
        assert broker.list_offsets("t", 0, -1)[0] == 40  # visible at once under the relaxed policy
        consumer = Consumer(broker, topics=["t"], auto_offset_reset="error")
        consumer.seek("t", 0, 0)
        got = []
        for _ in range(20):
            got += consumer.poll(timeout=0)
            if len(got) >= 40:
                break
        assert [r.offset for r in got] == list(range(40))
        assert consumer.position("t", 0) == 40

        if how == "set":
            broker.alter_topic_config("t", set={"flush.messages": "1"})
        else:
            broker.alter_topic_config("t", delete=["flush.messages"])  # back to the default, 1
        assert partition_log.config.sync_on_append
        assert broker.list_offsets("t", 0, -1)[0] == 40
        assert partition_log.flushed_offset == 40
        assert broker.fetch("t", 0, 40).records == b""  # the consumer's position is still valid
        assert consumer.poll(timeout=0) == []  # no OffsetOutOfRangeError, no reset
        assert consumer.position("t", 0) == 40

        broker.produce("t", 0, encode_batch([(None, b"after", None, now)]))
        more = []
        for _ in range(20):
            more += consumer.poll(timeout=0.05)
            if more:
                break
        assert [(r.offset, r.value) for r in more] == [(40, b"after")]


TOGGLES = 40


def test_flush_policy_toggling_under_load_never_moves_the_high_watermark_back(tmp_path, fast_switching):
    """An appender produces while another thread flips flush.messages between 1000 and 1; a monitor
    samples the high watermark (it may only grow) and a consumer with auto_offset_reset='error'
    keeps reading (its position must never fall outside the log)."""
    with Broker.open(str(tmp_path / "data"), housekeeping=False) as broker:
        broker.create_topic("t", 1, {"flush.messages": "1000", "segment.bytes": "4096"})
        partition_log = broker.log("t", 0)
        stop = threading.Event()
        errors: list[str] = []
        samples = {"count": 0, "toggles": 0, "produced": 0, "consumed": 0}
        deadline = time.monotonic() + 2.5

        def appender():
            try:
                now = int(time.time() * 1000)
                for i in range(20_000):
                    if stop.is_set() or time.monotonic() > deadline:
                        return
                    broker.produce("t", 0, encode_batch([(None, b"r%d" % i, None, now)]))
                    samples["produced"] += 1
            except BaseException:  # noqa: BLE001
                errors.append("appender: " + traceback.format_exc())

        def toggler():
            try:
                for i in range(TOGGLES):
                    if time.monotonic() > deadline:
                        return
                    broker.alter_topic_config("t", set={"flush.messages": "1" if i % 2 == 0 else "1000"})
                    samples["toggles"] += 1
                    time.sleep(0.01)
            except BaseException:  # noqa: BLE001
                errors.append("toggler: " + traceback.format_exc())

        def monitor():
            try:
                last = 0
                for _ in range(1_000_000):
                    if stop.is_set():
                        return
                    hwm = partition_log.high_watermark
                    assert hwm >= last, f"the high watermark went back from {last} to {hwm}"
                    listed = broker.list_offsets("t", 0, -1)[0]
                    assert listed >= hwm, f"list_offsets gave {listed} after the high watermark was {hwm}"
                    last = listed
                    samples["count"] += 1
            except BaseException:  # noqa: BLE001
                errors.append("monitor: " + traceback.format_exc())

        def consumer_thread():
            try:
                with Consumer(broker, topics=["t"], auto_offset_reset="error") as consumer:
                    consumer.seek("t", 0, 0)
                    expected = 0
                    for _ in range(1_000_000):
                        if stop.is_set():
                            return
                        for record in consumer.poll(timeout=0.01):
                            assert (record.offset, record.value) == (expected, b"r%d" % expected), record
                            expected += 1
                        samples["consumed"] = expected
            except BaseException:  # noqa: BLE001
                errors.append("consumer: " + traceback.format_exc())

        workers = [threading.Thread(target=appender, name="appender", daemon=True),
                   threading.Thread(target=toggler, name="toggler", daemon=True)]
        watchers = [threading.Thread(target=monitor, name="monitor", daemon=True),
                    threading.Thread(target=consumer_thread, name="consumer", daemon=True)]
        for thread in workers + watchers:
            thread.start()
        stuck = join_all(workers)
        stop.set()
        stuck += join_all(watchers)
        assert not stuck, f"threads still running: {stuck}\n{stacks_of(workers + watchers)}"
        assert not errors, "\n".join(errors)
        assert samples["toggles"] >= 10 and samples["produced"] > 100 and samples["count"] > 100, samples
        assert samples["consumed"] > 0, samples
