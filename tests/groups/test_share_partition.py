"""SharePartition (groups/share_partition.py): every transition, every refusal, the record codec."""

from __future__ import annotations

import pytest

from logbroker.errors import CorruptRecordError
from logbroker.groups.share_partition import (ACKNOWLEDGED, ACQUIRED, ARCHIVED, AVAILABLE, DELIVERY_LIMIT, GAP,
                                              INVALID_RECORD_STATE, INVALID_REQUEST, REJECTED, Acquired,
                                              DeadLetter, SharePartition, ShareState, decode_state, encode_state)

LOCK = 1000


def emitted(sp: SharePartition, log: list[bytes], result):
    log.extend(result.records)
    return result


def test_first_deliveries_in_offset_order_with_count_one():
    sp = SharePartition()
    r = sp.acquire(0, "a", range(10), 3, LOCK)
    assert r.error_code == 0
    assert r.acquired == [Acquired(0, 1, 1), Acquired(1, 1, 1), Acquired(2, 1, 1)]
    assert [a.offset for a in sp.acquire(0, "b", range(10), 3, LOCK).acquired] == [3, 4, 5]
    assert sp.state_of(0) == (ACQUIRED, 1) and sp.owner(0) == "a" and sp.owner(3) == "b"
    assert sp.end_offset == 6 and sp.start_offset == 0


def test_acquire_only_offsets_the_log_has():
    sp = SharePartition()
    assert [a.offset for a in sp.acquire(0, "a", [7, 3, 5, 3], 10, LOCK).acquired] == [3, 5, 7]
    assert sp.acquire(0, "a", range(0), 10, LOCK).acquired == []


def test_acquired_record_not_handed_to_another_member():
    sp = SharePartition()
    sp.acquire(0, "a", range(2), 10, LOCK)
    assert sp.acquire(1, "b", range(2), 10, LOCK).acquired == []


def test_accept_finishes_and_advances_start():
    sp = SharePartition()
    sp.acquire(0, "a", range(3), 3, LOCK)
    r = sp.accept(1, "a", 1, 1)
    assert r.error_code == 0 and r.records and not r.dead_letters
    assert sp.start_offset == 0 and sp.state_of(1) == (ACKNOWLEDGED, 1)
    sp.accept(1, "a", 0, 1)
    assert sp.start_offset == 2 and sp.durable_state().records == {2: (AVAILABLE, 1)}


def test_accept_twice_refused():
    sp = SharePartition()
    sp.acquire(0, "a", range(3), 3, LOCK)
    assert sp.accept(1, "a", 1, 1).error_code == 0
    r = sp.accept(2, "a", 1, 1)
    assert r.error_code == INVALID_RECORD_STATE and r.records == []
    assert sp.accept(2, "a", 0, 1).error_code == 0
    assert sp.accept(3, "a", 0, 1).error_code == INVALID_RECORD_STATE  # below the start offset now


@pytest.mark.parametrize("call", ["accept", "release", "reject", "extend"])
def test_acks_by_wrong_member_or_delivery_or_unacquired_refused_and_change_nothing(call):
    sp = SharePartition()
    sp.acquire(0, "a", range(3), 2, LOCK)
    before = (sp.durable_state(), sp.state_of(0), sp.owner(0))
    extra = (5,) if call == "extend" else ()
    for member, offset, delivery in [("b", 0, 1), ("a", 0, 2), ("a", 2, 1), ("a", 9, 1)]:
        r = getattr(sp, call)(1, member, offset, delivery, *extra)
        assert r.error_code == INVALID_RECORD_STATE and r.records == [] and r.dead_letters == []
    assert (sp.durable_state(), sp.state_of(0), sp.owner(0)) == before


def test_release_makes_available_again_with_count_kept():
    sp = SharePartition()
    sp.acquire(0, "a", range(3), 2, LOCK)
    r = sp.release(1, "a", 0, 1)
    assert r.error_code == 0 and r.records == [] and r.dead_letters == []
    assert sp.state_of(0) == (AVAILABLE, 1) and sp.owner(0) is None
    assert sp.acquire(2, "b", range(3), 5, LOCK).acquired == [Acquired(0, 2, 2), Acquired(2, 1, 1)]


def test_release_with_delay():
    sp = SharePartition()
    sp.acquire(0, "a", range(1), 1, LOCK)
    sp.release(10, "a", 0, 1, delay_ms=50)
    assert sp.next_deadline() == 60
    assert sp.acquire(59, "b", range(1), 1, LOCK).acquired == []
    assert sp.acquire(60, "b", range(1), 1, LOCK).acquired == [Acquired(0, 2, 2)]


def test_reject_archives_with_one_dead_letter_and_never_redelivers():
    sp = SharePartition()
    sp.acquire(0, "a", range(2), 2, LOCK)
    r = sp.reject(1, "a", 1, 1)
    assert r.dead_letters == [DeadLetter(1, 1, REJECTED)]
    assert sp.state_of(1) == (ARCHIVED, 1)
    assert sp.reject(1, "a", 1, 1).error_code == INVALID_RECORD_STATE
    sp.tick(10 * LOCK)
    assert [a.offset for a in sp.acquire(10 * LOCK, "b", range(2), 5, LOCK).acquired] == [0]


def test_gap_archives_without_dead_letter():
    sp = SharePartition()
    sp.acquire(0, "a", range(1), 1, LOCK)
    r = sp.acknowledge(1, "a", 0, 1, GAP)
    assert r.error_code == 0 and r.dead_letters == [] and sp.start_offset == 1


def test_lock_expiry_releases_and_fences_the_old_delivery():
    sp = SharePartition()
    sp.acquire(0, "a", range(1), 1, LOCK)
    assert sp.next_deadline() == LOCK
    r = sp.tick(LOCK - 1)
    assert sp.state_of(0) == (ACQUIRED, 1) and r.records == []
    sp.tick(LOCK)
    assert sp.state_of(0) == (AVAILABLE, 1)
    assert sp.accept(LOCK, "a", 0, 1).error_code == INVALID_RECORD_STATE
    assert sp.acquire(LOCK, "b", range(1), 1, LOCK).acquired == [Acquired(0, 2, 2)]
    assert sp.accept(LOCK + 1, "a", 0, 1).error_code == INVALID_RECORD_STATE  # a's old delivery
    assert sp.accept(LOCK + 1, "a", 0, 2).error_code == INVALID_RECORD_STATE  # b's delivery, not a's
    assert sp.accept(LOCK + 1, "b", 0, 2).error_code == 0


def test_expiry_is_lazy_on_every_call():
    sp = SharePartition()
    sp.acquire(0, "a", range(1), 1, LOCK)
    assert sp.accept(LOCK, "a", 0, 1).error_code == INVALID_RECORD_STATE


def test_extend_pushes_the_deadline():
    sp = SharePartition()
    sp.acquire(0, "a", range(1), 1, LOCK)
    assert sp.extend(10, "a", 0, 1, 500).error_code == 0
    assert sp.next_deadline() == LOCK + 500
    sp.tick(LOCK + 499)
    assert sp.accept(LOCK + 499, "a", 0, 1).error_code == 0


def test_delivery_limit_archives_on_release_and_expiry():
    sp = SharePartition(delivery_count_limit=2)
    sp.acquire(0, "a", range(2), 2, LOCK)
    sp.release(1, "a", 0, 1)
    sp.release(1, "a", 1, 1)
    sp.acquire(2, "a", range(2), 2, LOCK)
    assert sp.release(3, "a", 0, 2).dead_letters == [DeadLetter(0, 2, DELIVERY_LIMIT)]
    r = sp.tick(2 + LOCK)
    assert r.dead_letters == [DeadLetter(1, 2, DELIVERY_LIMIT)]
    assert sp.start_offset == 2 and sp.durable_state().records == {}
    assert sp.tick(10 * LOCK).dead_letters == []


def test_restart_forgets_locks_keeps_counts():
    sp, log = SharePartition(), []
    emitted(sp, log, sp.acquire(0, "a", range(4), 4, LOCK))
    emitted(sp, log, sp.accept(1, "a", 0, 1))
    emitted(sp, log, sp.reject(1, "a", 2, 1))
    again = SharePartition.restart_from(log)
    assert again.durable_state() == sp.durable_state()
    assert again.start_offset == 1
    assert [again.state_of(o) for o in (1, 2, 3)] == [(AVAILABLE, 1), (ARCHIVED, 1), (AVAILABLE, 1)]
    assert again.accept(2, "a", 1, 1).error_code == INVALID_RECORD_STATE  # pre-crash delivery fenced
    assert again.acquire(2, "b", range(4), 5, LOCK).acquired == [Acquired(1, 2, 2), Acquired(3, 2, 2)]


def test_restart_at_limit_archives_at_next_acquire():
    sp, log = SharePartition(delivery_count_limit=1), []
    emitted(sp, log, sp.acquire(0, "a", range(2), 1, LOCK))
    again = SharePartition.restart_from(log, delivery_count_limit=1)
    r = again.acquire(1, "b", range(2), 5, LOCK)
    assert r.dead_letters == [DeadLetter(0, 1, DELIVERY_LIMIT)] and r.acquired == [Acquired(1, 1, 1)]
    assert again.start_offset == 1


def test_snapshot_record_replaces_history():
    sp = SharePartition()
    sp.acquire(0, "a", range(5), 5, LOCK)
    sp.accept(1, "a", 0, 1)
    sp.reject(1, "a", 3, 1)
    again = SharePartition.restart_from([sp.snapshot_record()])
    assert again.durable_state() == sp.durable_state()


def test_max_in_flight_bounds_the_window():
    sp = SharePartition(max_in_flight=3)
    assert [a.offset for a in sp.acquire(0, "a", range(100), 10, LOCK).acquired] == [0, 1, 2]
    assert sp.acquire(0, "b", range(100), 10, LOCK).acquired == []
    sp.accept(1, "a", 0, 1)
    assert [a.offset for a in sp.acquire(1, "b", range(100), 10, LOCK).acquired] == [3]


def test_advance_start_drops_state_and_locks_below():
    sp = SharePartition()
    sp.acquire(0, "a", range(5), 3, LOCK)
    r = sp.advance_start(2)
    assert r.records and r.dead_letters == [] and sp.start_offset == 2
    assert sp.accept(1, "a", 0, 1).error_code == INVALID_RECORD_STATE
    assert sp.accept(1, "a", 2, 1).error_code == 0
    assert sp.start_offset == 3
    assert sp.advance_start(1).records == []


def test_release_member_ends_its_deliveries():
    sp = SharePartition()
    sp.acquire(0, "a", range(2), 1, LOCK)
    sp.acquire(0, "b", range(2), 1, LOCK)
    sp.release_member(1, "a")
    assert sp.owner(0) is None and sp.owner(1) == "b"


@pytest.mark.parametrize("args", [(0, "a", range(3), 0, LOCK), (0, "a", range(3), 1, 0), (0, "", range(3), 1, LOCK)])
def test_bad_acquire_arguments(args):
    sp = SharePartition()
    assert sp.acquire(*args).error_code == INVALID_REQUEST
    assert sp.end_offset == 0


def test_bad_ack_arguments():
    sp = SharePartition()
    sp.acquire(0, "a", range(1), 1, LOCK)
    assert sp.release(1, "a", 0, 1, delay_ms=-1).error_code == INVALID_REQUEST
    assert sp.acknowledge(1, "a", 0, 1, 9).error_code == INVALID_REQUEST
    assert sp.extend(1, "a", 0, 1, -1).error_code == INVALID_REQUEST
    assert sp.state_of(0) == (ACQUIRED, 1)


def test_codec_round_trip_and_runs():
    state = ShareState(3, 10, {3: (2, 1), 4: (2, 1), 5: (0, 3), 7: (4, 5)}, snapshot=False)
    data = encode_state(state)
    assert len(data) == 22 + 3 * 19
    assert decode_state(data) == state


@pytest.mark.parametrize("data", [b"", b"\x01" + bytes(21), b"\x00\x05" + bytes(20),
                                  encode_state(ShareState(0, 5, {1: (1, 1)}))[:-1],
                                  encode_state(ShareState(0, 5, {1: (0, 1)})) + b"\x00"])
def test_codec_strict(data):
    with pytest.raises(CorruptRecordError):
        decode_state(data)


def test_codec_rejects_acquired_state():
    data = bytearray(encode_state(ShareState(0, 5, {1: (0, 1)})))
    data[22 + 16] = ACQUIRED
    with pytest.raises(CorruptRecordError):
        decode_state(bytes(data))


def test_unacquire_takes_back_a_delivery_that_was_never_sent():
    sp = SharePartition()
    a, b = sp.acquire(0, "m", range(2), 2, 100).acquired
    result = sp.unacquire(1, "m", [b.offset, 7])
    assert result.error_code == 0 and sp.state_of(b.offset) == (AVAILABLE, 0) and sp.owner(a.offset) == "m"
    assert [x.delivery_count for x in sp.acquire(2, "x", range(2), 2, 100).acquired] == [1]
    sp.unacquire(3, "x", [a.offset])  # not x's: nothing happens
    assert sp.owner(a.offset) == "m"
    sp.unacquire(3, "m", [a.offset])
    assert sp.state_of(a.offset) == (AVAILABLE, 0) and sp.start_offset == 0


def test_release_member_of_one_session_leaves_a_newer_sessions_records():
    sp = SharePartition()
    sp.acquire(0, "m", range(1), 1, 100, session=1)
    sp.acquire(0, "m", range(2), 1, 100, session=2)
    assert sp.holds_any("m", 1) and sp.holds_any("m", 2) and not sp.holds_any("x")
    sp.release_member(1, "m", session=1)
    assert sp.owner(0) is None and sp.owner(1) == "m"
    sp.release_member(1, "m")
    assert sp.owner(1) is None
