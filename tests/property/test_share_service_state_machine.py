"""A hypothesis state machine over the share-group service and a real Broker, with restarts and crashes.

Three members of one share group (delivery limit 3, a dead-letter topic, 100 ms locks) acquire
records of a 2-partition topic, accept / release / reject them in batches (current deliveries, and
stale ones: expired, released, from before a restart), time passes and locks expire; the broker
restarts cleanly or crashes: the data directory as it is on disk at that instant (every call fsyncs
before it returns) is copied and opened without the clean-shutdown marker, as after a SIGKILL.

Checks: a record is held by at most one member at a time; delivery counts go 1, 2, ... and survive
restarts (a delivery is never forgotten); an acknowledgement succeeds exactly when every offset in it
names the member's current delivery; nothing is accepted twice; the dead-letter topic holds each
rejected or exhausted record exactly once, never an accepted one.  Drained at the end: every record
is accepted or dead-lettered exactly once and the group's lag is 0.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from logbroker import Broker
from logbroker.broker.shares import ACCEPT, REJECT, RELEASE
from logbroker.clock import ManualClock
from logbroker.groups.share_state_log import dead_letter_source
from logbroker.records.batch import encode_batch_columns

GROUP, TOPIC, DLQ = "g", "t", "dlq"
LIMIT, LOCK_MS = 3, 100
MEMBERS = ("m1", "m2", "m3")
PARTITIONS = [(TOPIC, 0), (TOPIC, 1)]
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class ShareServiceMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="lb-share-sm-", dir=SCRATCH)
        self.generation = 0
        self.clock = ManualClock()
        self.broker = None
        self.produced: list[tuple[int, int]] = []
        self.held: dict[tuple[int, int], tuple[str, int, int]] = {}  # (p, o) -> (member, delivery id, deadline)
        self.deliveries: list[tuple[str, tuple[int, int], int]] = []  # (member, (p, o), delivery id)
        self.count: dict[tuple[int, int], int] = {}
        self.accepted: set[tuple[int, int]] = set()
        self.rejected: set[tuple[int, int]] = set()

    # ---- plumbing --------------------------------------------------------------------------------

    def _dir(self) -> str:
        return os.path.join(self.root, f"d{self.generation}")

    def _open(self) -> None:
        self.broker = Broker.open(self._dir(), clock=self.clock, housekeeping=False)
        self.held.clear()

    @initialize()
    def start(self):
        self._open()
        self.broker.create_topic(TOPIC, 2)
        self.broker.shares.configure(GROUP, auto_offset_reset="earliest", delivery_count_limit=LIMIT,
                                     dead_letter_topic=DLQ, lock_duration_ms=LOCK_MS)

    def teardown(self):
        try:
            if self.broker is not None:
                self._drain()
        finally:
            if self.broker is not None:
                self.broker.close()
            shutil.rmtree(self.root, ignore_errors=True)

    def _expire(self) -> None:
        now = self.clock.time_ms()
        for key in [k for k, (_, _, deadline) in self.held.items() if deadline <= now]:
            del self.held[key]

    def _dead_letters(self) -> Counter:
        if DLQ not in self.broker.list_topics():
            return Counter()
        return Counter((source[2], source[3]) for record in self.broker.iter_records(DLQ, 0)
                       if (source := dead_letter_source(record.headers)) is not None)

    # ---- rules -----------------------------------------------------------------------------------

    @rule(partition=st.integers(0, 1), n=st.integers(1, 4))
    def produce(self, partition, n):
        base = self.broker.produce(TOPIC, partition, encode_batch_columns(
            None, [b"v"] * n, None, [self.clock.time_ms()] * n)).base_offset
        self.produced += [(partition, base + i) for i in range(n)]

    @rule(member=st.sampled_from(MEMBERS), max_records=st.integers(1, 5))
    def acquire(self, member, max_records):
        self._expire()
        got = self.broker.shares.acquire(GROUP, member, PARTITIONS, max_records)
        assert sum(len(pa.acquired) for pa in got) <= max_records
        for pa in got:
            for a in pa.acquired:
                key = (pa.partition, a.offset)
                assert key not in self.held, f"{key} acquired by two members at once"
                assert key not in self.accepted and key not in self.rejected
                assert a.delivery_count == self.count.get(key, 0) + 1 <= LIMIT, (key, a, self.count.get(key))
                self.count[key] = a.delivery_count
                self.held[key] = (member, a.delivery_id, self.clock.time_ms() + LOCK_MS)
                self.deliveries.append((member, key, a.delivery_id))

    @rule(indexes=st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
          kind=st.sampled_from([ACCEPT, ACCEPT, RELEASE, REJECT]))
    def acknowledge(self, indexes, kind):
        if not self.deliveries:
            return
        self._expire()
        member = self.deliveries[indexes[0] % len(self.deliveries)][0]
        picked = {}
        for i in indexes:
            m, key, delivery = self.deliveries[i % len(self.deliveries)]
            if m == member:
                picked[key] = delivery
        acks: dict = {}
        for (partition, offset), delivery in picked.items():
            acks.setdefault((TOPIC, partition), []).append((offset, delivery, kind))
        codes = self.broker.shares.acknowledge(GROUP, member, acks)
        for (topic, partition), items in acks.items():
            current = all(self.held.get((partition, o), (None, None))[:2] == (member, d) for o, d, _ in items)
            assert codes[(topic, partition)] == (0 if current else 121), (items, codes, self.held)
            if not current:
                continue
            for offset, _, _ in items:
                key = (partition, offset)
                del self.held[key]
                if kind == ACCEPT:
                    assert key not in self.accepted
                    self.accepted.add(key)
                elif kind == REJECT:
                    self.rejected.add(key)

    @rule(ms=st.sampled_from([10, 60, 150]))
    def advance_time(self, ms):
        self.clock.advance(ms)
        self._expire()

    @rule()
    def tick(self):
        self.broker.shares.tick()

    @rule()
    def clean_restart(self):
        self.broker.close()
        self._open()

    @rule()
    def crash(self):
        """What SIGKILL leaves: the files as they are now, opened without the clean-shutdown marker."""
        old = self._dir()
        self.generation += 1
        shutil.copytree(old, self._dir(), ignore=shutil.ignore_patterns(".lock"))
        self.broker.close()
        marker = os.path.join(self._dir(), ".kafka_cleanshutdown")
        if os.path.exists(marker):
            os.unlink(marker)
        self._open()
        assert self.broker.recovery_reports is not None
        shutil.rmtree(old, ignore_errors=True)

    # ---- invariants --------------------------------------------------------------------------------

    @invariant()
    def dead_letters_once_and_never_accepted(self):
        if self.broker is None:
            return
        dead = self._dead_letters()
        assert all(n == 1 for n in dead.values()), dead
        assert not set(dead) & self.accepted
        assert self.rejected <= set(dead)  # a reject returns only once its copy is durable

    def _drain(self):
        for _ in range(3 * LIMIT):
            self.clock.advance(1000)
            self.held.clear()
            for pa in self.broker.shares.acquire(GROUP, "drain", PARTITIONS, 1000):
                items = []
                for a in pa.acquired:
                    key = (pa.partition, a.offset)
                    assert a.delivery_count == self.count.get(key, 0) + 1 <= LIMIT
                    self.count[key] = a.delivery_count
                    items.append((a.offset, a.delivery_id, ACCEPT))
                    self.accepted.add(key)
                assert self.broker.shares.acknowledge(GROUP, "drain", {(TOPIC, pa.partition): items}) == \
                    {(TOPIC, pa.partition): 0}
        dead = self._dead_letters()
        assert all(n == 1 for n in dead.values()) and not set(dead) & self.accepted
        assert self.accepted | set(dead) == set(self.produced)
        for row in self.broker.shares.describe(GROUP)["partitions"]:
            assert row["lag"] == 0 and row["start_offset"] == row["log_end_offset"], row


TestShareService = ShareServiceMachine.TestCase
TestShareService.settings = settings(max_examples=25, stateful_step_count=30, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
