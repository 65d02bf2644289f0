"""A hypothesis state machine: idempotent producers against a real PartitionLog, with restarts and crashes.

Three producers send batches (sequences starting at 0 or just below the wrap at 2**31), retry one of
their last 5 batches, retry an old batch, bump their epoch, send with a stale epoch or a sequence gap;
the log rolls, applies retention (DeleteRecords then segment deletion), restarts cleanly, or crashes
(descriptors dropped without sealing, garbage torn onto the active segment, then an unclean open).

The model knows every acknowledged batch.  Checks: a new batch lands at the log end; a retry of a
producer's last batch, or of any of its last 5 sent since the last restart, is a duplicate answered
with the original offsets; an older retry may also be refused as out of order (only the last batch
is in a snapshot) but is never written again; retries of batches pushed out of the 5 are out of
order; stale epochs are fenced; gaps are out of order, however much retention deleted.  After every
step the log holds every acknowledged record at or above the log start exactly once, at the offset
it was acknowledged with, and nothing else.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from logbroker.clock import ManualClock
from logbroker.config import LogConfig
from logbroker.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from logbroker.records import decode_all, encode_batch, iter_batches
from logbroker.storage.log import PartitionLog

TOPIC = "psm"
CONFIG = {"segment.bytes": 1024, "index.interval.bytes": 128}
PIDS = (11, 12, 13)
MODULUS = 2**31
T0 = 1_700_000_000_000
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

pids = st.sampled_from(PIDS)


@dataclass
class Sent:
    data: bytes
    epoch: int
    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int
    generation: int  # restarts before it was sent


@dataclass
class Producer:
    epoch: int = 0
    next_seq: int = 0
    sent: list[Sent] = field(default_factory=list)  # acknowledged batches, oldest first


def encode(pid: int, epoch: int, seq: int, count: int) -> bytes:
    records = [(None, f"{pid}/{epoch}/{(seq + i) % MODULUS}".encode(), None, T0) for i in range(count)]
    return encode_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


class ProducerStateMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="lb-psm-", dir=SCRATCH)
        self.clock = ManualClock(T0)
        self.config = LogConfig.from_overrides(CONFIG)
        self.log = None
        self.producers: dict[int, Producer] = {}
        self.records: dict[int, bytes] = {}  # offset -> value of every acknowledged record
        self.log_start = 0
        self.generation = 0

    @initialize(starts=st.lists(st.sampled_from([0, 0, 7, MODULUS - 3]), min_size=len(PIDS), max_size=len(PIDS)))
    def open_log(self, starts):
        self.log, _ = PartitionLog.open(self.dir, TOPIC, 0, self.config, clock=self.clock)
        self.producers = {pid: Producer(next_seq=start) for pid, start in zip(PIDS, starts)}

    def teardown(self):
        if self.log is not None:
            self._abandon()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- helpers -----------------------------------------------------------------------------

    def _abandon(self) -> None:
        for segment in self.log.segments:
            if segment.fd >= 0:
                os.close(segment.fd)
                segment.fd = -1
        self.log = None

    def _reopen(self, *, clean: bool) -> None:
        self.log, _ = PartitionLog.open(self.dir, TOPIC, 0, self.config, clock=self.clock, clean=clean,
                                        log_start_offset=self.log_start)
        self.generation += 1

    def _broker_epoch(self, producer: Producer) -> int | None:
        return producer.sent[-1].epoch if producer.sent else None

    def _recent(self, producer: Producer) -> list[Sent]:
        """The last 5 batches of the epoch the broker knows: the ones it may still recognise."""
        epoch = self._broker_epoch(producer)
        return [s for s in producer.sent if s.epoch == epoch][-5:]

    def _unchanged(self, end: int) -> None:
        assert self.log.log_end_offset == end, "a refused or duplicate batch was written"

    # ---- rules -------------------------------------------------------------------------------

    @rule(pid=pids, count=st.integers(1, 4))
    def send_new_batch(self, pid, count):
        producer = self.producers[pid]
        data = encode(pid, producer.epoch, producer.next_seq, count)
        end = self.log.log_end_offset
        info = self.log.append(data)
        self.log.wait_durable(info.last_offset + 1)
        assert not info.duplicate
        assert (info.base_offset, info.last_offset) == (end, end + count - 1)
        last_seq = (producer.next_seq + count - 1) % MODULUS
        producer.sent.append(Sent(data, producer.epoch, producer.next_seq, last_seq, info.base_offset,
                                  info.last_offset, self.generation))
        for i in range(count):
            self.records[end + i] = f"{pid}/{producer.epoch}/{(producer.next_seq + i) % MODULUS}".encode()
        producer.next_seq = (last_seq + 1) % MODULUS

    @precondition(lambda self: any(p.sent for p in self.producers.values()))
    @rule(data=st.data())
    def retry_a_recent_batch(self, data):
        pid = data.draw(st.sampled_from([pid for pid, p in self.producers.items() if p.sent]))
        producer = self.producers[pid]
        recent = self._recent(producer)
        sent = data.draw(st.sampled_from(recent))
        must_be_known = sent is recent[-1] or sent.generation == self.generation
        end = self.log.log_end_offset
        try:
            info = self.log.append(sent.data)
        except OutOfOrderSequenceError:
            assert not must_be_known, f"a retry of a batch the broker must remember was refused: {sent}"
        else:
            assert info.duplicate, "a retried batch was written again"
            assert (info.base_offset, info.last_offset) == (sent.base_offset, sent.last_offset)
        self._unchanged(end)

    @precondition(lambda self: any(len(p.sent) > 5 for p in self.producers.values()))
    @rule(data=st.data())
    def retry_an_old_batch(self, data):
        pid = data.draw(st.sampled_from([pid for pid, p in self.producers.items() if len(p.sent) > 5]))
        producer = self.producers[pid]
        recent = self._recent(producer)
        old = [s for s in producer.sent if s not in recent]
        if not old:
            return
        sent = data.draw(st.sampled_from(old))
        expected = OutOfOrderSequenceError if sent.epoch == self._broker_epoch(producer) else InvalidProducerEpochError
        end = self.log.log_end_offset
        try:
            self.log.append(sent.data)
        except expected:
            pass
        else:
            raise AssertionError(f"an old batch was accepted: {sent}")
        self._unchanged(end)

    @rule(pid=pids)
    def bump_epoch(self, pid):
        producer = self.producers[pid]
        producer.epoch += 1
        producer.next_seq = 0

    @precondition(lambda self: any(p.sent and p.sent[-1].epoch > 0 for p in self.producers.values()))
    @rule(data=st.data())
    def send_with_a_stale_epoch(self, data):
        pid = data.draw(st.sampled_from([pid for pid, p in self.producers.items() if p.sent and p.sent[-1].epoch > 0]))
        producer = self.producers[pid]
        end = self.log.log_end_offset
        try:
            self.log.append(encode(pid, producer.sent[-1].epoch - 1, producer.next_seq, 1))
        except InvalidProducerEpochError:
            pass
        else:
            raise AssertionError("a fenced epoch was accepted")
        self._unchanged(end)

    @precondition(lambda self: any(p.sent for p in self.producers.values()))
    @rule(data=st.data(), gap=st.integers(1, 3))
    def send_with_a_sequence_gap(self, data, gap):
        """However much retention deleted, a producer that wrote is known: a gap is refused."""
        pid = data.draw(st.sampled_from([pid for pid, p in self.producers.items() if p.sent]))
        producer = self.producers[pid]
        end = self.log.log_end_offset
        try:
            self.log.append(encode(pid, producer.epoch, (producer.next_seq + gap) % MODULUS, 1))
        except OutOfOrderSequenceError:
            pass
        else:
            raise AssertionError("a sequence gap was accepted")
        self._unchanged(end)

    @rule()
    def roll(self):
        self.log.roll()

    @rule(fraction=st.floats(0, 1))
    def retention(self, fraction):
        target = self.log_start + int((self.log.high_watermark - self.log_start) * fraction)
        self.log_start = self.log.delete_records(target)
        self.log.apply_retention()
        assert self.log.log_start_offset == self.log_start

    @rule()
    def clean_restart(self):
        self.log.close()
        self._reopen(clean=True)

    @rule(garbage=st.binary(min_size=0, max_size=80))
    def crash_restart(self, garbage):
        path = self.log.active_segment.log_path
        self._abandon()
        with open(path, "ab") as fh:
            fh.write(garbage)
        self._reopen(clean=False)

    # ---- invariant ---------------------------------------------------------------------------

    @invariant()
    def every_acknowledged_record_is_stored_exactly_once(self):
        if self.log is None:
            return
        assert self.log.log_end_offset == self.log.high_watermark == (max(self.records) + 1 if self.records else 0)
        got = {}
        offset = self.log.log_start_offset
        while offset < self.log.high_watermark:
            chunk = self.log.read(offset, 1 << 20).records
            for record in decode_all(chunk):
                if record.offset >= offset:
                    assert record.offset not in got, f"offset {record.offset} served twice"
                    got[record.offset] = record.value
            offset = [h for _, h in iter_batches(chunk)][-1].next_offset
        expected = {o: v for o, v in self.records.items() if o >= self.log.log_start_offset}
        assert got == expected
        assert len(set(got.values())) == len(got), "a record is stored twice"


# No "explain" phase: its tracing makes a failing run take minutes instead of seconds.
ProducerStateMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink], report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow])
TestProducerStateMachine = ProducerStateMachine.TestCase
