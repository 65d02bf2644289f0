"""GroupCoordinator membership: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, static members and timers."""

from __future__ import annotations

from logbroker.groups import decode_group_value, decode_key, encode_assignment, encode_subscription
from logbroker.groups import errors as E
from logbroker.groups.offsets_log import GroupKey

from ._helpers import REBALANCE, SESSION, T0, Harness


def completed(result, kind="join"):
    return {m: r for m, k, r in result.completed if k == kind}


def group_records(h, group="g"):
    return [decode_group_value(v) for k, v in h.log if decode_key(k) == GroupKey(group) and v is not None]


# ---- JoinGroup -------------------------------------------------------------------------------------

def test_first_member_is_told_its_id_then_leads_generation_one():
    h = Harness()
    first = h.join(client_id="app").response
    assert first.error_code == E.MEMBER_ID_REQUIRED and first.member_id == "app-1" and first.generation_id == -1
    assert h.describe_group("g").state == "Empty" and h.log == []
    joined = h.join(member_id="app-1").response
    assert joined.error_code == 0 and joined.generation_id == 1 and joined.leader == "app-1"
    assert joined.protocol_type == "consumer" and joined.protocol_name == "range"
    assert [(m.member_id, m.metadata) for m in joined.members] == [("app-1", encode_subscription(["t"]))]
    assert h.describe_group("g").state == "CompletingRebalance"


def test_join_without_member_id_requirement_is_immediate():
    h = Harness()
    response = h.join(client_id="x", require_known_member_id=False).response
    assert response.error_code == 0 and response.member_id == "x-1" and response.generation_id == 1


def test_join_validation_errors():
    h = Harness()
    assert h.join(group="").response.error_code == E.INVALID_GROUP_ID
    assert h.join(session=5999).response.error_code == E.INVALID_SESSION_TIMEOUT
    assert h.join(session=1_800_001).response.error_code == E.INVALID_SESSION_TIMEOUT
    assert h.join(member_id="ghost").response.error_code == E.UNKNOWN_MEMBER_ID
    assert h.join(protocols=[]).response.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.join(protocol_type="").response.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.list_groups() == []  # failed joins leave nothing behind


def test_inconsistent_protocols_against_existing_members():
    h = Harness()
    h.form(1)
    assert h.join(protocol_type="connect").response.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.join(protocols=[("roundrobin", b"")]).response.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.join(protocols=[("roundrobin", b""), ("range", b"")]).response.error_code == E.MEMBER_ID_REQUIRED


def test_protocol_vote_picks_the_most_preferred_common_protocol():
    h = Harness()
    both = [("range", b"r"), ("roundrobin", b"rr")]
    prefs = [both, both, list(reversed(both))]
    ids = [h.join_new(client_id=f"c{i}", protocols=p) for i, p in enumerate(prefs)]
    results = [h.join(member_id=m, protocols=p) for m, p in zip(ids, prefs)]
    assert results[-1].response.protocol_name == "range"  # two votes to one
    assert completed(results[-1])[ids[0]].members[2].metadata == b"r"  # metadata of the chosen protocol

    h2 = Harness()
    prefs = [both, list(reversed(both)), [("roundrobin", b"")]]
    ids = [h2.join_new(client_id=f"c{i}", protocols=p) for i, p in enumerate(prefs)]
    results = [h2.join(member_id=m, protocols=p) for m, p in zip(ids, prefs)]
    assert results[-1].response.protocol_name == "roundrobin"  # the only candidate supported by all


def test_a_new_member_triggers_a_rebalance_the_others_learn_by_heartbeat():
    h = Harness()
    (a,), gen = h.form(1)
    b = h.join_new(client_id="b")
    assert h.heartbeat(h.now, "g", gen, a).response == 0  # a pending id does not rebalance yet
    pending = h.join(member_id=b)
    assert pending.response is None and h.describe_group("g").state == "PreparingRebalance"
    assert h.heartbeat(h.now, "g", gen, a).response == E.REBALANCE_IN_PROGRESS
    rejoin = h.join(member_id=a)
    leader_view, follower_view = rejoin.response, completed(rejoin)[b]
    assert leader_view.generation_id == follower_view.generation_id == gen + 1
    assert leader_view.leader == follower_view.leader == a  # the leader is kept
    assert [m.member_id for m in leader_view.members] == [a, b] and follower_view.members == []
    assert h.heartbeat(h.now, "g", gen, a).response == E.ILLEGAL_GENERATION
    assert h.heartbeat(h.now, "g", gen + 1, a).response == 0  # CompletingRebalance: heartbeats are fine


def test_rejoin_with_same_metadata_returns_the_current_generation():
    h = Harness()
    (a, b), gen = h.form(2)
    follower = b if h.describe_group("g").leader == a else a
    again = h.join(member_id=follower)
    assert again.response.error_code == 0 and again.response.generation_id == gen and again.response.members == []
    assert h.describe_group("g").state == "Stable"
    changed = h.join(member_id=follower, topics=("t", "u"))
    assert changed.response is None and h.describe_group("g").state == "PreparingRebalance"


def test_leader_rejoin_in_stable_forces_a_rebalance():
    h = Harness()
    (a, b), gen = h.form(2)
    leader = h.describe_group("g").leader
    assert h.join(member_id=leader).response is None
    assert h.describe_group("g").state == "PreparingRebalance"


def test_rejoin_during_completing_rebalance():
    h = Harness()
    a = h.join_new()
    first = h.join(member_id=a).response
    again = h.join(member_id=a).response  # lost the first response: same metadata, same answer
    assert again == first and h.describe_group("g").state == "CompletingRebalance"
    h.join(member_id=a, topics=("u",))  # changed metadata: a new generation
    assert h.describe_group("g").generation_id == first.generation_id + 1


def test_second_join_while_waiting_supersedes_the_first():
    h = Harness()
    (a, b), gen = h.form(2)
    first = h.join(member_id=a, topics=("t", "x"))
    assert first.response is None
    second = h.join(member_id=a, topics=("t", "x"))
    assert second.response is None
    assert completed(second)[a].error_code == E.REBALANCE_IN_PROGRESS
    done = h.join(member_id=b)
    assert completed(done)[a].generation_id == gen + 1


def test_max_group_size():
    h = Harness(max_group_size=2)
    h.form(2)
    assert h.join().response.error_code == E.GROUP_MAX_SIZE_REACHED


# ---- SyncGroup ---------------------------------------------------------------------------------------

def test_followers_wait_for_the_leaders_assignment_which_is_written_first():
    h = Harness()
    ids = [h.join_new(client_id=f"c{i}") for i in range(3)]
    results = [h.join(member_id=m) for m in ids]
    gen, leader = results[-1].response.generation_id, results[-1].response.leader
    followers = [m for m in ids if m != leader]
    assert all(h.sync(m, gen).response is None for m in followers)
    assignments = {followers[0]: encode_assignment([("t", 0)]), leader: encode_assignment([("t", 1)])}
    done = h.sync(leader, gen, assignments=assignments)
    assert done.response.error_code == 0 and done.response.assignment == assignments[leader]
    syncs = completed(done, "sync")
    assert syncs[followers[0]].assignment == assignments[followers[0]]
    assert syncs[followers[1]].error_code == 0 and syncs[followers[1]].assignment == b""  # left out: empty
    [record] = [decode_group_value(v) for k, v in done.records]
    assert record.generation == gen and record.leader == leader and record.protocol == "range"
    assert {m.member_id: m.assignment for m in record.members} == {m: assignments.get(m, b"") for m in ids}
    assert h.describe_group("g").state == "Stable"
    # in Stable a sync returns the member's assignment at once
    assert h.sync(followers[0], gen).response.assignment == assignments[followers[0]]


def test_sync_errors():
    h = Harness()
    assert h.sync("x", 1).response.error_code == E.UNKNOWN_MEMBER_ID  # no such group
    (a, b), gen = h.form(2)
    assert h.sync("x", gen).response.error_code == E.UNKNOWN_MEMBER_ID
    assert h.sync(a, gen + 5).response.error_code == E.ILLEGAL_GENERATION
    assert h.sync_group(h.now, "g", gen, a, None, "consumer", "roundrobin", {}).response.error_code == \
        E.INCONSISTENT_GROUP_PROTOCOL
    assert h.sync_group(h.now, "g", gen, a, None, "connect", None, {}).response.error_code == \
        E.INCONSISTENT_GROUP_PROTOCOL
    assert h.sync_group(h.now, "", gen, a, None, None, None, {}).response.error_code == E.INVALID_GROUP_ID
    h.join_new(client_id="c")
    h.join(member_id="c-3")
    assert h.sync(a, gen).response.error_code == E.REBALANCE_IN_PROGRESS


def test_a_rebalance_answers_waiting_syncs_with_rebalance_in_progress():
    h = Harness()
    ids = [h.join_new(client_id=f"c{i}") for i in range(2)]
    results = [h.join(member_id=m) for m in ids]
    gen, leader = results[-1].response.generation_id, results[-1].response.leader
    follower = next(m for m in ids if m != leader)
    assert h.sync(follower, gen).response is None
    newcomer = h.join(client_id="n", require_known_member_id=False)
    assert completed(newcomer, "sync")[follower].error_code == E.REBALANCE_IN_PROGRESS


def test_members_that_never_sync_are_removed_at_the_rebalance_timeout():
    h = Harness()
    ids = [h.join_new(client_id=f"c{i}") for i in range(2)]
    results = [h.join(member_id=m) for m in ids]
    gen, leader = results[-1].response.generation_id, results[-1].response.leader
    follower = next(m for m in ids if m != leader)
    h.sync(leader, gen, assignments={leader: b"L", follower: b"F"})
    for _ in range(REBALANCE // 5_000 - 1):  # both stay alive; the follower just never syncs
        h.now += 5_000
        assert h.heartbeat(h.now, "g", gen, leader).response == 0
        assert h.heartbeat(h.now, "g", gen, follower).response == 0
    assert h.coordinator.next_deadline() == h.now + 5_000
    h.advance(5_000)
    assert [m.member_id for m in h.describe_group("g").members] == [leader]
    assert h.heartbeat(h.now, "g", gen, leader).response == E.REBALANCE_IN_PROGRESS


# ---- Heartbeat and sessions ---------------------------------------------------------------------------

def test_heartbeat_errors():
    h = Harness()
    assert h.heartbeat(h.now, "g", 1, "x").response == E.UNKNOWN_MEMBER_ID
    assert h.heartbeat(h.now, "", 1, "x").response == E.INVALID_GROUP_ID
    (a,), gen = h.form(1)
    assert h.heartbeat(h.now, "g", gen, "x").response == E.UNKNOWN_MEMBER_ID
    assert h.heartbeat(h.now, "g", gen - 1, a).response == E.ILLEGAL_GENERATION
    assert h.heartbeat(h.now, "g", gen, a, "some-instance").response == E.UNKNOWN_MEMBER_ID


def test_session_expiry_removes_the_member_and_the_rest_rebalance():
    h = Harness()
    (a, b), gen = h.form(2)
    h.now += SESSION - 1
    assert h.heartbeat(h.now, "g", gen, a).response == 0
    assert h.coordinator.next_deadline() == h.now + 1  # b's session
    h.advance(1)
    assert [m.member_id for m in h.describe_group("g").members] == [a]
    assert h.describe_group("g").state == "PreparingRebalance"
    assert h.heartbeat(h.now, "g", gen, b).response == E.UNKNOWN_MEMBER_ID
    assert h.heartbeat(h.now, "g", gen, a).response == E.REBALANCE_IN_PROGRESS
    assert h.join(member_id=a).response.generation_id == gen + 1


def test_expiry_happens_even_if_nobody_ticks():
    h = Harness()
    (a, b), gen = h.form(2)
    h.now += SESSION + 5_000
    assert h.heartbeat(h.now, "g", gen, a).response == E.UNKNOWN_MEMBER_ID
    assert h.heartbeat(h.now, "g", gen, b).response == E.UNKNOWN_MEMBER_ID


def test_last_member_leaving_by_expiry_empties_the_group_with_a_new_generation_written():
    h = Harness()
    (a,), gen = h.form(1)
    results = h.advance(SESSION)
    assert [r.group_id for r in results] == ["g"]
    assert h.describe_group("g").state == "Empty"
    last = group_records(h)[-1]
    assert last.generation == gen + 1 and last.members == () and last.protocol is None and last.leader is None
    assert last.current_state_timestamp == h.now


def test_members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout():
    h = Harness()
    (a, b), gen = h.form(2)
    leader = h.describe_group("g").leader
    other = b if leader == a else a
    h.join(member_id=other, topics=("t", "u"))  # rebalance; the leader heartbeats but never rejoins
    for _ in range(REBALANCE // 5_000 - 1):
        h.now += 5_000
        assert h.heartbeat(h.now, "g", gen, leader).response == E.REBALANCE_IN_PROGRESS
    h.now += 4_999
    assert h.tick(h.now) == [] and h.describe_group("g").state == "PreparingRebalance"
    [result] = h.advance(1)
    response = completed(result)[other]
    assert response.generation_id == gen + 1 and response.leader == other  # a joined member now leads
    assert [m.member_id for m in h.describe_group("g").members] == [other]


def test_member_id_required_members_hold_the_join_phase_until_their_session_ends():
    h = Harness()
    (a,), gen = h.form(1)
    h.join_new(client_id="late")  # told its id, never comes back
    h.join(member_id=a, topics=("t", "u"))
    assert h.describe_group("g").state == "PreparingRebalance"
    [result] = h.advance(SESSION)
    assert completed(result)[a].generation_id == gen + 1


def test_new_member_join_timeout():
    h = Harness(new_member_join_timeout_ms=20_000)
    (a,), gen = h.form(1)
    b = h.join(client_id="b", require_known_member_id=False)
    assert b.response is None
    # a keeps heartbeating (it is told to rejoin but never does); b waits in JoinGroup
    for _ in range(3):
        h.now += 5_000
        assert h.heartbeat(h.now, "g", gen, a).response == E.REBALANCE_IN_PROGRESS
    h.now += 5_000
    result = h.heartbeat(h.now, "g", gen, a)  # the call first fires b's new-member deadline
    assert completed(result)["b-2"].error_code == E.UNKNOWN_MEMBER_ID
    assert result.response == E.REBALANCE_IN_PROGRESS and len(h.describe_group("g").members) == 1


def test_initial_rebalance_delay_waits_for_more_members_then_completes_on_tick():
    h = Harness(initial_rebalance_delay_ms=3_000)
    a = h.join(client_id="a", require_known_member_id=False)
    assert a.response is None and h.coordinator.next_deadline() == h.now + 3_000
    h.now += 2_000
    h.join(client_id="b", require_known_member_id=False)  # a new member extends the delay
    assert h.advance(1_000) == []
    assert h.describe_group("g").state == "PreparingRebalance"
    assert h.coordinator.next_deadline() == h.now + 3_000
    [result] = h.advance(3_000)
    responses = completed(result)
    assert set(responses) == {"a-1", "b-2"} and {r.generation_id for r in responses.values()} == {1}


def test_initial_rebalance_delay_is_bounded_by_the_rebalance_timeout():
    h = Harness(initial_rebalance_delay_ms=3_000)
    h.join(client_id="a", require_known_member_id=False, rebalance=7_000)
    for i in range(10):  # a new member every second
        h.now += 1_000
        h.tick(h.now)
        if h.describe_group("g").state != "PreparingRebalance":
            break
        h.join(client_id=f"m{i}", require_known_member_id=False, rebalance=7_000)
    assert h.describe_group("g").state == "CompletingRebalance"
    assert h.now == T0 + 7_000  # the delays stop at the rebalance timeout


# ---- LeaveGroup ----------------------------------------------------------------------------------

def test_leave_removes_the_member_and_rebalances():
    h = Harness()
    (a, b), gen = h.form(2)
    result = h.leave_group(h.now, "g", [(a, None)])
    assert result.response.error_code == 0 and result.response.members == [(a, None, 0)]
    assert h.describe_group("g").state == "PreparingRebalance"
    assert h.join(member_id=b).response.generation_id == gen + 1


def test_leave_errors():
    h = Harness()
    assert h.leave_group(h.now, "g", [("x", None)]).response.members == [("x", None, E.UNKNOWN_MEMBER_ID)]
    assert h.leave_group(h.now, "", [("x", None)]).response.error_code == E.INVALID_GROUP_ID
    (a,), gen = h.form(1)
    response = h.leave_group(h.now, "g", [("x", None), ("", "nobody")]).response
    assert response.error_code == 0 and [m.error_code for m in response.members] == [E.UNKNOWN_MEMBER_ID] * 2
    assert h.describe_group("g").state == "Stable"


def test_last_member_leaving_empties_the_group_and_writes_it():
    h = Harness()
    (a,), gen = h.form(1)
    result = h.leave_group(h.now, "g", [(a, None)])
    [(key, value)] = result.records
    record = decode_group_value(value)
    assert record.generation == gen + 1 and record.members == ()
    assert h.describe_group("g").state == "Empty"


def test_leaving_while_waiting_in_join_answers_that_join():
    h = Harness()
    (a, b), gen = h.form(2)
    h.join(member_id=a, topics=("t", "u"))
    result = h.leave_group(h.now, "g", [(a, None)])
    assert completed(result)[a].error_code == E.UNKNOWN_MEMBER_ID
    assert h.join(member_id=b).response.generation_id == gen + 1


def test_leave_of_a_pending_member_lets_the_join_phase_complete():
    h = Harness()
    (a,), gen = h.form(1)
    late = h.join_new(client_id="late")
    h.join(member_id=a, topics=("t", "u"))
    result = h.leave_group(h.now, "g", [(late, None)])
    assert completed(result)[a].generation_id == gen + 1


# ---- static membership -----------------------------------------------------------------------------

def static_group(h, count=2):
    """A Stable group of static members i0, i1 ... formed during an initial rebalance delay."""
    for n in range(count):
        assert h.join(instance=f"i{n}", client_id=f"c{n}").response is None
    ids = [f"i{n}-{n + 1}" for n in range(count)]
    delay = h.settings["initial_rebalance_delay_ms"]
    assert h.advance(delay) == []  # members arrived during the delay: it is extended once more
    [result] = h.advance(delay)
    responses = completed(result)
    gen, leader = responses[ids[0]].generation_id, responses[ids[0]].leader
    h.sync(leader, gen, instance=f"i{ids.index(leader)}",
           assignments={m: encode_assignment([("t", n)]) for n, m in enumerate(ids)})
    for n, m in enumerate(ids):
        if m != leader:
            h.sync(m, gen, instance=f"i{n}")
    return ids, gen, leader


def test_static_members_join_without_member_id_required():
    h = Harness()
    response = h.join(instance="inst", client_id="c").response
    assert response.error_code == 0 and response.member_id == "inst-1"
    assert h.list_groups() == [("g", "consumer", "CompletingRebalance")]


def test_static_member_restart_fences_the_old_id_without_rebalancing():
    h = Harness(initial_rebalance_delay_ms=100)
    ids, gen, leader = static_group(h)
    follower = next(m for m in ids if m != leader)
    instance = f"i{ids.index(follower)}"
    result = h.join(instance=instance, client_id="again")
    response = result.response
    assert response.error_code == 0 and response.generation_id == gen and response.members == []
    new_id = response.member_id
    assert h.describe_group("g").state == "Stable"
    [record] = [decode_group_value(v) for k, v in result.records]
    assert new_id in [m.member_id for m in record.members] and follower not in [m.member_id for m in record.members]
    assert h.heartbeat(h.now, "g", gen, follower, instance).response == E.FENCED_INSTANCE_ID
    assert h.commit_offsets(h.now, "g", gen, follower, instance, {("t", 0): (1, -1, "")}).response == {
        ("t", 0): E.FENCED_INSTANCE_ID}
    assert h.sync(new_id, gen, instance=instance).response.assignment == encode_assignment(
        [("t", ids.index(follower))])


def test_static_leader_restart_skips_assignment():
    h = Harness(initial_rebalance_delay_ms=100)
    ids, gen, leader = static_group(h)
    response = h.join(instance=f"i{ids.index(leader)}", client_id="again").response
    assert response.skip_assignment and response.leader == response.member_id
    assert len(response.members) == 2


def test_static_replacement_fences_a_waiting_join_of_the_old_id():
    h = Harness(initial_rebalance_delay_ms=100)
    ids, gen, leader = static_group(h)
    h.join(member_id=ids[0], instance="i0", topics=("t", "u"))  # waits: the other member must rejoin
    result = h.join(instance="i0", client_id="again")
    assert completed(result)[ids[0]].error_code == E.FENCED_INSTANCE_ID


def test_static_members_that_do_not_rejoin_are_kept_until_their_session_ends():
    h = Harness(initial_rebalance_delay_ms=100)
    ids, gen, leader = static_group(h)
    h.join(member_id=ids[0], instance="i0", topics=("t", "u"))
    for _ in range(REBALANCE // 5_000 - 1):  # i1 stays alive but does not rejoin
        h.now += 5_000
        assert h.heartbeat(h.now, "g", gen, ids[1], "i1").response == E.REBALANCE_IN_PROGRESS
    [result] = h.advance(5_000)
    response = completed(result)[ids[0]]
    assert response.generation_id == gen + 1 and len(response.members) == 2  # i1 stays, with its metadata
    assert [m.member_id for m in h.describe_group("g").members] == ids
    assert h.heartbeat(h.now, "g", gen + 1, ids[1], "i1").response == 0


def test_static_leave_by_instance_id():
    h = Harness(initial_rebalance_delay_ms=100)
    ids, gen, leader = static_group(h)
    response = h.leave_group(h.now, "g", [("wrong", "i1"), ("", "i0")]).response
    assert [m.error_code for m in response.members] == [E.FENCED_INSTANCE_ID, 0]
    assert [m.member_id for m in h.describe_group("g").members] == [ids[1]]


def test_a_static_leader_that_does_not_rejoin_hands_leadership_to_a_joined_member():
    h = Harness(initial_rebalance_delay_ms=100)
    ids, gen, leader = static_group(h)
    other = next(m for m in ids if m != leader)
    h.join(member_id=other, instance=f"i{ids.index(other)}", topics=("t", "u"))
    for _ in range(REBALANCE // 5_000 - 1):  # the leader stays alive but does not rejoin
        h.now += 5_000
        assert h.heartbeat(h.now, "g", gen, leader, f"i{ids.index(leader)}").response == E.REBALANCE_IN_PROGRESS
    [result] = h.advance(5_000)
    response = completed(result)[other]
    assert response.leader == other and len(response.members) == 2  # the static leader stays a member


def test_the_join_phase_waits_while_no_member_has_rejoined():
    h = Harness(initial_rebalance_delay_ms=100)
    ids, gen, leader = static_group(h)
    h.join(client_id="d", require_known_member_id=False)  # a dynamic newcomer starts a rebalance ...
    h.leave_group(h.now, "g", [("d-3", None)])  # ... and leaves again: no member is waiting
    for _ in range(REBALANCE // 5_000 + 2):
        h.now += 5_000
        for n, m in enumerate(ids):
            assert h.heartbeat(h.now, "g", gen, m, f"i{n}").response == E.REBALANCE_IN_PROGRESS
        h.tick(h.now)
    assert h.describe_group("g").state == "PreparingRebalance"
    assert h.describe_group("g").generation_id == gen
    h.join(member_id=ids[0], instance="i0")
    results = h.advance(REBALANCE)  # i1 never rejoins: it stays (static) but does not hold things up
    assert completed(results[0])[ids[0]].generation_id == gen + 1


def test_a_second_sync_while_waiting_supersedes_the_first():
    h = Harness()
    ids = [h.join_new(client_id=f"c{i}") for i in range(2)]
    results = [h.join(member_id=m) for m in ids]
    gen, leader = results[-1].response.generation_id, results[-1].response.leader
    follower = next(m for m in ids if m != leader)
    h.sync(follower, gen)
    again = h.sync(follower, gen)
    assert again.response is None and completed(again, "sync")[follower].error_code == E.REBALANCE_IN_PROGRESS
    done = h.sync(leader, gen, assignments={follower: b"F"})
    assert completed(done, "sync")[follower].assignment == b"F"


def test_leaving_while_waiting_in_sync_answers_that_sync():
    h = Harness()
    ids = [h.join_new(client_id=f"c{i}") for i in range(2)]
    results = [h.join(member_id=m) for m in ids]
    gen, leader = results[-1].response.generation_id, results[-1].response.leader
    follower = next(m for m in ids if m != leader)
    h.sync(follower, gen)
    result = h.leave_group(h.now, "g", [(follower, None)])
    assert completed(result, "sync")[follower].error_code == E.UNKNOWN_MEMBER_ID
    assert h.describe_group("g").state == "PreparingRebalance"


def test_static_replacement_during_completing_rebalance_rebalances_and_fences_the_waiting_sync():
    h = Harness(initial_rebalance_delay_ms=100)
    ids, gen, leader = static_group(h)
    h.join(member_id=ids[0], instance="i0", topics=("t", "u"))
    results = [h.join(member_id=ids[1], instance="i1")]
    responses = {**completed(results[0]), ids[1]: results[0].response}
    new_gen, new_leader = responses[ids[0]].generation_id, responses[ids[0]].leader
    follower = next(m for m in ids if m != new_leader)
    instance = f"i{ids.index(follower)}"
    assert h.sync(follower, new_gen, instance=instance).response is None
    replaced = h.join(instance=instance, client_id="again")
    assert completed(replaced, "sync")[follower].error_code == E.FENCED_INSTANCE_ID
    assert replaced.response is None and h.describe_group("g").state == "PreparingRebalance"


def test_known_member_with_inconsistent_protocols():
    h = Harness()
    (a, b), gen = h.form(2)
    assert h.join(member_id=a, protocols=[("other", b"")]).response.error_code == E.INCONSISTENT_GROUP_PROTOCOL


def test_max_group_size_during_a_rebalance_removes_a_known_member_that_would_overflow_it():
    h = Harness(max_group_size=2)
    (a, b), gen = h.form(2)
    h.join(member_id=b, topics=("t", "u"))  # b waits in JoinGroup
    h.join(client_id="n", require_known_member_id=False)  # a newcomer fills the second seat
    response = h.join(member_id=a).response
    assert response.error_code == E.GROUP_MAX_SIZE_REACHED
    assert a not in [m.member_id for m in h.describe_group("g").members]
