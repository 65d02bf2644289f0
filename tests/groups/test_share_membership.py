"""Share-group membership (ShareGroupHeartbeat rules, SHARE_GROUPS.md §3.10), sans-I/O."""

from __future__ import annotations

from logbroker.groups.share_membership import FENCED_MEMBER_EPOCH, ShareMembership

TOPICS = {"a": 2, "b": 1}


def membership(**kwargs):
    return ShareMembership(TOPICS.get, **kwargs)


def test_join_assigns_every_partition_of_existing_subscribed_topics():
    m = membership()
    r = m.heartbeat(0, "g", "m1", 0, ["a", "nope"])
    assert (r.error_code, r.member_epoch, r.assignment) == (0, 1, {"a": [0, 1]})
    r2 = m.heartbeat(0, "g", "m2", 0, ["a", "b"])
    assert r2.assignment == {"a": [0, 1], "b": [0]} and r2.member_epoch == 2
    assert {x.member_id for x in m.members("g")} == {"m1", "m2"} and m.groups() == ["g"]


def test_epochs_fence_and_the_previous_epoch_is_accepted():
    m = membership()
    epoch = m.heartbeat(0, "g", "m1", 0, ["a"]).member_epoch
    m.heartbeat(0, "g", "m1", epoch, ["a", "b"])  # subscription change: new epoch
    new = m.heartbeat(0, "g", "m1", epoch + 1, None)
    assert new.error_code == 0 and new.member_epoch == epoch + 1
    assert m.heartbeat(0, "g", "m1", epoch, None).error_code == 0  # a lost response
    assert m.heartbeat(0, "g", "m1", epoch + 7, None).error_code == FENCED_MEMBER_EPOCH
    assert m.heartbeat(0, "g", "ghost", 1, None).error_code == 25


def test_rejoin_with_the_same_member_id_and_leave():
    m = membership()
    m.heartbeat(0, "g", "m1", 0, ["a"])
    assert m.heartbeat(0, "g", "m1", 0, ["b"]).assignment == {"b": [0]}
    assert m.heartbeat(0, "g", "m1", -1, None).member_epoch == -1
    assert m.members("g") == [] and m.groups() == []
    assert m.leave("g", "m1") is False


def test_invalid_requests():
    m = membership()
    assert m.heartbeat(0, "g", "", 0, ["a"]).error_code == 42
    assert m.heartbeat(0, "g", "m", 0, None).error_code == 42
    assert m.heartbeat(0, "g", "m", -2, None).error_code == 42


def test_remote_members_expire_embedded_ones_do_not():
    m = membership(session_timeout_ms=100)
    m.heartbeat(0, "g", "remote", 0, ["a"])
    m.heartbeat(0, "g", "queue", 0, ["a"], embedded=True)
    m.expire(101)
    assert [x.member_id for x in m.members("g")] == ["queue"]
    assert m.heartbeat(101, "g", "remote", 1, None).error_code == 25


def test_a_new_topic_changes_the_assignment_and_bumps_the_epoch():
    counts = {"a": 1}
    m = ShareMembership(counts.get)
    first = m.heartbeat(0, "g", "m", 0, ["a", "c"])
    counts["c"] = 3
    later = m.heartbeat(0, "g", "m", first.member_epoch, None)
    assert later.assignment == {"a": [0], "c": [0, 1, 2]} and later.member_epoch > first.member_epoch
