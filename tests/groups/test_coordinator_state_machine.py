"""A hypothesis state machine: simulated consumers drive a real GroupCoordinator.

Clients behave like Kafka consumers: a dynamic client joins the v4+ way (MEMBER_ID_REQUIRED, then
rejoin), a static one with its group instance id; the leader runs a real assignor (range or
roundrobin, whichever the coordinator chose) over the subscriptions its JoinGroup response carried;
members heartbeat, commit with the generation they know, leave, and react to errors as the Java
client does (REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION: rejoin; UNKNOWN_MEMBER_ID: rejoin as new;
FENCED_INSTANCE_ID: stop).  Other rules restart a static member's process (the old incarnation lives
on as a zombie), let time pass (``tick``), commit standalone, delete the group, and restart the
coordinator by replaying every record emitted so far.

Invariants after every step:

* at most one owner per partition per generation, over the SyncGroup assignments delivered with
  error 0 (an owner is the group instance id of a static member, else the member id);
* a Stable group whose members have all synced this generation owns every subscribed partition;
* committed offsets equal the model, which only successful commits change; a refused commit moves
  nothing, and stale generations, unknown or fenced members are always refused;
* the coordinator rebuilt by replaying every record has the same durable state, and a Stable group's
  last written metadata is exactly its live generation, protocol, leader, members and assignments.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from logbroker.groups import assign, decode_assignment, decode_subscription, encode_assignment, encode_subscription
from logbroker.groups import errors as E

from ._helpers import Harness

GROUP = "g"
TOPICS = {"a": 3, "b": 2, "c": 4}
ASSIGNORS = ("range", "roundrobin")
MAX_CLIENTS = 6


@dataclass(eq=False)
class Client:
    name: str
    instance: str | None
    topics: tuple[str, ...]
    preference: tuple[str, ...]
    member_id: str = ""
    generation: int = -1
    state: str = "idle"  # idle | joining | need_sync | syncing | stable | fenced
    view: object = None  # the JoinGroup response of the current generation
    assignment: tuple = ()

    def protocols(self):
        sub = encode_subscription(self.topics)
        return [(name, sub) for name in self.preference]

    @property
    def identity(self) -> str:
        return self.instance if self.instance is not None else self.member_id


class GroupMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.h = Harness(offsets_retention_ms=30 * 24 * 3600 * 1000)
        self.clients: list[Client] = []
        self.owners: dict[tuple[int, int, str, int], str] = {}  # (incarnation, generation, topic, partition)
        self.committed: dict[tuple[str, int], tuple[int, int, str]] = {}
        self.incarnation = 0
        self.dead = True
        self.names = 0

    # ---- plumbing ------------------------------------------------------------------------------

    def _client(self, member_id: str, waiting: str) -> Client | None:
        matches = [c for c in self.clients if c.member_id == member_id and c.state == waiting]
        assert len(matches) <= 1
        return matches[0] if matches else None

    def _deliver(self, result, sender: Client | None = None, kind: str | None = None) -> None:
        for member_id, what, response in result.completed:
            client = self._client(member_id, "joining" if what == "join" else "syncing")
            assert client is not None, (member_id, what, response)
            (self._on_join if what == "join" else self._on_sync)(client, response)
        if sender is not None and result.response is not None:
            {"join": self._on_join, "sync": self._on_sync, "heartbeat": self._on_code}[kind](sender, result.response)

    def _on_join(self, c: Client, r) -> None:
        assert r.error_code != E.INCONSISTENT_GROUP_PROTOCOL
        if r.error_code == E.NONE:
            c.member_id, c.generation, c.view, c.state = r.member_id, r.generation_id, r, "need_sync"
            assert r.protocol_name in ASSIGNORS
        elif r.error_code == E.MEMBER_ID_REQUIRED:
            c.member_id, c.state = r.member_id, "idle"
        else:
            self._on_code(c, r.error_code)

    def _on_sync(self, c: Client, r) -> None:
        if r.error_code != E.NONE:
            return self._on_code(c, r.error_code)
        c.state = "stable"
        c.assignment = decode_assignment(r.assignment).partitions if r.assignment else ()
        for topic, partition in c.assignment:
            owner = self.owners.setdefault((self.incarnation, c.generation, topic, partition), c.identity)
            assert owner == c.identity, f"{topic}-{partition} owned by {owner} and {c.identity} in {c.generation}"

    def _on_code(self, c: Client, code: int) -> None:
        if code == E.FENCED_INSTANCE_ID:
            c.state = "fenced"
        elif code in (E.REBALANCE_IN_PROGRESS, E.ILLEGAL_GENERATION, E.GROUP_MAX_SIZE_REACHED):
            c.state = "idle"
        elif code == E.UNKNOWN_MEMBER_ID:
            c.member_id, c.state = "", "idle"
        else:
            assert code == E.NONE, code
            if c.state in ("joining", "syncing"):
                c.state = "idle"

    def _pick(self, data, ok) -> Client:
        candidates = [c for c in self.clients if ok(c)]
        return data.draw(st.sampled_from(candidates))

    def _observe(self) -> None:
        dead = self.h.describe_group(GROUP).state == "Dead"
        if self.dead and not dead:
            self.incarnation += 1  # a deleted (or never created) group starts its generations again
        self.dead = dead

    # ---- rules ---------------------------------------------------------------------------------

    @initialize(specs=st.lists(st.tuples(st.booleans(), st.sets(st.sampled_from(sorted(TOPICS)), min_size=1),
                                         st.permutations(ASSIGNORS)), min_size=1, max_size=3))
    def first_clients(self, specs):
        for static, topics, preference in specs:
            self.add_client(static, topics, preference)

    @precondition(lambda self: len(self.clients) < MAX_CLIENTS)
    @rule(static=st.booleans(), topics=st.sets(st.sampled_from(sorted(TOPICS)), min_size=1),
          preference=st.permutations(ASSIGNORS))
    def add_client(self, static, topics, preference):
        self.names += 1
        instance = f"inst{self.names}" if static else None
        self.clients.append(Client(f"c{self.names}", instance, tuple(sorted(topics)), tuple(preference)))

    @precondition(lambda self: any(c.instance and c.state != "fenced" for c in self.clients))
    @rule(data=st.data())
    def restart_static_process(self, data):
        old = self._pick(data, lambda c: c.instance is not None and c.state != "fenced")
        self.names += 1
        self.clients.append(Client(f"c{self.names}", old.instance, old.topics, old.preference))

    @precondition(lambda self: any(c.state in ("idle", "need_sync", "stable") for c in self.clients))
    @rule(data=st.data())
    def join(self, data):
        self._join(self._pick(data, lambda c: c.state in ("idle", "need_sync", "stable")))

    @precondition(lambda self: any(c.state == "need_sync" for c in self.clients))
    @rule(data=st.data())
    def sync(self, data):
        self._sync(self._pick(data, lambda c: c.state == "need_sync"))

    @precondition(lambda self: any(c.member_id and c.state in ("idle", "need_sync", "stable") for c in self.clients))
    @rule(data=st.data())
    def heartbeat(self, data):
        self._heartbeat(self._pick(data, lambda c: c.member_id and c.state in ("idle", "need_sync", "stable")))

    @rule(rounds=st.integers(1, 4))
    def settle(self, rounds):
        """Every client takes its natural next step (idle: join; need_sync: sync; stable: heartbeat)."""
        for _ in range(rounds):
            for c in list(self.clients):
                if c.state == "idle":
                    self._join(c)
                elif c.state == "need_sync":
                    self._sync(c)
                elif c.state == "stable":
                    self._heartbeat(c)

    def _join(self, c: Client) -> None:
        result = self.h.join(GROUP, member_id=c.member_id, instance=c.instance, client_id=c.name,
                             protocols=c.protocols())
        c.state = "joining"
        if result.response is None and not c.member_id:  # a new static member: learn its id
            c.member_id = next(m.member_id for m in self.h.describe_group(GROUP).members
                               if m.group_instance_id == c.instance)
        self._deliver(result, c, "join")
        self._observe()

    def _sync(self, c: Client) -> None:
        assignments = {}
        if c.view.leader == c.member_id:
            subscriptions = {m.member_id: decode_subscription(m.metadata) for m in c.view.members}
            instances = {m.member_id: m.group_instance_id for m in c.view.members}
            plan = assign(c.view.protocol_name, subscriptions, TOPICS, group_instance_ids=instances)
            assignments = {m: encode_assignment(parts) for m, parts in plan.items()}
        result = self.h.sync_group(self.h.now, GROUP, c.generation, c.member_id, c.instance, "consumer",
                                   c.view.protocol_name, assignments)
        c.state = "syncing"
        self._deliver(result, c, "sync")

    def _heartbeat(self, c: Client) -> None:
        result = self.h.heartbeat(self.h.now, GROUP, c.generation, c.member_id, c.instance)
        if c.state == "idle" and result.response not in (E.FENCED_INSTANCE_ID, E.UNKNOWN_MEMBER_ID):
            result.response = E.NONE  # an idle client already knows it must rejoin
        self._deliver(result, c, "heartbeat")

    @precondition(lambda self: any(c.member_id and c.state in ("idle", "need_sync", "stable") for c in self.clients))
    @rule(data=st.data())
    def leave(self, data):
        c = self._pick(data, lambda c: c.member_id and c.state in ("idle", "need_sync", "stable"))
        result = self.h.leave_group(self.h.now, GROUP, [(c.member_id, c.instance)])
        self._deliver(result)
        [answer] = result.response.members
        if answer.error_code == E.FENCED_INSTANCE_ID:
            c.state = "fenced"
        else:
            c.member_id, c.state, c.generation = "", "idle", -1
        self._observe()

    @precondition(lambda self: any(c.member_id and c.state != "fenced" for c in self.clients))
    @rule(data=st.data(), partition=st.sampled_from([("a", 0), ("b", 1)]), offset=st.integers(0, 1000),
          stale=st.booleans())
    def commit(self, data, partition, offset, stale):
        c = self._pick(data, lambda c: c.member_id and c.state != "fenced")
        generation = c.generation - 1 if stale else c.generation
        self._commit(c.member_id, c.instance, generation, partition, offset)

    @rule(partition=st.sampled_from([("a", 0), ("c", 3)]), offset=st.integers(0, 1000))
    def standalone_commit(self, partition, offset):
        self._commit("", None, -1, partition, offset)

    def _commit(self, member_id, instance, generation, partition, offset) -> None:
        self._tick()  # so the group seen below is the one the commit meets
        before = self.h.describe_group(GROUP)
        members = {m.member_id: m.group_instance_id for m in before.members}
        result = self.h.commit_offsets(self.h.now, GROUP, generation, member_id, instance,
                                       {partition: (offset, 7, "meta")})
        self._deliver(result)
        code = result.response[partition]
        if code == E.NONE:
            self.committed[partition] = (offset, 7, "meta")
            if generation < 0:  # standalone commits only to groups without members (Kafka then ignores the id)
                assert not members and before.state in ("Empty", "Dead")
            else:
                assert member_id in members and generation == before.generation_id
                assert instance is None or members[member_id] == instance
                assert before.state != "CompletingRebalance"
        else:
            assert result.records == []
        assert self.h.fetch_offsets(GROUP, None) == dict(sorted(self.committed.items()))

    @rule(ms=st.sampled_from([500, 3_000, 6_000, 11_000, 31_000]))
    def advance(self, ms):
        self.h.now += ms
        self._tick()
        self._observe()

    def _tick(self) -> None:
        for result in self.h.tick(self.h.now):
            assert result.group_id == GROUP
            self._deliver(result)

    @rule()
    def delete_group(self):
        result = self.h.delete_groups(self.h.now, [GROUP])
        self._deliver(result)
        if result.response[GROUP] == E.NONE:
            self.committed.clear()
        self._observe()

    @rule()
    def restart_coordinator(self):
        self.h.restart()
        for c in self.clients:
            if c.state in ("joining", "syncing"):
                c.state = "idle"  # the request died with the coordinator; the client retries
        self._observe()

    # ---- invariants ----------------------------------------------------------------------------

    @invariant()
    def stable_and_synced_means_everything_is_owned(self):
        d = self.h.describe_group(GROUP)
        if d.state != "Stable":
            return
        holders = []
        for m in d.members:
            found = [c for c in self.clients if c.member_id == m.member_id and c.state == "stable"
                     and c.generation == d.generation_id]
            if not found:
                return
            holders.append(found[0])
        wanted = {(t, p) for m in d.members for t in decode_subscription(m.metadata).topics for p in range(TOPICS[t])}
        owned = [tp for c in holders for tp in c.assignment]
        assert len(owned) == len(set(owned)) and set(owned) == wanted

    @invariant()
    def offsets_match_the_model(self):
        assert self.h.fetch_offsets(GROUP, None) == dict(sorted(self.committed.items()))

    @invariant()
    def replay_rebuilds_the_same_state(self):
        live = self.h.coordinator.durable_state()
        assert self.h.restarted().durable_state() == live
        d = self.h.describe_group(GROUP)
        stored = live.groups.get(GROUP)
        if d.state == "Stable":
            assert (stored.generation, stored.protocol, stored.leader) == (d.generation_id, d.protocol_name, d.leader)
            assert [(m.member_id, m.group_instance_id, m.subscription, m.assignment) for m in stored.members] == [
                (m.member_id, m.group_instance_id, m.metadata, m.assignment) for m in d.members]
        elif d.state == "Empty" and stored is not None:
            assert stored.members == () and stored.generation == d.generation_id


GroupMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=30, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
TestGroupStateMachine = GroupMachine.TestCase
