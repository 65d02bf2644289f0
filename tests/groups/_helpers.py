"""Helpers shared by the group tests: a coordinator that keeps every record it emitted, and clients."""

from __future__ import annotations

import itertools

from logbroker.groups import GroupCoordinator, Result, encode_assignment, encode_subscription
from logbroker.groups import errors as E

T0 = 1_700_000_000_000
SESSION = 10_000
REBALANCE = 30_000


def counter_suffix():
    """Deterministic member-id suffixes: 1, 2, 3 ..."""
    numbers = itertools.count(1)
    return lambda: str(next(numbers))


class Harness:
    """A GroupCoordinator plus the ``__consumer_offsets`` log it produced (every Result's records)."""

    def __init__(self, **settings):
        settings.setdefault("member_id_suffix", counter_suffix())
        self.settings = settings
        self.coordinator = GroupCoordinator(**settings)
        self.log: list[tuple[bytes, bytes | None]] = []
        self.now = T0

    def __getattr__(self, name):
        method = getattr(self.coordinator, name)
        if name not in ("join_group", "sync_group", "heartbeat", "leave_group", "commit_offsets",
                        "delete_groups", "delete_offsets", "tick"):
            return method

        def call(*args, **kwargs):
            out = method(*args, **kwargs)
            for result in out if isinstance(out, list) else [out]:
                self.log += result.records
            return out

        return call

    def advance(self, ms: int) -> list[Result]:
        self.now += ms
        return self.tick(self.now)

    def restarted(self) -> GroupCoordinator:
        """A new coordinator built by replaying the log, loaded at the current time."""
        fresh = GroupCoordinator(**self.settings)
        for key, value in self.log:
            fresh.replay(key, value)
        fresh.loaded(self.now)
        return fresh

    def restart(self) -> None:
        self.coordinator = self.restarted()

    # ---- a client's view ---------------------------------------------------------------------

    def join(self, group="g", member_id="", topics=("t",), protocols=None, instance=None, client_id="c",
             session=SESSION, rebalance=REBALANCE, **kwargs) -> Result:
        if protocols is None:
            protocols = [("range", encode_subscription(topics))]
        return self.join_group(self.now, group, member_id, instance, kwargs.pop("protocol_type", "consumer"),
                               protocols, session, rebalance, client_id, "/127.0.0.1", **kwargs)

    def join_new(self, group="g", **kwargs) -> str:
        """Join as a new dynamic member the v4+ way (MEMBER_ID_REQUIRED, then rejoin); the member id."""
        first = self.join(group, **kwargs).response
        assert first.error_code == E.MEMBER_ID_REQUIRED, first
        return first.member_id

    def sync(self, member_id, generation, group="g", assignments=None, instance=None) -> Result:
        return self.sync_group(self.now, group, generation, member_id, instance, "consumer", None, assignments or {})

    def form(self, count: int, group="g", topics=("t",)) -> tuple[list[str], int]:
        """A Stable group of ``count`` dynamic members (all joined before the first completes)."""
        ids = [self.join_new(group, client_id=f"c{i}", topics=topics) for i in range(count)]
        results = [self.join(group, member_id=m, topics=topics, client_id=f"c{i}") for i, m in enumerate(ids)]
        responses = {m: r.response for m, r in zip(ids, results)}
        for result in results:
            for member_id, kind, response in result.completed:
                responses[member_id] = response
        assert all(r is not None and r.error_code == 0 for r in responses.values()), responses
        generation = responses[ids[0]].generation_id
        leader = responses[ids[0]].leader
        assignments = {m: encode_assignment([(topics[0], i)]) for i, m in enumerate(ids)}
        follower_results = [self.sync(m, generation, group) for m in ids if m != leader]
        leader_result = self.sync(leader, generation, group, assignments)
        assert leader_result.response.error_code == 0
        assert all(r.response is None for r in follower_results)
        assert len(leader_result.completed) == count - 1
        return ids, generation
