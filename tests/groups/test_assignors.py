"""Assignors: Kafka's documented examples, and the properties every assignment must have."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logbroker.groups.assignors import ASSIGNORS, assign, partitions_to_revoke
from logbroker.groups.consumer_protocol import Subscription


def subs(**topics_by_member) -> dict[str, Subscription]:
    return {m: Subscription(tuple(ts)) for m, ts in topics_by_member.items()}


def test_range_matches_kafkas_javadoc_example():
    # RangeAssignor javadoc: C0, C1 on t0, t1 with 3 partitions each
    out = assign("range", subs(C0=["t0", "t1"], C1=["t0", "t1"]), {"t0": 3, "t1": 3})
    assert out == {"C0": [("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)], "C1": [("t0", 2), ("t1", 2)]}


def test_roundrobin_matches_kafkas_javadoc_examples():
    out = assign("roundrobin", subs(C0=["t0", "t1"], C1=["t0", "t1"]), {"t0": 3, "t1": 3})
    assert out == {"C0": [("t0", 0), ("t0", 2), ("t1", 1)], "C1": [("t0", 1), ("t1", 0), ("t1", 2)]}
    # unequal subscriptions: C0 t0; C1 t0, t1; C2 t0, t1, t2 with 1, 2, 3 partitions
    out = assign("roundrobin", subs(C0=["t0"], C1=["t0", "t1"], C2=["t0", "t1", "t2"]), {"t0": 1, "t1": 2, "t2": 3})
    assert out == {"C0": [("t0", 0)], "C1": [("t1", 0)], "C2": [("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]}


def test_members_without_partitions_still_appear():
    out = assign("range", subs(a=["t"], b=["t"], c=["t"], d=["other"]), {"t": 2})
    assert out == {"a": [("t", 0)], "b": [("t", 1)], "c": [], "d": []}


def test_static_members_sort_by_instance_id_first():
    out = assign("range", subs(m1=["t"], m2=["t"], m3=["t"]), {"t": 3}, group_instance_ids={"m3": "a", "m1": "b"})
    assert out == {"m3": [("t", 0)], "m1": [("t", 1)], "m2": [("t", 2)]}


def test_unknown_assignor_and_empty_group():
    with pytest.raises(ValueError, match="range"):
        assign("nope", subs(a=["t"]), {"t": 1})
    assert assign("range", {}, {"t": 1}) == {}


def test_partitions_to_revoke():
    old = {"a": [("t", 0), ("t", 1)], "b": [("t", 2)], "c": []}
    new = {"a": [("t", 0)], "b": [("t", 2)], "c": [("t", 1)]}
    assert partitions_to_revoke(old, new) == {"a": [("t", 1)]}


# ---- properties ---------------------------------------------------------------------------------

TOPICS = ["a", "b", "c", "d"]
topic_sizes = st.fixed_dictionaries({t: st.integers(0, 7) for t in TOPICS})
member_ids = st.lists(st.text(alphabet="mnopq", min_size=1, max_size=3), min_size=1, max_size=6, unique=True)


@st.composite
def groups(draw, equal=False):
    members = draw(member_ids)
    if equal:
        topics = draw(st.lists(st.sampled_from(TOPICS), min_size=1, unique=True))
        return {m: Subscription(tuple(topics)) for m in members}, draw(topic_sizes)
    topics = st.lists(st.sampled_from(TOPICS), unique=True)
    return {m: Subscription(tuple(draw(topics))) for m in members}, draw(topic_sizes)


def subscribed_partitions(subscriptions, sizes):
    return {(t, p) for s in subscriptions.values() for t in s.topics for p in range(sizes[t])}


@pytest.mark.parametrize("name", ["range", "roundrobin", "cooperative-sticky"])
@given(group=groups())
def test_every_subscribed_partition_assigned_exactly_once_to_a_subscriber(name, group):
    subscriptions, sizes = group
    out = assign(name, subscriptions, sizes)
    assert set(out) == set(subscriptions)
    flat = [tp for parts in out.values() for tp in parts]
    assert len(flat) == len(set(flat))
    assert set(flat) == subscribed_partitions(subscriptions, sizes)
    assert all(tp[0] in subscriptions[m].topics for m, parts in out.items() for tp in parts)
    assert assign(name, dict(reversed(list(subscriptions.items()))), sizes) == out  # deterministic


@pytest.mark.parametrize("name", ["roundrobin", "cooperative-sticky"])
@given(group=groups(equal=True))
def test_balanced_within_one_when_subscriptions_are_equal(name, group):
    subscriptions, sizes = group
    counts = [len(p) for p in assign(name, subscriptions, sizes).values()]
    assert max(counts) - min(counts) <= 1


def with_owned(subscriptions, owned, generation=1):
    return {m: Subscription(s.topics, None, tuple(owned.get(m, ())), generation, None, 2)
            for m, s in subscriptions.items()}


@st.composite
def owned_groups(draw):
    """Subscriptions claiming arbitrary (possibly stale, duplicated or invalid) owned partitions."""
    subscriptions, sizes = draw(groups())
    universe = [(t, p) for t in TOPICS for p in range(8)]
    out = {}
    for m, s in subscriptions.items():
        owned = draw(st.lists(st.sampled_from(universe), max_size=6, unique=True))
        out[m] = Subscription(s.topics, None, tuple(owned), draw(st.integers(-1, 3)), None, 2)
    return out, sizes


@given(group=owned_groups())
def test_cooperative_never_hands_over_a_partition_another_member_still_owns(group):
    subscriptions, sizes = group
    out = assign("cooperative-sticky", subscriptions, sizes)
    for member, parts in out.items():
        for tp in parts:
            claimants = {m for m, s in subscriptions.items() if tp in s.owned_partitions}
            assert claimants <= {member}, (tp, member, claimants)
    flat = [tp for parts in out.values() for tp in parts]
    assert len(flat) == len(set(flat))
    assert set(flat) <= subscribed_partitions(subscriptions, sizes)


@settings(max_examples=60)
@given(group=owned_groups())
def test_cooperative_rounds_converge_to_a_full_balanced_assignment(group):
    """Each round members keep what they were assigned (revoking the rest); within three rounds every
    subscribed partition is owned and nothing is ever owned twice."""
    subscriptions, sizes = group
    owned = {m: [tp for tp in s.owned_partitions] for m, s in subscriptions.items()}
    for round_number in range(3):
        current = {m: Subscription(s.topics, None, tuple(owned[m]), round_number + 1, None, 2)
                   for m, s in subscriptions.items()}
        out = assign("cooperative-sticky", current, sizes)
        revoke = partitions_to_revoke(owned, out)
        owned = {m: [tp for tp in owned[m] if tp not in revoke.get(m, ())] for m in subscriptions}
        for m, parts in out.items():  # newly assigned partitions are taken up; nothing doubles
            owned[m] = sorted(set(owned[m]) | set(parts))
        flat = [tp for parts in owned.values() for tp in parts]
        assert len(flat) == len(set(flat))
    assert set(flat) == subscribed_partitions(subscriptions, sizes)


@given(group=groups(equal=True), extra=st.text(alphabet="xyz", min_size=1, max_size=3))
def test_sticky_moves_only_the_minimum_when_a_member_joins(group, extra):
    subscriptions, sizes = group
    first = assign("cooperative-sticky", subscriptions, sizes)
    joined = dict(subscriptions)
    joined[extra] = Subscription(next(iter(subscriptions.values())).topics)
    second = assign("cooperative-sticky", with_owned(joined, first), sizes)
    total = sum(len(p) for p in first.values())
    moved = sum(len(set(first[m]) - set(second[m])) for m in first)
    assert moved == total // len(joined)  # exactly what the new member must end up with
    assert second[extra] == []  # revoked partitions reach it only in the next round
    # next round: the moved partitions are free and go to the new member; balance within one
    third = assign("cooperative-sticky", with_owned(joined, second, 2), sizes)
    assert len(third[extra]) == total // len(joined)
    assert all(set(second[m]) <= set(third[m]) for m in subscriptions)
    counts = [len(p) for p in third.values()]
    assert max(counts) - min(counts) <= 1


@given(group=groups(equal=True))
def test_sticky_keeps_a_balanced_assignment_unchanged(group):
    subscriptions, sizes = group
    first = assign("cooperative-sticky", subscriptions, sizes)
    assert assign("cooperative-sticky", with_owned(subscriptions, first), sizes) == first


def test_sticky_highest_generation_claim_wins_and_ties_free_the_partition():
    sizes = {"t": 2}
    subscriptions = {
        "a": Subscription(("t",), None, (("t", 0), ("t", 1)), 3, None, 2),
        "b": Subscription(("t",), None, (("t", 0),), 2, None, 2),
    }
    out = assign("cooperative-sticky", subscriptions, sizes)
    # a's newer claims win, balance takes one partition from a, and b gets it only after a revokes it
    assert out["b"] == [] and len(out["a"]) == 1
    after = {"a": Subscription(("t",), None, tuple(out["a"]), 4, None, 2),
             "b": Subscription(("t",), None, (), 4, None, 2)}
    other = [tp for tp in [("t", 0), ("t", 1)] if tp not in out["a"]]
    assert assign("cooperative-sticky", after, sizes) == {"a": out["a"], "b": other}
    tie = {"a": Subscription(("t",), None, (("t", 0),), 1, None, 2),
           "b": Subscription(("t",), None, (("t", 0),), 1, None, 2)}
    assert assign("cooperative-sticky", tie, {"t": 1}) == {"a": [], "b": []}


def test_assignor_names():
    assert set(ASSIGNORS) == {"range", "roundrobin", "cooperative-sticky"}
