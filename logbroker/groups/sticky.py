"""The cooperative-sticky assignor: balanced, moving as few partitions as it can, never handing over
a partition in the same round its owner gives it up.

Each member's subscription says what it owns (``owned_partitions``, subscription v1+) and in which
generation (v2+).  The algorithm, in four steps:

1. **Keep.** A partition still valid for its claimant (topic subscribed and still existing) stays
   with it.  If several members claim one partition, the claim from the highest generation wins; a
   tie at that generation leaves the partition unowned (Kafka logs such claims as errors).
2. **Fill.** Unowned partitions go, in order of fewest eligible members first, to the eligible member
   holding the fewest partitions.
3. **Balance.** While some partition's holder has at least two more partitions than another member
   subscribed to its topic, move one (from the fullest holder, preferring partitions it did not
   already own, to the emptiest eligible member).  Each move lowers the sum of squared counts, so the
   loop ends; with equal subscriptions the counts end within one of each other, and a member added to
   a balanced group takes exactly ``floor(n / members)`` partitions from the others.
4. **Cooperate.** A partition assigned to a member while another member still claims it is removed
   from this round: the claimant sees it missing from its assignment, revokes it and rejoins, and
   the next round assigns it freely.  So no partition ever has two owners at once.

This is a simpler search than Kafka's AbstractStickyAssignor (no rack awareness, and for unequal
subscriptions the balance is greedy rather than optimal); it honours the same contract.
"""

from __future__ import annotations

from typing import Callable, Mapping

TopicPartition = tuple[str, int]


def cooperative_sticky(subscriptions: Mapping, partitions_per_topic: Mapping[str, int],
                       order: Callable[[str], tuple]) -> dict[str, list[TopicPartition]]:
    members = sorted(subscriptions, key=order)
    rank = {m: i for i, m in enumerate(members)}
    topics_of = {m: {t for t in subscriptions[m].topics if t in partitions_per_topic} for m in members}
    eligible: dict[str, list[str]] = {}
    for m in members:
        for topic in topics_of[m]:
            eligible.setdefault(topic, []).append(m)
    kept = _kept_owners(subscriptions, topics_of, partitions_per_topic)
    held: dict[str, set[TopicPartition]] = {m: set() for m in members}
    for tp, owner in kept.items():
        held[owner].add(tp)
    _fill(held, kept, eligible, partitions_per_topic, rank)
    _balance(held, kept, eligible, rank, members)
    claimants: dict[TopicPartition, set[str]] = {}
    for m in members:
        for tp in subscriptions[m].owned_partitions:
            claimants.setdefault(tuple(tp), set()).add(m)
    return {m: sorted(tp for tp in held[m] if claimants.get(tp, set()) <= {m}) for m in members}


def _kept_owners(subscriptions, topics_of, partitions_per_topic) -> dict[TopicPartition, str]:
    best: dict[TopicPartition, tuple[int, list[str]]] = {}
    for member, topics in topics_of.items():
        sub = subscriptions[member]
        for topic, partition in sub.owned_partitions:
            if topic not in topics or not 0 <= partition < partitions_per_topic[topic]:
                continue
            generation, claimants = best.get((topic, partition), (None, []))
            if generation is None or sub.generation_id > generation:
                best[(topic, partition)] = (sub.generation_id, [member])
            elif sub.generation_id == generation and member not in claimants:
                claimants.append(member)
    return {tp: claimants[0] for tp, (_, claimants) in best.items() if len(claimants) == 1}


def _fill(held, kept, eligible, partitions_per_topic, rank) -> None:
    unowned = [(t, p) for t in sorted(eligible) for p in range(partitions_per_topic[t]) if (t, p) not in kept]
    unowned.sort(key=lambda tp: (len(eligible[tp[0]]), tp))
    for tp in unowned:
        target = min(eligible[tp[0]], key=lambda m: (len(held[m]), rank[m]))
        held[target].add(tp)


def _balance(held, kept, eligible, rank, members) -> None:
    while True:
        move = _find_move(held, kept, eligible, rank, members)
        if move is None:
            return
        source, target, tp = move
        held[source].remove(tp)
        held[target].add(tp)


def _find_move(held, kept, eligible, rank, members):
    for source in sorted(members, key=lambda m: (-len(held[m]), rank[m])):
        limit = len(held[source]) - 2
        if limit < 0:
            return None  # every later member holds fewer still
        for tp in sorted(held[source], key=lambda tp: (kept.get(tp) == source, tp)):
            targets = [m for m in eligible[tp[0]] if len(held[m]) <= limit]
            if targets:
                return source, min(targets, key=lambda m: (len(held[m]), rank[m])), tp
    return None
