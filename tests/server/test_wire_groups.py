"""Group coordination at the byte level: JoinGroup/SyncGroup parked without threads, answered through
the group service's listener, in request order, across connections; shutdown and hang-ups."""

from __future__ import annotations

import time

from logbroker.groups.consumer_protocol import encode_assignment, encode_subscription

from .support import WireClient

OFFSET_COMMIT, OFFSET_FETCH, JOIN, HEARTBEAT, LEAVE, SYNC, DESCRIBE, LIST, DELETE = 8, 9, 11, 12, 13, 14, 15, 16, 42
METADATA = 3
SUBSCRIPTION = encode_subscription(["t"])


def join_body(member_id: str = "", instance: str | None = None, group: str = "g") -> dict:
    return {"group_id": group, "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000, "member_id": member_id,
            "group_instance_id": instance, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": SUBSCRIPTION}]}


def sync_body(member_id: str, generation: int, assignments=(), instance=None, group: str = "g") -> dict:
    return {"group_id": group, "generation_id": generation, "member_id": member_id, "group_instance_id": instance,
            "assignments": [{"member_id": m, "assignment": a} for m, a in assignments]}


def join_alone(client: WireClient, group: str = "g") -> tuple[str, int]:
    first = client.call(JOIN, 5, join_body(group=group))
    assert first["error_code"] == 79 and first["member_id"]  # MEMBER_ID_REQUIRED with the id to use
    joined = client.call(JOIN, 5, join_body(first["member_id"], group=group))
    assert joined["error_code"] == 0 and joined["leader"] == first["member_id"]
    return first["member_id"], joined["generation_id"]


def test_two_members_rebalance_through_parked_requests(inproc):
    with WireClient(inproc.port) as a, WireClient(inproc.port) as b:
        a_id, generation = join_alone(a)
        synced = a.call(SYNC, 3, sync_body(a_id, generation, [(a_id, encode_assignment([("t", 0), ("t", 1)]))]))
        assert synced["error_code"] == 0 and synced["assignment"]

        first = b.call(JOIN, 5, join_body())
        b_id = first["member_id"]
        b.send(JOIN, 5, join_body(b_id))  # parked until a rejoins
        b.send(METADATA, 4, {"topics": None})  # queued behind the parked join on the same connection
        time.sleep(0.2)
        assert a.call(HEARTBEAT, 1, {"group_id": "g", "generation_id": generation, "member_id": a_id})["error_code"] == 27
        a.send(JOIN, 5, join_body(a_id))
        _, b_join = b.recv()
        _, a_join = a.recv()
        assert b_join["error_code"] == a_join["error_code"] == 0
        assert b_join["generation_id"] == a_join["generation_id"] == generation + 1
        assert a_join["leader"] == a_id and {m["member_id"] for m in a_join["members"]} == {a_id, b_id}
        assert b_join["members"] == []
        _, meta = b.recv()
        assert meta["controller_id"] == 0

        b.send(SYNC, 3, sync_body(b_id, generation + 1))  # the follower waits for the leader's assignment
        time.sleep(0.1)
        a_sync = a.call(SYNC, 3, sync_body(a_id, generation + 1, [(a_id, encode_assignment([("t", 0)])),
                                                                  (b_id, encode_assignment([("t", 1)]))]))
        _, b_sync = b.recv()
        assert a_sync["assignment"] == encode_assignment([("t", 0)])
        assert b_sync["assignment"] == encode_assignment([("t", 1)])

        described = a.call(DESCRIBE, 3, {"groups": ["g", "nope"], "include_authorized_operations": False})
        g, nope = described["groups"]
        assert (g["group_state"], g["protocol_data"], len(g["members"])) == ("Stable", "range", 2)
        assert nope["group_state"] == "Dead" and nope["error_code"] == 0
        assert a.call(LIST, 2, {})["groups"] == [{"group_id": "g", "protocol_type": "consumer"}]

        assert b.call(LEAVE, 1, {"group_id": "g", "member_id": b_id})["error_code"] == 0
        assert a.call(HEARTBEAT, 1, {"group_id": "g", "generation_id": generation + 1,
                                     "member_id": a_id})["error_code"] == 27
    assert not inproc.server.group_waiters._exact and not inproc.server.group_waiters._prefixed


def test_join_group_v0_to_v3_with_an_empty_member_id_gets_an_id_at_once(inproc):
    with WireClient(inproc.port, client_id="old-client") as client:
        for version in (0, 1, 2, 3):
            body = join_body(group=f"old{version}")
            joined = client.call(JOIN, version, body)
            assert joined["error_code"] == 0, joined
            assert joined["member_id"].startswith("old-client-") and joined["leader"] == joined["member_id"]


def test_a_static_member_without_an_id_waits_under_its_instance_id(inproc):
    with WireClient(inproc.port) as a, WireClient(inproc.port) as s:
        a_id, generation = join_alone(a, group="static")
        a.call(SYNC, 3, sync_body(a_id, generation, [(a_id, b"")], group="static"))
        s.send(JOIN, 5, join_body(instance="instance-1", group="static"))  # parked: the group must rebalance
        time.sleep(0.2)
        assert a.call(HEARTBEAT, 1, {"group_id": "static", "generation_id": generation,
                                     "member_id": a_id})["error_code"] == 27
        a_join = a.call(JOIN, 5, join_body(a_id, group="static"))
        _, s_join = s.recv()
        assert s_join["error_code"] == 0 and s_join["member_id"].startswith("instance-1-")
        assert s_join["generation_id"] == a_join["generation_id"]


def test_hanging_up_while_parked_leaves_nothing_behind(inproc):
    with WireClient(inproc.port) as a:
        a_id, generation = join_alone(a)
        b = WireClient(inproc.port)
        b_id = b.call(JOIN, 5, join_body())["member_id"]
        b.send(JOIN, 5, join_body(b_id))
        time.sleep(0.2)
        assert inproc.server.group_waiters._exact
        b.close()
        deadline = time.monotonic() + 5
        while inproc.server.group_waiters._exact and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not inproc.server.group_waiters._exact
        # the group carries on: a rejoins and (after b's join times out or completes) gets an answer
        assert a.call(HEARTBEAT, 1, {"group_id": "g", "generation_id": generation, "member_id": a_id})["error_code"] == 27
        rejoined = a.call(JOIN, 5, join_body(a_id))
        assert rejoined["error_code"] == 0 and rejoined["generation_id"] == generation + 1


def test_shutdown_answers_parked_joins_not_coordinator(tmp_path):
    from .support import InProcessServer

    server = InProcessServer(tmp_path / "data")
    try:
        with WireClient(server.port) as a, WireClient(server.port) as b:
            a_id, generation = join_alone(a)
            b_id = b.call(JOIN, 5, join_body())["member_id"]
            b.send(JOIN, 5, join_body(b_id))
            time.sleep(0.2)
            started = time.monotonic()
            server.call(server.server.close())
            _, answer = b.recv()
            assert answer["error_code"] == 16  # NOT_COORDINATOR: find the coordinator again later
            assert time.monotonic() - started < 5
            assert b.closed_by_server()
    finally:
        server.loop.call_soon_threadsafe(server.loop.stop)
        server.thread.join(10)
        server.loop.close()
        server.broker.close()


def test_offsets_commit_and_fetch_over_the_wire(inproc):
    inproc.broker.create_topic("t", partitions=2)
    with WireClient(inproc.port) as client:
        body = {"group_id": "solo", "generation_id_or_member_epoch": -1, "member_id": "", "retention_time_ms": -1,
                "topics": [{"name": "t", "partitions": [{"partition_index": 0, "committed_offset": 5, "committed_metadata": "x"},
                                                        {"partition_index": 9, "committed_offset": 1, "committed_metadata": None}]},
                           {"name": "missing", "partitions": [{"partition_index": 0, "committed_offset": 1,
                                                              "committed_metadata": None}]}]}
        committed = client.call(OFFSET_COMMIT, 3, body)
        assert [(t["name"], [(p["partition_index"], p["error_code"]) for p in t["partitions"]])
                for t in committed["topics"]] == [("t", [(0, 0), (9, 3)]), ("missing", [(0, 3)])]
        fetched = client.call(OFFSET_FETCH, 3, {"group_id": "solo", "topics": [{"name": "t", "partition_indexes": [0, 1]}]})
        assert [(p["partition_index"], p["committed_offset"], p["metadata"], p["error_code"])
                for p in fetched["topics"][0]["partitions"]] == [(0, 5, "x", 0), (1, -1, "", 0)]
        v1 = client.call(OFFSET_FETCH, 1, {"group_id": "solo", "topics": [{"name": "t", "partition_indexes": [0]}]})
        assert v1["topics"][0]["partitions"][0]["committed_offset"] == 5
        deleted = client.call(DELETE, 1, {"groups_names": ["solo", "never"]})
        assert [(r["group_id"], r["error_code"]) for r in deleted["results"]] == [("solo", 0), ("never", 69)]
