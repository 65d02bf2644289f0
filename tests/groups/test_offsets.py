"""GroupCoordinator offsets and administration: commit rules, fetch, expiry, list, describe, delete."""

from __future__ import annotations

from logbroker.groups import decode_key, decode_offset_value, encode_subscription
from logbroker.groups import errors as E
from logbroker.groups.offsets_log import GroupKey, OffsetKey

from ._helpers import SESSION, T0, Harness

DAY = 24 * 3600 * 1000
TP = ("t", 0)


def commit(h, generation=-1, member="", instance=None, offsets=None, group="g", **kwargs):
    return h.commit_offsets(h.now, group, generation, member, instance, offsets or {TP: (10, 3, "m")}, **kwargs)


def test_standalone_commit_creates_an_offsets_only_group():
    h = Harness()
    result = commit(h)
    assert result.response == {TP: 0}
    [(key, value)] = result.records
    assert decode_key(key) == OffsetKey("g", "t", 0)
    assert decode_offset_value(value).commit_timestamp == h.now and decode_offset_value(value).leader_epoch == 3
    assert h.fetch_offsets("g", None) == {TP: (10, 3, "m")}
    assert h.list_groups() == [("g", "", "Empty")]
    assert h.describe_group("g").state == "Empty"


def test_commit_with_a_generation_to_an_unknown_group():
    h = Harness()
    assert commit(h, generation=1, member="m").response == {TP: E.ILLEGAL_GENERATION}
    commit(h)
    assert commit(h, generation=1, member="m").response == {TP: E.UNKNOWN_MEMBER_ID}  # the group exists now


def test_members_commit_in_their_generation_only():
    h = Harness()
    (a, b), gen = h.form(2)
    assert commit(h, gen, a, offsets={TP: (5, -1, None)}).response == {TP: 0}
    before = h.fetch_offsets("g", [TP])
    refused = [commit(h, gen - 1, a), commit(h, gen, "stranger"), commit(h),  # standalone on a live group
               commit(h, gen, a, instance="not-static")]
    assert [r.response[TP] for r in refused] == [E.ILLEGAL_GENERATION, E.UNKNOWN_MEMBER_ID, E.UNKNOWN_MEMBER_ID,
                                                 E.UNKNOWN_MEMBER_ID]
    assert all(r.records == [] for r in refused)
    assert h.fetch_offsets("g", [TP]) == before == {TP: (5, -1, "")}


def test_commit_during_rebalances():
    h = Harness()
    (a, b), gen = h.form(2)
    h.join(client_id="n", require_known_member_id=False)  # PreparingRebalance
    assert commit(h, gen, a).response == {TP: 0}  # the old generation may still commit what it processed
    h.join(member_id=a)
    h.join(member_id=b)  # CompletingRebalance, generation gen + 1
    assert commit(h, gen + 1, a).response == {TP: E.REBALANCE_IN_PROGRESS}
    assert commit(h, gen, a).response == {TP: E.ILLEGAL_GENERATION}


def test_metadata_too_large_is_per_partition():
    h = Harness()
    response = commit(h, offsets={TP: (1, -1, "x" * 4097), ("t", 1): (2, -1, "x" * 4096)}).response
    assert response == {TP: E.OFFSET_METADATA_TOO_LARGE, ("t", 1): 0}
    assert h.fetch_offsets("g", [TP, ("t", 1)]) == {TP: (-1, -1, ""), ("t", 1): (2, -1, "x" * 4096)}


def test_a_commit_keeps_the_session_alive():
    h = Harness()
    (a,), gen = h.form(1)
    for _ in range(3):
        h.now += SESSION - 1
        assert commit(h, gen, a).response == {TP: 0}
    assert h.heartbeat(h.now, "g", gen, a).response == 0


def test_fetch_offsets():
    h = Harness()
    commit(h, offsets={("b", 1): (7, -1, ""), ("a", 0): (3, 2, "x")})
    assert h.fetch_offsets("g", None) == {("a", 0): (3, 2, "x"), ("b", 1): (7, -1, "")}
    assert h.fetch_offsets("g", [("a", 0), ("zz", 9)]) == {("a", 0): (3, 2, "x"), ("zz", 9): (-1, -1, "")}
    assert h.fetch_offsets("nope", None) == {}


def test_explicit_retention_writes_value_v1_and_expires_then():
    h = Harness()
    result = commit(h, retention_ms=5_000)
    assert result.records[0][1][:2] == b"\x00\x01"
    assert decode_offset_value(result.records[0][1]).expire_timestamp == h.now + 5_000
    h.advance(600_000)  # the retention check runs every 10 minutes
    assert h.fetch_offsets("g", None) == {}
    assert h.list_groups() == []


def keep_alive(h, ms, gen, member):
    for _ in range(ms // 5_000):
        h.now += 5_000
        assert h.heartbeat(h.now, "g", gen, member).response == 0
        h.tick(h.now)


def test_offsets_of_an_empty_group_expire_after_retention_from_becoming_empty():
    h = Harness(offsets_retention_ms=60_000, offsets_retention_check_interval_ms=1_000)
    (a,), gen = h.form(1)
    commit(h, gen, a)
    keep_alive(h, 120_000, gen, a)  # committed long ago, but the group is live: kept
    assert h.fetch_offsets("g", None) == {TP: (10, 3, "m")}
    h.leave_group(h.now, "g", [(a, None)])
    h.now += 59_999
    h.tick(h.now)
    assert h.fetch_offsets("g", None) == {TP: (10, 3, "m")}
    results = h.advance(1_000)  # the next retention check
    assert h.fetch_offsets("g", None) == {} and h.describe_group("g").state == "Dead"
    [result] = results
    assert [(decode_key(k), v) for k, v in result.records] == [(OffsetKey("g", "t", 0), None), (GroupKey("g"), None)]
    assert h.restarted().durable_state() == h.coordinator.durable_state()


def test_standalone_offsets_expire_from_their_commit_time():
    h = Harness(offsets_retention_ms=DAY)
    commit(h, offsets={("t", 0): (1, -1, "")})
    h.now += DAY // 2
    commit(h, offsets={("t", 1): (1, -1, "")})
    h.now += DAY // 2 + 600_000
    h.tick(h.now)
    assert list(h.fetch_offsets("g", None)) == [("t", 1)]


def test_stable_consumer_groups_expire_only_offsets_of_topics_nobody_subscribes():
    h = Harness(offsets_retention_ms=60_000, offsets_retention_check_interval_ms=1_000)
    (a,), gen = h.form(1)
    commit(h, gen, a, offsets={("t", 0): (1, -1, ""), ("old", 0): (2, -1, "")})
    keep_alive(h, 55_000, gen, a)
    assert list(h.fetch_offsets("g", None)) == [("old", 0), ("t", 0)]
    keep_alive(h, 5_000, gen, a)
    assert list(h.fetch_offsets("g", None)) == [("t", 0)]
    assert h.describe_group("g").state == "Stable"


def test_next_deadline_includes_the_retention_check():
    h = Harness()
    commit(h)
    assert h.coordinator.next_deadline() == T0 + 600_000


def test_describe_and_list_groups():
    h = Harness()
    assert h.describe_group("g").state == "Dead" and h.describe_group("g").members == []
    (a, b), gen = h.form(2)
    d = h.describe_group("g")
    assert (d.state, d.protocol_type, d.protocol_name, d.generation_id) == ("Stable", "consumer", "range", gen)
    assert [m.member_id for m in d.members] == [a, b]
    assert d.members[0].metadata == encode_subscription(["t"]) and d.members[0].assignment != b""
    assert d.members[0].client_id == "c0" and d.members[0].client_host == "/127.0.0.1"
    h.join(member_id=a, topics=("t", "x"))
    d = h.describe_group("g")
    assert d.state == "PreparingRebalance" and d.protocol_name == "" and d.members[0].metadata == b""
    commit(h, group="other")
    assert h.list_groups() == [("g", "consumer", "PreparingRebalance"), ("other", "", "Empty")]


def test_delete_groups():
    h = Harness()
    (a,), gen = h.form(1)
    commit(h, gen, a, offsets={("t", 0): (1, -1, ""), ("t", 1): (2, -1, "")})
    commit(h, group="simple")
    result = h.delete_groups(h.now, ["g", "nope", "simple", ""])
    assert result.response == {"g": E.NON_EMPTY_GROUP, "nope": E.GROUP_ID_NOT_FOUND, "simple": 0,
                               "": E.INVALID_GROUP_ID}
    assert result.group_id is None and list(result.records_by_group()) == ["simple"]
    h.leave_group(h.now, "g", [(a, None)])
    result = h.delete_groups(h.now, ["g"])
    assert result.response == {"g": 0}
    assert [(decode_key(k), v) for k, v in result.records] == [
        (OffsetKey("g", "t", 0), None), (OffsetKey("g", "t", 1), None), (GroupKey("g"), None)]
    assert h.describe_group("g").state == "Dead" and h.fetch_offsets("g", [TP]) == {TP: (-1, -1, "")}
    assert h.list_groups() == []
    assert h.restarted().durable_state() == h.coordinator.durable_state()
    assert h.join(member_id=a).response.error_code == E.UNKNOWN_MEMBER_ID


def test_delete_offsets():
    h = Harness()
    assert h.delete_offsets(h.now, "g", [TP]).response == (E.GROUP_ID_NOT_FOUND, {})
    (a,), gen = h.form(1)
    commit(h, gen, a, offsets={("t", 0): (1, -1, ""), ("gone", 0): (2, -1, "")})
    result = h.delete_offsets(h.now, "g", [("t", 0), ("gone", 0), ("never", 3)])
    assert result.response == (0, {("t", 0): E.GROUP_SUBSCRIBED_TO_TOPIC, ("gone", 0): 0, ("never", 3): 0})
    assert [decode_key(k) for k, v in result.records] == [OffsetKey("g", "gone", 0)]
    assert list(h.fetch_offsets("g", None)) == [("t", 0)]
    h2 = Harness()
    h2.join(protocol_type="connect", protocols=[("p", b"")], require_known_member_id=False)
    assert h2.delete_offsets(h2.now, "g", [TP]).response == (E.NON_EMPTY_GROUP, {})


def test_replay_skips_newer_record_types_and_missing_tombstones():
    h = Harness()
    h.coordinator.replay(b"\x00\x05whatever", b"anything")
    h.coordinator.replay(b"\x00\x01\x00\x01g\x00\x01t\x00\x00\x00\x00", None)
    h.coordinator.replay(b"\x00\x02\x00\x01g", None)
    assert h.coordinator.durable_state().groups == {} and h.coordinator.durable_state().offsets == {}


def test_offsets_of_a_rebalancing_group_do_not_expire():
    h = Harness(offsets_retention_ms=60_000, offsets_retention_check_interval_ms=1_000)
    ids = [h.join_new(client_id=n, rebalance=300_000) for n in "ab"]
    joined = [h.join(member_id=m, rebalance=300_000) for m in ids]
    gen, leader = joined[-1].response.generation_id, joined[-1].response.leader
    a, b = leader, next(m for m in ids if m != leader)
    h.sync(b, gen)
    h.sync(a, gen, assignments={a: b"A", b: b"B"})
    commit(h, gen, a, offsets={("old", 0): (1, -1, "")})
    h.join(member_id=b, topics=("t", "v"), rebalance=300_000)  # a stays alive but never rejoins
    for _ in range(14):
        h.now += 5_000
        assert h.heartbeat(h.now, "g", gen, a).response == E.REBALANCE_IN_PROGRESS
        h.tick(h.now)
    assert h.describe_group("g").state == "PreparingRebalance"
    assert h.fetch_offsets("g", None) == {("old", 0): (1, -1, "")}
