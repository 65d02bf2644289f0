"""A hypothesis state machine driving a real PartitionLog against a list of acknowledged records.

The model is ``records`` (index = offset: (key, value, timestamp)), ``acked`` (the high watermark
the model expects), ``log_start`` and, after damage, ``corrupt`` (the first damaged batch).  Rules
append (acknowledged or not), read, answer ListOffsets by timestamp, roll, apply retention (bytes
and ms), delete records, truncate, reopen cleanly, crash (file descriptors dropped without
sealing, the active segment's unacknowledged tail torn or followed by garbage, then an unclean
open), and damage ``.log`` / index files.

After every step everything in ``[log_start, high watermark)`` is read back and compared with the
model: offsets contiguous, every record equal to the model's, nothing served from a damaged batch;
reads below the damage must succeed.  After damage, an unclean open with recovery point 0 must
truncate exactly at the damaged batch and keep exactly the records before it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from logbroker.clock import ManualClock
from logbroker.config import LogConfig
from logbroker.errors import CorruptRecordError
from logbroker.records import GZIP, NONE, ZSTD, decode_all, encode_batch
from logbroker.storage.log import PartitionLog
from storage._helpers import batch_layout

TOPIC = "sm"
BASE_CONFIG = {"segment.bytes": 1536, "index.interval.bytes": 128, "segment.ms": 20_000}
READ_SIZES = (1, 200, 700, 1 << 20)

keys = st.one_of(st.none(), st.sampled_from([b"a", b"b", b"c", b"dd", b"eee"]))
values = st.one_of(st.none(), st.binary(min_size=0, max_size=40))
record_specs = st.lists(st.tuples(keys, values, st.integers(-1500, 1500)), min_size=1, max_size=5)
codecs = st.sampled_from([NONE, NONE, GZIP, ZSTD])


# fsync costs nothing on a tmpfs, and this test is about logic, not the disk: prefer /dev/shm
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def read_file(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


class LogMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="lb-sm-", dir=SCRATCH)
        self.clock = ManualClock()
        self.config = LogConfig.from_overrides(BASE_CONFIG)
        self.log = None
        self.records: list[tuple[bytes | None, bytes | None, int]] = []
        self.acked = 0
        self.log_start = 0
        self.corrupt: tuple[int, str, int] | None = None  # (first damaged offset, .log path, batch position)
        self.index_damaged = False
        self.reads = 0
        self.batch_starts: list[int] = []  # base offset of every batch in the log (one batch per append)

    @initialize()
    def open_log(self):
        self.log, report = PartitionLog.open(self.dir, TOPIC, 0, self.config, clock=self.clock)
        assert report is None

    def teardown(self):
        if self.log is not None:
            self._abandon()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- helpers -----------------------------------------------------------------------------

    def _abandon(self) -> None:
        """What a crash leaves: descriptors gone, nothing sealed, pending index entries lost."""
        for segment in self.log.segments:
            if segment.fd >= 0:
                os.close(segment.fd)
                segment.fd = -1
        self.log = None

    def _reopen(self, *, clean: bool, recovery_point: int = 0):
        self.log, report = PartitionLog.open(self.dir, TOPIC, 0, self.config, clock=self.clock, clean=clean,
                                             recovery_point=recovery_point, log_start_offset=self.log_start)
        return report

    def _encode(self, specs, codec) -> tuple[bytes, list]:
        now = self.clock.time_ms()
        recs = [(k, v, now + jitter) for k, v, jitter in specs]
        return encode_batch([(k, v, None, ts) for k, v, ts in recs], compression_type=codec), recs

    def _check_read(self, offset: int, max_bytes: int):
        """Read at ``offset``; check what came back against the model.  None if refused as corrupt."""
        hw = self.acked
        try:
            info = self.log.read(offset, max_bytes)
        except CorruptRecordError:
            assert self.corrupt is not None, f"CorruptRecordError reading offset {offset} of an undamaged log"
            assert offset >= self.corrupt[0], (
                f"reading offset {offset} failed although the first damaged batch is at {self.corrupt[0]}")
            return None
        assert info.high_watermark == hw
        recs = decode_all(info.records)
        if offset < hw:
            assert recs, f"empty read at offset {offset} below the high watermark {hw}"
        else:
            assert not recs, f"read at the high watermark {hw} returned records"
            return recs
        offsets = [r.offset for r in recs]
        assert offsets == list(range(offsets[0], offsets[-1] + 1)), f"offsets not contiguous: {offsets}"
        assert offsets[0] <= offset, f"read at {offset} started at {offsets[0]}: records skipped"
        assert offsets[-1] < hw, f"read returned offset {offsets[-1]} at or above the high watermark {hw}"
        for r in recs:
            key, value, ts = self.records[r.offset]
            assert (r.key, r.value, r.timestamp) == (key, value, ts), (
                f"offset {r.offset}: served {(r.key, r.value, r.timestamp)}, model has {(key, value, ts)}"
                + (f" (damage at offset {self.corrupt[0]})" if self.corrupt else ""))
        return recs

    def _read_everything(self, max_bytes: int) -> int:
        """Read [log_start, hw) in steps; return where reading stopped."""
        offset = self.log_start
        for _ in range(len(self.records) + 2):
            if offset >= self.acked:
                break
            recs = self._check_read(offset, max_bytes)
            if recs is None:
                break
            offset = recs[-1].offset + 1
        return offset

    def _active_layout(self):
        segment = self.log.active_segment
        return segment, batch_layout(read_file(segment.log_path))

    def _adopt_truncation(self, leo: int) -> None:
        self.batch_starts = [b for b in self.batch_starts if b < leo]
        del self.records[leo:]
        self.acked = leo
        self.log_start = min(self.log_start, leo)

    # ---- rules -------------------------------------------------------------------------------

    @rule(specs=record_specs, codec=codecs)
    def append(self, specs, codec):
        data, recs = self._encode(specs, codec)
        info = self.log.append(data)
        assert info.base_offset == len(self.records) and info.last_offset == len(self.records) + len(recs) - 1
        self.records += recs
        self.batch_starts.append(info.base_offset)
        self.log.wait_durable(info.last_offset + 1)
        assert self.log.high_watermark == len(self.records)
        self.acked = len(self.records)

    @rule(specs=record_specs, codec=codecs)
    def append_unacked(self, specs, codec):
        data, recs = self._encode(specs, codec)
        leo_before, hw_before = len(self.records), self.log.high_watermark
        info = self.log.append(data)
        assert info.base_offset == len(self.records)
        self.records += recs
        self.batch_starts.append(info.base_offset)
        hw = self.log.high_watermark
        # only an fsync moves the high watermark; a roll fsyncs everything below the new segment
        assert hw in (hw_before, leo_before), (hw, hw_before, leo_before)
        self.acked = hw

    @rule(ms=st.integers(0, 8000))
    def tick(self, ms):
        self.clock.advance(ms)

    @rule(data=st.data())
    def read(self, data):
        offset = data.draw(st.integers(self.log_start, self.acked), label="offset")
        max_bytes = data.draw(st.sampled_from(READ_SIZES + (data.draw(st.integers(0, 3000)),)), label="max_bytes")
        self._check_read(offset, max_bytes)

    @rule()
    def roll(self):
        self.log.roll()
        assert self.log.high_watermark == len(self.records)  # the roll fsynced the old segment
        self.acked = len(self.records)

    @precondition(lambda self: self.corrupt is None)
    @rule(data=st.data())
    def offset_for_timestamp(self, data):
        now = self.clock.time_ms()
        target = data.draw(st.one_of(st.integers(now - 60_000, now + 2000),
                                     st.sampled_from([ts for _, _, ts in self.records] or [now])), label="timestamp")
        expected = next(((o, self.records[o][2]) for o in range(self.log_start, self.acked)
                         if self.records[o][2] >= target), None)
        assert self.log.offset_for_timestamp(target) == expected, target
        assert self.log.offset_for_timestamp(-2) == (self.log_start, -1)
        assert self.log.offset_for_timestamp(-1) == (self.acked, -1)

    @precondition(lambda self: self.corrupt is None)
    @rule(data=st.data())
    def retention_bytes(self, data):
        limit = data.draw(st.integers(0, self.log.size_bytes + 100), label="retention.bytes")
        before = [s.base_offset for s in self.log.segments]
        self.log.config = dataclasses.replace(self.config, retention_bytes=limit)
        try:
            deleted = self.log.apply_retention(self.clock.time_ms())
        finally:
            self.log.config = self.config
        after = self.log.segments
        assert deleted == before[: len(deleted)]
        assert [s.base_offset for s in after] == before[len(deleted):]
        if len(after) > 1:
            assert self.log.size_bytes - after[0].size < limit, "retention.bytes left a deletable segment"
        if deleted:
            assert self.log.log_start_offset == max(self.log_start, after[0].base_offset)
        else:
            assert self.log.log_start_offset == self.log_start
        self.log_start = self.log.log_start_offset

    @precondition(lambda self: self.corrupt is None)
    @rule(data=st.data())
    def retention_ms(self, data):
        limit = data.draw(st.integers(0, 60_000), label="retention.ms")
        now = self.clock.time_ms()
        segments = self.log.segments
        expected = []
        for segment, nxt in zip(segments, segments[1:]):
            max_ts = max((ts for _, _, ts in self.records[segment.base_offset:nxt.base_offset]), default=-1)
            # wholly below the log start (delete_records) goes first, whatever its age
            if nxt.base_offset <= self.log.log_start_offset or (max_ts >= 0 and now - max_ts > limit):
                expected.append(segment.base_offset)
            else:
                break
        self.log.config = dataclasses.replace(self.config, retention_ms=limit)
        try:
            deleted = self.log.apply_retention(now)
        finally:
            self.log.config = self.config
        assert deleted == expected
        if deleted:
            assert self.log.log_start_offset == max(self.log_start, self.log.segments[0].base_offset)
        self.log_start = self.log.log_start_offset

    @precondition(lambda self: self.corrupt is None)
    @rule(data=st.data())
    def delete_records(self, data):
        offset = data.draw(st.integers(self.log_start, self.acked), label="delete below")
        moved = offset > self.log_start
        assert self.log.delete_records(offset) == max(offset, self.log_start)
        self.log_start = max(offset, self.log_start)
        segments = self.log.segments
        if moved:  # (a segment left wholly below an unmoved start is test_log.py's business)
            assert len(segments) == 1 or segments[1].base_offset > self.log_start, "a wholly deleted segment remains"

    @precondition(lambda self: self.corrupt is None)
    @rule(data=st.data())
    def truncate(self, data):
        offset = data.draw(st.integers(self.log_start, len(self.records)), label="truncate at")
        leo = max(b for b in self.batch_starts if b <= offset) if offset < len(self.records) else len(self.records)
        self.log.truncate_to(offset)
        assert self.log.log_end_offset == leo, (self.log.log_end_offset, leo)
        assert self.log.active_segment.base_offset <= leo
        assert all(s.base_offset <= leo for s in self.log.segments)
        on_disk = sorted(int(n[:20]) for n in os.listdir(self.dir) if n.endswith(".log"))
        assert on_disk == [s.base_offset for s in self.log.segments]
        self._adopt_truncation(leo)
        self.acked = self.log.high_watermark
        assert self.acked == min(self.acked, leo)

    @precondition(lambda self: self.corrupt is None and not self.index_damaged)
    @rule()
    def reopen_clean(self):
        self.log.close()
        report = self._reopen(clean=True)
        assert report is None, report
        self.acked = len(self.records)  # close fsynced everything
        assert self.log.log_end_offset == len(self.records)

    @precondition(lambda self: self.corrupt is None)
    @rule(data=st.data())
    def crash(self, data):
        segment, layout = self._active_layout()
        file_size = os.path.getsize(segment.log_path)
        durable = next((pos for pos, _, base, _ in layout if base >= self.acked), file_size)
        mode = data.draw(st.sampled_from(["nothing", "tear", "garbage"]), label="mode")
        use_checkpoint = data.draw(st.booleans(), label="use log recovery point") and not self.index_damaged
        recovery_point = self.log.recovery_point if use_checkpoint else 0
        path = segment.log_path
        self._abandon()
        expected_leo, dropped, keep = len(self.records), 0, file_size
        if mode == "tear" and file_size > durable:
            cut = data.draw(st.integers(durable, file_size - 1), label="cut")
            os.truncate(path, cut)
            keep = max((pos + size for pos, size, _, _ in layout if pos + size <= cut), default=0)
            assert keep >= durable or durable == file_size
            expected_leo = next((base for pos, _, base, _ in layout if pos >= keep), len(self.records))
            dropped = cut - keep
        elif mode == "garbage":
            garbage = data.draw(st.binary(min_size=1, max_size=200), label="garbage")
            with open(path, "ab") as fh:
                fh.write(garbage)
            dropped = len(garbage)
        report = self._reopen(clean=False, recovery_point=recovery_point)
        assert report is not None and report.segments_recovered >= 1
        assert report.truncated_bytes == dropped, (report, dropped)
        assert not report.deleted_segments
        if dropped:
            assert report.truncated_at == (path, keep)
        assert self.log.log_end_offset == expected_leo, (self.log.log_end_offset, expected_leo)
        assert expected_leo >= self.acked
        self.index_damaged = False
        self._adopt_truncation(expected_leo)

    @precondition(lambda self: self.corrupt is None and self.log.size_bytes > 0)
    @rule(data=st.data())
    def corrupt_log(self, data):
        candidates = [s for s in self.log.segments if s.size > 0]
        segment = data.draw(st.sampled_from(candidates), label="segment")
        raw = read_file(segment.log_path)
        layout = batch_layout(raw)
        # half the time aim at bytes 0-11 of a batch (base offset, length): the CRC does not cover them
        anywhere = st.integers(0, len(raw) - 1)
        in_header = st.builds(lambda b, i: b[0] + i, st.sampled_from(layout), st.integers(0, 11))
        flips = data.draw(st.lists(st.one_of(anywhere, in_header), min_size=1, max_size=3, unique=True), label="bytes")
        damaged = []
        fd = os.open(segment.log_path, os.O_WRONLY)
        try:
            for position in flips:
                mask = data.draw(st.integers(1, 255), label="xor")
                os.pwrite(fd, bytes([raw[position] ^ mask]), position)
                pos, _, base, _ = next(b for b in layout if b[0] <= position < b[0] + b[1])
                if not 12 <= position - pos < 16:  # the partition leader epoch is outside the CRC and unused
                    damaged.append((base, pos))
        finally:
            os.close(fd)
        if damaged:
            base, pos = min(damaged)
            self.corrupt = (base, segment.log_path, pos)

    @precondition(lambda self: not self.index_damaged)
    @rule(data=st.data())
    def damage_index(self, data):
        paths = [p for s in self.log.segments for p in (s.index.path, s.time_index.path) if os.path.exists(p)]
        if not paths:
            return
        path = data.draw(st.sampled_from(paths), label="index file")
        how = data.draw(st.sampled_from(["delete", "truncate", "flip", "garbage"]), label="how")
        size = os.path.getsize(path)
        if how == "delete":
            os.unlink(path)
        elif how == "truncate":
            os.truncate(path, data.draw(st.integers(0, max(0, size - 1)), label="size"))
        elif how == "flip" and size:
            raw = bytearray(read_file(path))
            raw[data.draw(st.integers(0, size - 1), label="byte")] ^= data.draw(st.integers(1, 255), label="xor")
            with open(path, "wb") as fh:
                fh.write(raw)
        else:
            with open(path, "ab") as fh:
                fh.write(data.draw(st.binary(min_size=1, max_size=30), label="garbage"))
        self.index_damaged = True

    @precondition(lambda self: self.corrupt is not None)
    @rule()
    def recover_from_damage(self):
        first_bad, path, position = self.corrupt
        later = [s.log_path for s in self.log.segments if s.log_path > path]
        self._abandon()
        report = self._reopen(clean=False, recovery_point=0)
        assert report is not None
        assert report.truncated_at == (path, position), (report, self.corrupt)
        assert report.reason
        assert sorted(report.deleted_segments) == later
        assert self.log.log_end_offset == first_bad, (self.log.log_end_offset, first_bad)
        self.corrupt = None
        self.index_damaged = False
        self._adopt_truncation(first_bad)

    # ---- invariants --------------------------------------------------------------------------

    @invariant()
    def offsets_match_model(self):
        if self.log is None:
            return
        assert self.log.log_end_offset == len(self.records)
        assert self.log.high_watermark == self.acked
        assert self.log.log_start_offset == self.log_start
        bases = [s.base_offset for s in self.log.segments]
        assert bases == sorted(set(bases)) and bases[0] <= self.log_start

    @invariant()
    def everything_acknowledged_is_readable(self):
        if self.log is None:
            return
        self.reads += 1
        stopped = self._read_everything(READ_SIZES[self.reads % len(READ_SIZES)])
        if self.corrupt is None:
            assert stopped >= self.acked
        else:
            assert stopped >= min(self.corrupt[0], self.acked)


# No "explain" phase: its tracing makes a failing run take minutes instead of seconds.
LogMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=30, deadline=None,
                                        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink], report_multiple_bugs=False,
                                        suppress_health_check=[HealthCheck.too_slow])
TestLogStateMachine = LogMachine.TestCase
