"""Restarts: the coordinator rebuilt by replaying its records has the same durable state, and its
restored groups behave as Kafka's loaded groups do."""

from __future__ import annotations

from logbroker.groups import GroupCoordinator, encode_assignment
from logbroker.groups import errors as E

from ._helpers import SESSION, Harness


def test_replayed_state_equals_live_state():
    h = Harness()
    (a, b), gen = h.form(2)
    h.commit_offsets(h.now, "g", gen, a, None, {("t", 0): (5, 1, "x"), ("t", 1): (6, -1, "")})
    h.commit_offsets(h.now, "solo", -1, "", None, {("u", 0): (1, -1, "")})
    restored = h.restarted()
    assert restored.durable_state() == h.coordinator.durable_state()
    assert restored.fetch_offsets("g", None) == h.fetch_offsets("g", None)
    assert restored.list_groups() == h.list_groups()
    assert restored.describe_group("g") == h.describe_group("g")


def test_restored_members_keep_their_generation_and_assignment():
    h = Harness()
    (a, b), gen = h.form(2)
    h.restart()
    assert h.heartbeat(h.now, "g", gen, a).response == 0
    assert h.sync(b, gen).response.assignment == encode_assignment([("t", 1)])
    assert h.commit_offsets(h.now, "g", gen, a, None, {("t", 0): (1, -1, "")}).response == {("t", 0): 0}


def test_restored_sessions_start_when_loaded():
    h = Harness()
    (a, b), gen = h.form(2)
    h.now += 60_000  # the broker was down for a minute
    h.restart()  # loaded(now)
    assert h.coordinator.next_deadline() == h.now + SESSION
    h.now += SESSION - 1
    assert h.heartbeat(h.now, "g", gen, a).response == 0
    assert h.advance(1) == []  # b never came back: nothing to write or answer, but it is gone
    assert [m.member_id for m in h.describe_group("g").members] == [a]
    assert h.heartbeat(h.now, "g", gen, a).response == E.REBALANCE_IN_PROGRESS


def test_without_loaded_the_first_call_arms_the_sessions():
    h = Harness()
    (a, b), gen = h.form(2)
    fresh = GroupCoordinator(**h.settings)
    for key, value in h.log:
        fresh.replay(key, value)
    assert fresh.next_deadline() is None
    h.now += 60_000
    assert fresh.heartbeat(h.now, "g", gen, a).response == 0
    assert fresh.next_deadline() == h.now + SESSION


def test_a_restart_mid_rebalance_returns_to_the_last_written_generation():
    h = Harness()
    (a, b), gen = h.form(2)
    c = h.join(client_id="late", require_known_member_id=False)  # not written anywhere yet
    h.join(member_id=a)
    h.join(member_id=b)  # generation gen + 1 completed, but its assignment was never written
    h.restart()
    d = h.describe_group("g")
    assert (d.state, d.generation_id, [m.member_id for m in d.members]) == ("Stable", gen, [a, b])
    assert h.heartbeat(h.now, "g", gen + 1, a).response == E.ILLEGAL_GENERATION
    assert h.heartbeat(h.now, "g", gen, "late-3").response == E.UNKNOWN_MEMBER_ID
    assert c.response is None


def test_a_restored_empty_group_continues_its_generations():
    h = Harness()
    (a,), gen = h.form(1)
    h.leave_group(h.now, "g", [(a, None)])
    h.restart()
    assert h.describe_group("g").state == "Empty" and h.describe_group("g").generation_id == gen + 1
    response = h.join(client_id="x", require_known_member_id=False).response
    assert response.generation_id == gen + 2


def test_replaying_a_group_record_from_outside_rebuilds_the_live_group():
    h = Harness()
    (a, b), gen = h.form(2)
    other = Harness()
    for key, value in h.log:
        other.coordinator.replay(key, value)
    other.coordinator.loaded(h.now)
    assert other.describe_group("g") == h.describe_group("g")
