"""A hypothesis state machine over one SharePartition: several members acquire, accept, release (with or
without a delay), reject and extend, time passes and locks expire, and the partition restarts by
replaying every state record emitted so far.  Acks also come from stale deliveries (expired, released,
from before a restart) and must be refused.  Teardown drains the partition (accept even offsets,
release odd ones until their deliveries run out).

Invariants: a record is acquired by at most one member at a time and its deliveries count 1, 2, ...
never past the limit; nothing is accepted twice; an ack succeeds exactly when it names a current
acquisition; dead letters come exactly once per record archived by reject or exhaustion, never for an
accepted one; the partition rebuilt from the records has the live durable state; drained, every record
ended accepted or dead-lettered.

The second machine runs the same rules with a dead-letter topic: dead letters wait in ARCHIVING until
a ``copy`` step archives them; a restart in between lists exactly the ones not yet copied, and the start
offset never passes one.  Batched acknowledgements (``acknowledge_many``) are all or nothing.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from logbroker.groups.share_partition import (ACCEPT, INVALID_RECORD_STATE, INVALID_REQUEST, REJECT, REJECTED, RELEASE,
                                              SharePartition)

N = 10
LIMIT = 3
LOCK = 100
MEMBERS = ["m1", "m2", "m3"]


class SharePartitionMachine(RuleBasedStateMachine):
    SETTINGS = {"delivery_count_limit": LIMIT}

    def __init__(self):
        super().__init__()
        self.sp = SharePartition(**self.SETTINGS)
        self.log: list[bytes] = []
        self.now = 0
        self.held: dict[int, tuple[str, int, int]] = {}  # offset -> (member, delivery id, deadline)
        self.deliveries: list[tuple[str, int, int]] = []  # every (member, offset, delivery id) handed out
        self.count: dict[int, int] = {}
        self.accepted: set[int] = set()
        self.dead = Counter()
        self.rejected: set[int] = set()

    def take(self, result):
        self.log += result.records
        for letter in result.dead_letters:
            self.dead[letter.offset] += 1
            assert letter.offset not in self.accepted
            assert letter.reason != REJECTED or letter.offset in self.rejected
            self.held.pop(letter.offset, None)
        return result

    def expire(self):
        for offset in [o for o, (_, _, deadline) in self.held.items() if deadline <= self.now]:
            del self.held[offset]

    @rule(member=st.sampled_from(MEMBERS), max_records=st.integers(1, 4))
    def acquire(self, member, max_records):
        self.expire()
        r = self.take(self.sp.acquire(self.now, member, range(N), max_records, LOCK))
        assert r.error_code == 0 and len(r.acquired) <= max_records
        for a in r.acquired:
            assert a.offset not in self.held, "acquired by two members at once"
            assert a.offset not in self.accepted and self.dead[a.offset] == 0
            assert a.delivery_count == self.count.get(a.offset, 0) + 1 <= LIMIT
            self.count[a.offset] = a.delivery_count
            self.held[a.offset] = (member, a.delivery_id, self.now + LOCK)
            self.deliveries.append((member, a.offset, a.delivery_id))

    def ack(self, index, call, *extra):
        if not self.deliveries:
            return None
        member, offset, delivery = self.deliveries[index % len(self.deliveries)]
        self.expire()
        current = self.held.get(offset, (None, None, None))[:2] == (member, delivery)
        if call == "reject" and current:
            self.rejected.add(offset)
        r = self.take(getattr(self.sp, call)(self.now, member, offset, delivery, *extra))
        assert r.error_code == (0 if current else INVALID_RECORD_STATE)
        if not current:
            assert r.records == [] and r.dead_letters == []
        return offset if current else None

    @rule(index=st.integers(0, 1000))
    def accept(self, index):
        offset = self.ack(index, "accept")
        if offset is not None:
            assert offset not in self.accepted
            self.accepted.add(offset)
            del self.held[offset]

    @rule(index=st.integers(0, 1000), delay=st.sampled_from([0, 0, 30, 150]))
    def release(self, index, delay):
        offset = self.ack(index, "release", delay)
        if offset is not None:
            self.held.pop(offset, None)

    @rule(index=st.integers(0, 1000))
    def reject(self, index):
        offset = self.ack(index, "reject")
        if offset is not None:
            assert self.dead[offset] == 1

    @rule(index=st.integers(0, 1000), extra=st.integers(0, 200))
    def extend(self, index, extra):
        offset = self.ack(index, "extend", extra)
        if offset is not None:
            member, delivery, deadline = self.held[offset]
            self.held[offset] = (member, delivery, deadline + extra)

    @rule(indexes=st.lists(st.integers(0, 1000), min_size=1, max_size=4),
          kind=st.sampled_from([ACCEPT, RELEASE, REJECT]))
    def acknowledge_many(self, indexes, kind):
        if not self.deliveries:
            return
        self.expire()
        picked = [self.deliveries[i % len(self.deliveries)] for i in indexes]
        offsets = [offset for _, offset, _ in picked]
        member = picked[0][0]
        current = all(self.held.get(o, (None, None, None))[:2] == (member, d) for _, o, d in picked)
        r = self.take_batch(self.sp.acknowledge_many(self.now, member, [(o, d, kind) for _, o, d in picked]),
                            offsets if current and kind == REJECT else ())
        if len(set(offsets)) != len(offsets):
            assert r.error_code == INVALID_REQUEST
        elif not current:
            assert r.error_code == INVALID_RECORD_STATE and r.records == [] and r.dead_letters == []
        else:
            assert r.error_code == 0
            for offset in offsets:
                self.held.pop(offset, None)
                if kind == ACCEPT:
                    assert offset not in self.accepted
                    self.accepted.add(offset)

    def take_batch(self, result, rejected):
        self.rejected.update(rejected)
        if result.error_code:
            return result
        return self.take(result)

    @rule(ms=st.integers(1, 250))
    def advance_time(self, ms):
        self.now += ms
        self.expire()
        self.take(self.sp.tick(self.now))

    @rule()
    def restart(self):
        self.sp = SharePartition.restart_from(self.log, **self.SETTINGS)
        self.held.clear()

    @invariant()
    def owners_match_model(self):
        for offset in range(self.sp.start_offset, N):
            if offset in self.held and self.held[offset][2] > self.now:
                assert self.sp.owner(offset) == self.held[offset][0]

    @invariant()
    def each_dead_letter_once(self):
        assert all(n == 1 for n in self.dead.values())
        assert not self.accepted & set(self.dead)

    @invariant()
    def replay_reproduces_durable_state(self):
        assert SharePartition.restart_from(self.log, **self.SETTINGS).durable_state() == self.sp.durable_state()

    @invariant()
    def window_bounded(self):
        state = self.sp.durable_state()
        assert all(state.start_offset <= o < state.end_offset for o in state.records)
        assert all(self.sp.state_of(o)[1] <= LIMIT for o in range(state.start_offset, N))

    def teardown(self):
        for _ in range(2 * LIMIT + 2):
            self.finish_dead_letters()
            if self.sp.start_offset >= N:
                break
            self.advance_time(1000)
            r = self.take(self.sp.acquire(self.now, "drain", range(N), N, LOCK))
            for a in r.acquired:
                assert a.delivery_count <= LIMIT
                if a.offset % 2 == 0:
                    assert self.take(self.sp.accept(self.now, "drain", a.offset, a.delivery_id)).error_code == 0
                    assert a.offset not in self.accepted
                    self.accepted.add(a.offset)
                else:
                    assert self.take(self.sp.release(self.now, "drain", a.offset, a.delivery_id)).error_code == 0
        self.finish_dead_letters()
        assert self.sp.start_offset == N and self.sp.durable_state().records == {}
        assert self.accepted | set(self.dead) == set(range(N))
        self.each_dead_letter_once()
        self.replay_reproduces_durable_state()


    def finish_dead_letters(self):
        pass


class DeadLetterQueueMachine(SharePartitionMachine):
    SETTINGS = {"delivery_count_limit": LIMIT, "dead_letter_queue": True}

    def __init__(self):
        super().__init__()
        self.copying: set[int] = set()  # dead letters reported, not yet copied and archived

    def take(self, result):
        super().take(result)
        self.copying.update(letter.offset for letter in result.dead_letters)
        return result

    @rule()
    def copy_dead_letters(self):
        self.finish_dead_letters()

    def finish_dead_letters(self):
        self.log += self.sp.archive(sorted(self.copying)).records
        self.copying.clear()

    @invariant()
    def pending_are_the_uncopied(self):
        assert {d.offset for d in self.sp.pending_dead_letters()} == self.copying
        assert all(self.sp.start_offset <= offset for offset in self.copying)


TestSharePartition = SharePartitionMachine.TestCase
TestSharePartition.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])

TestDeadLetterQueue = DeadLetterQueueMachine.TestCase
TestDeadLetterQueue.settings = settings(max_examples=100, stateful_step_count=40, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
