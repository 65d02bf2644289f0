"""Share session rules (SHARE_GROUPS.md §3.8), sans-I/O: epochs, the partition set, the session limit,
ends by replacement, final epoch and connection close."""

from __future__ import annotations

import pytest

from logbroker.server.share_sessions import (INVALID_SHARE_SESSION_EPOCH, MAX_EPOCH, SHARE_SESSION_LIMIT_REACHED,
                                             SHARE_SESSION_NOT_FOUND, ShareSessionCache, next_epoch)

A, B = object(), object()  # two connections
P0, P1, Q0 = ("t", 0), ("t", 1), ("q", 0)


def test_epoch_zero_creates_a_session_expecting_one():
    cache = ShareSessionCache()
    step = cache.share_fetch("g", "m", 0, A, [P0, P1])
    assert step.error_code == 0 and step.ended == [] and not step.final
    assert list(step.session.partitions) == [P0, P1] and step.session.next_epoch == 1
    assert cache.get("g", "m") is step.session and len(cache) == 1 and ("g", "m") in cache


def test_epochs_must_follow_one_another():
    cache = ShareSessionCache()
    session = cache.share_fetch("g", "m", 0, A).session
    assert cache.share_fetch("g", "m", 2, A).error_code == INVALID_SHARE_SESSION_EPOCH
    assert session.next_epoch == 1  # a refused epoch changes nothing
    assert cache.share_fetch("g", "m", 1, A).session is session
    assert session.next_epoch == 2
    assert cache.share_fetch("g", "m", 1, A).error_code == INVALID_SHARE_SESSION_EPOCH  # a repeat
    assert cache.share_acknowledge("g", "m", 2).session is session  # ShareAcknowledge advances it too
    assert cache.share_fetch("g", "m", 3, A).error_code == 0
    assert session.next_epoch == 4


def test_unknown_session_and_bad_epochs():
    cache = ShareSessionCache()
    assert cache.share_fetch("g", "m", 1, A).error_code == SHARE_SESSION_NOT_FOUND
    assert cache.share_fetch("g", "m", -1, A).error_code == SHARE_SESSION_NOT_FOUND
    assert cache.share_acknowledge("g", "m", 5).error_code == SHARE_SESSION_NOT_FOUND
    assert cache.share_acknowledge("g", "m", -1).error_code == SHARE_SESSION_NOT_FOUND
    cache.share_fetch("g", "m", 0, A)
    assert cache.share_acknowledge("g", "m", 0).error_code == INVALID_SHARE_SESSION_EPOCH  # never opens one
    assert cache.share_fetch("g", "m", -2, A).error_code == INVALID_SHARE_SESSION_EPOCH
    assert cache.share_acknowledge("g", "m", -7).error_code == INVALID_SHARE_SESSION_EPOCH
    assert cache.share_fetch("g", "other", 1, A).error_code == SHARE_SESSION_NOT_FOUND  # keyed by member
    assert cache.share_fetch("h", "m", 1, A).error_code == SHARE_SESSION_NOT_FOUND  # and by group
    assert cache.get("g", "m").next_epoch == 1


def test_the_epoch_wraps_from_int32_max_to_one():
    assert next_epoch(1) == 2 and next_epoch(MAX_EPOCH - 1) == MAX_EPOCH and next_epoch(MAX_EPOCH) == 1
    cache = ShareSessionCache()
    session = cache.share_fetch("g", "m", 0, A).session
    session.next_epoch = MAX_EPOCH
    assert cache.share_fetch("g", "m", MAX_EPOCH, A).error_code == 0
    assert session.next_epoch == 1
    assert cache.share_fetch("g", "m", 1, A).error_code == 0 and session.next_epoch == 2


def test_final_epoch_ends_the_session():
    cache = ShareSessionCache()
    session = cache.share_fetch("g", "m", 0, A).session
    step = cache.share_acknowledge("g", "m", -1)
    assert step.error_code == 0 and step.final and step.session is session and step.ended == [session]
    assert session.ended and cache.get("g", "m") is None and len(cache) == 0
    assert cache.share_fetch("g", "m", 1, A).error_code == SHARE_SESSION_NOT_FOUND
    session2 = cache.share_fetch("g", "m", 0, A).session
    step = cache.share_fetch("g", "m", -1, A)
    assert step.final and step.ended == [session2]
    assert cache.connection_closed(A) == []  # already gone


def test_epoch_zero_replaces_an_existing_session():
    cache = ShareSessionCache()
    old = cache.share_fetch("g", "m", 0, A, [P0]).session
    cache.share_fetch("g", "m", 1, A)
    step = cache.share_fetch("g", "m", 0, B, [P1])
    assert step.error_code == 0 and step.ended == [old] and old.ended and not step.session.ended
    assert cache.get("g", "m") is step.session and list(step.session.partitions) == [P1]
    assert step.session.next_epoch == 1 and len(cache) == 1
    assert cache.connection_closed(A) == []  # the replacement belongs to B now
    assert cache.connection_closed(B) == [step.session] and len(cache) == 0


def test_partition_set_add_forget_and_empty_means_unchanged():
    cache = ShareSessionCache()
    session = cache.share_fetch("g", "m", 0, A, [P0]).session
    session.update([], [])
    assert list(session.partitions) == [P0]
    session.update([P1, Q0, P0], [])
    assert list(session.partitions) == [P0, P1, Q0]  # the ones already there keep their place
    session.update([], [P1, ("nope", 3)])
    assert list(session.partitions) == [P0, Q0]
    session.update([P1], [P1])  # added, then forgotten
    assert list(session.partitions) == [P0, Q0]


def test_session_limit():
    cache = ShareSessionCache(max_sessions=2)
    cache.share_fetch("g", "m1", 0, A)
    cache.share_fetch("g", "m2", 0, A)
    step = cache.share_fetch("g", "m3", 0, A)
    assert step.error_code == SHARE_SESSION_LIMIT_REACHED and step.session is None and len(cache) == 2
    assert cache.share_fetch("g", "m1", 0, B).error_code == 0  # replacing is not a new session
    cache.share_acknowledge("g", "m2", -1)
    assert cache.share_fetch("g", "m3", 0, A).error_code == 0


def test_default_limit_is_kafkas_2000():
    cache = ShareSessionCache()
    for i in range(2000):
        assert cache.share_fetch("g", f"m{i}", 0, A).error_code == 0
    assert cache.share_fetch("g", "one-more", 0, A).error_code == SHARE_SESSION_LIMIT_REACHED
    assert len(cache.connection_closed(A)) == 2000 and len(cache) == 0


def test_connection_close_ends_only_the_sessions_it_created():
    cache = ShareSessionCache()
    a1 = cache.share_fetch("g", "m1", 0, A).session
    a2 = cache.share_fetch("h", "m1", 0, A).session
    b1 = cache.share_fetch("g", "m2", 0, B).session
    cache.share_fetch("g", "m1", 1, B)  # a request on another connection does not move the owner
    ended = cache.connection_closed(A)
    assert set(map(id, ended)) == {id(a1), id(a2)} and a1.ended and a2.ended and not b1.ended
    assert cache.get("g", "m2") is b1 and len(cache) == 1
    assert cache.connection_closed(A) == []
    assert cache.close_all() == [b1] and b1.ended and len(cache) == 0


@pytest.mark.parametrize("epoch", [1, 5, -1])
def test_acknowledge_never_changes_the_partition_set(epoch):
    cache = ShareSessionCache()
    session = cache.share_fetch("g", "m", 0, A, [P0]).session
    session.next_epoch = epoch if epoch > 0 else 1
    step = cache.share_acknowledge("g", "m", epoch)
    assert step.error_code == 0 and list(step.session.partitions) == [P0]
