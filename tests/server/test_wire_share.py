"""Share groups at the byte level (SHARE_GROUPS.md §2-§4): ShareGroupHeartbeat, ShareFetch and
ShareAcknowledge v1 by hand over real sockets against an in-process Server: the §2.7 flow, piggybacked
acknowledgements, redelivery counts, session epochs, per-partition errors, long polls woken by data and
by expiring locks, and records released when a session's connection closes."""

from __future__ import annotations

import struct
import threading
import time
import uuid

import pytest

from logbroker.records.batch import decode_all, encode_batch
from logbroker.server.handlers.share import acquired_ranges, check_batches, expand_batches, topic_uuid

from .support import InProcessServer, WireClient

API_VERSIONS, METADATA, PRODUCE = 18, 3, 0
HEARTBEAT, SHARE_FETCH, SHARE_ACK = 76, 78, 79
GAP, ACCEPT, RELEASE, REJECT = 0, 1, 2, 3
INVALID_REQUEST, UNKNOWN_MEMBER_ID, UNKNOWN_TOPIC_ID = 42, 25, 100
INVALID_RECORD_STATE, SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH = 121, 122, 123
MEMBER = "AAAAAAAAAAAAAAAAAAAAAA"  # 22 characters, as librdkafka's ids (§4)


@pytest.fixture
def server(tmp_path):
    """A Server whose share groups start at the earliest offset (``serve --share-auto-offset-reset``)."""
    s = InProcessServer(tmp_path / "data", group_tick_interval_s=0.05, share_auto_offset_reset="earliest")
    try:
        yield s
    finally:
        s.close()


def produce(broker, topic: str, *values: bytes, partition: int = 0) -> None:
    now = int(time.time() * 1000)
    info = broker.append(topic, partition, encode_batch([(None, v, [], now) for v in values]))
    broker.wait_durable(topic, partition, info.last_offset + 1)


def topic_id(broker, topic: str) -> uuid.UUID:
    return topic_uuid(broker.topic(topic).topic_id)


def heartbeat(member: str = MEMBER, epoch: int = 0, topics=None, group: str = "g", rack=None) -> dict:
    return {"group_id": group, "member_id": member, "member_epoch": epoch, "rack_id": rack,
            "subscribed_topic_names": topics}


def acks(first: int, last: int, *types: int) -> dict:
    return {"first_offset": first, "last_offset": last, "acknowledge_types": list(types)}


def share_fetch(epoch: int, topics=(), *, member: str = MEMBER, group: str = "g", forgotten=(), max_wait_ms: int = 0,
                max_records: int = 500) -> dict:
    """``topics``: [(topic id, partition, [ack batches])], one entry per item (ids may repeat)."""
    return {"group_id": group, "member_id": member, "share_session_epoch": epoch, "max_wait_ms": max_wait_ms,
            "min_bytes": 1, "max_bytes": 52428800, "max_records": max_records, "batch_size": max_records,
            "topics": [{"topic_id": t, "partitions": [{"partition_index": p, "acknowledgement_batches": list(b)}]}
                       for t, p, b in topics],
            "forgotten_topics_data": [{"topic_id": t, "partitions": list(ps)} for t, ps in forgotten]}


def share_ack(epoch: int, topics=(), *, member: str = MEMBER, group: str = "g") -> dict:
    return {"group_id": group, "member_id": member, "share_session_epoch": epoch,
            "topics": [{"topic_id": t, "partitions": [{"partition_index": p, "acknowledgement_batches": list(b)}]}
                       for t, p, b in topics]}


def partitions(body: dict) -> dict:
    """{(topic id, partition): partition entry} of a ShareFetch / ShareAcknowledge response."""
    out = {}
    for topic in body["responses"]:
        for p in topic["partitions"]:
            key = (topic["topic_id"], p["partition_index"])
            assert key not in out, "a partition twice in one response"
            out[key] = p
    return out


def delivered(entry: dict) -> dict[int, tuple[bytes, int]]:
    """{offset: (value, delivery count)} of the records a ShareFetch partition entry hands out."""
    counts = {}
    for r in entry["acquired_records"]:
        for offset in range(r["first_offset"], r["last_offset"] + 1):
            counts[offset] = r["delivery_count"]
    assert entry["records"] is not None
    values = {rec.offset: rec.value for rec in decode_all(bytes(entry["records"]))}
    assert set(counts) <= set(values), "an acquired offset without its record"
    return {offset: (values[offset], count) for offset, count in counts.items()}


def join(client: WireClient, topics=("t",), member: str = MEMBER, group: str = "g") -> dict:
    body = client.call(HEARTBEAT, 1, heartbeat(member, 0, list(topics), group))
    assert body["error_code"] == 0, body
    return body


# ---- ApiVersions and the §2.7 bytes ---------------------------------------------------------------------

def test_api_versions_advertises_the_share_apis_at_exactly_v1(server):
    with WireClient(server.port) as client:
        body = client.call(API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"})
    listed = {e["api_key"]: (e["min_version"], e["max_version"]) for e in body["api_keys"]}
    assert listed[76] == listed[78] == listed[79] == (1, 1)
    assert listed[3][1] >= 12  # Metadata by topic id (§1.2)


def test_section_2_7_heartbeat_bytes_join_and_get_the_topic_id(server):
    server.broker.create_topic("t", 2)
    request_body = (b"\x02g" + b"\x17" + b"A" * 22 + struct.pack(">i", 0) + b"\x00" + b"\x02\x02t" + b"\x00")
    header = struct.pack(">hhih", 76, 1, 7, 7) + b"rdkafka" + b"\x00"
    with WireClient(server.port) as client:
        client.send_raw(struct.pack(">i", len(header) + len(request_body)) + header + request_body)
        frame = client.recv_frame()
    tid = topic_id(server.broker, "t").bytes
    assert frame == (struct.pack(">i", 7) + b"\x00"  # response header v1
                     + b"\x00\x00\x00\x00" + b"\x00\x00" + b"\x00" + b"\x17" + b"A" * 22
                     + struct.pack(">ii", 1, 5000)
                     + b"\x01" + b"\x02" + tid + b"\x03" + struct.pack(">ii", 0, 1) + b"\x00" + b"\x00" + b"\x00")


# ---- ShareGroupHeartbeat -------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    heartbeat(group=""), heartbeat(member=""), heartbeat(topics=["t"], rack=""), heartbeat(epoch=-2, topics=["t"]),
    heartbeat(epoch=0, topics=None), heartbeat(epoch=0, topics=[]),
], ids=["empty group", "empty member", "empty rack", "epoch -2", "join without topics", "join with no topics"])
def test_heartbeat_validation_is_invalid_request(server, body):
    with WireClient(server.port) as client:
        answer = client.call(HEARTBEAT, 1, body)
        assert answer["error_code"] == INVALID_REQUEST and answer["assignment"] is None
        assert answer["heartbeat_interval_ms"] > 0
        assert client.call(API_VERSIONS, 3, {})["error_code"] == 0  # the connection goes on


def test_heartbeat_epochs_leave_and_unknown_members(server):
    broker = server.broker
    broker.create_topic("t", 2)
    with WireClient(server.port) as client:
        joined = join(client, ["t", "not-yet"])
        assert joined["member_id"] == MEMBER and joined["member_epoch"] >= 1
        assert joined["assignment"] == {"topic_partitions": [{"topic_id": topic_id(broker, "t"), "partitions": [0, 1]}]}
        again = client.call(HEARTBEAT, 1, heartbeat(epoch=joined["member_epoch"]))
        assert again["error_code"] == 0 and again["member_epoch"] == joined["member_epoch"]
        assert client.call(HEARTBEAT, 1, heartbeat(member="stranger", epoch=3))["error_code"] == UNKNOWN_MEMBER_ID
        left = client.call(HEARTBEAT, 1, heartbeat(epoch=-1))
        assert left["error_code"] == 0 and left["member_epoch"] == -1 and left["assignment"] is None
        assert client.call(HEARTBEAT, 1, heartbeat(epoch=again["member_epoch"]))["error_code"] == UNKNOWN_MEMBER_ID


# ---- the §4 flow ----------------------------------------------------------------------------------------------

def test_fetch_acknowledge_and_redeliver(server):
    broker = server.broker
    broker.create_topic("t", 1)
    produce(broker, "t", b"r0", b"r1", b"r2", b"r3")
    tid = topic_id(broker, "t")
    with WireClient(server.port) as client:
        joined = join(client)
        assert joined["member_epoch"] == 1
        assert joined["assignment"]["topic_partitions"] == [{"topic_id": tid, "partitions": [0]}]

        first = client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], max_wait_ms=500))
        assert first["error_code"] == 0 and first["acquisition_lock_timeout_ms"] == 30000
        assert first["node_endpoints"] == []
        entry = partitions(first)[(tid, 0)]
        assert entry["current_leader"] == {"leader_id": -1, "leader_epoch": -1}
        assert entry["acquired_records"] == [{"first_offset": 0, "last_offset": 3, "delivery_count": 1}]
        assert delivered(entry) == {0: (b"r0", 1), 1: (b"r1", 1), 2: (b"r2", 1), 3: (b"r3", 1)}

        # the acks ride on the next fetch (epoch 1): accept 0, release 1-2, reject 3
        second = client.call(SHARE_FETCH, 1, share_fetch(1, [(tid, 0, [acks(0, 0, ACCEPT), acks(1, 2, RELEASE),
                                                                       acks(3, 3, REJECT)])]))
        assert second["error_code"] == 0
        entry = partitions(second)[(tid, 0)]
        assert entry["acknowledge_error_code"] == 0 and entry["error_code"] == 0
        assert delivered(entry) == {1: (b"r1", 2), 2: (b"r2", 2)}  # released ones come back, counted twice

        # an empty fetch (epoch 2) acknowledging nothing: nothing left to hand out, the partition is omitted
        third = client.call(SHARE_FETCH, 1, share_fetch(2, [(tid, 0, [acks(1, 2, ACCEPT)])]))
        assert partitions(third) == {(tid, 0): {**partitions(third)[(tid, 0)], "acknowledge_error_code": 0,
                                                "acquired_records": []}}
        fourth = client.call(SHARE_FETCH, 1, share_fetch(3))
        assert fourth["error_code"] == 0 and partitions(fourth) == {}  # empty topics: the session's partitions
    summary = broker.shares.describe("g")["partitions"][0]
    assert summary["start_offset"] == 4


def test_per_offset_acknowledge_types_and_share_acknowledge(server):
    broker = server.broker
    broker.create_topic("t", 1)
    produce(broker, "t", b"a", b"b", b"c")
    tid = topic_id(broker, "t")
    with WireClient(server.port) as client:
        join(client)
        first = client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))
        assert set(delivered(partitions(first)[(tid, 0)])) == {0, 1, 2}
        answer = client.call(SHARE_ACK, 1, share_ack(1, [(tid, 0, [acks(0, 2, ACCEPT, RELEASE, ACCEPT)])]))
        assert answer["error_code"] == 0 and answer["node_endpoints"] == []
        assert partitions(answer) == {(tid, 0): {"partition_index": 0, "error_code": 0, "error_message": None,
                                                 "current_leader": {"leader_id": -1, "leader_epoch": -1}}}
        again = client.call(SHARE_FETCH, 1, share_fetch(2))  # ShareAcknowledge advanced the epoch
        assert again["error_code"] == 0 and delivered(partitions(again)[(tid, 0)]) == {1: (b"b", 2)}


def test_repeated_topic_ids_are_merged(server):
    broker = server.broker
    broker.create_topic("t", 2)
    produce(broker, "t", b"p0", partition=0)
    produce(broker, "t", b"p1", partition=1)
    tid = topic_id(broker, "t")
    with WireClient(server.port) as client:
        join(client)
        first = client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, []), (tid, 1, []), (tid, 0, [])]))
        got = partitions(first)
        assert set(got) == {(tid, 0), (tid, 1)}
        assert delivered(got[(tid, 0)]) == {0: (b"p0", 1)} and delivered(got[(tid, 1)]) == {0: (b"p1", 1)}
        # acks for one partition in two runs of the same topic id, as librdkafka may send them (§5.2)
        produce(broker, "t", b"p0b", partition=0)
        body = share_fetch(1, [(tid, 1, [acks(0, 0, ACCEPT)]), (tid, 0, [acks(0, 0, ACCEPT)])])
        second = partitions(client.call(SHARE_FETCH, 1, body))
        assert second[(tid, 0)]["acknowledge_error_code"] == second[(tid, 1)]["acknowledge_error_code"] == 0
        assert delivered(second[(tid, 0)]) == {1: (b"p0b", 1)}


# ---- sessions -------------------------------------------------------------------------------------------------

def test_session_epochs_on_the_wire(server):
    broker = server.broker
    broker.create_topic("t", 1)
    tid = topic_id(broker, "t")
    with WireClient(server.port) as client:
        join(client)
        assert client.call(SHARE_FETCH, 1, share_fetch(1, [(tid, 0, [])]))["error_code"] == SHARE_SESSION_NOT_FOUND
        assert client.call(SHARE_ACK, 1, share_ack(1))["error_code"] == SHARE_SESSION_NOT_FOUND
        assert client.call(SHARE_ACK, 1, share_ack(-1))["error_code"] == SHARE_SESSION_NOT_FOUND
        refused = client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [acks(0, 0, ACCEPT)])]))
        assert refused["error_code"] == INVALID_REQUEST and refused["responses"] == []  # acks cannot open one
        assert client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))["error_code"] == 0
        wrong = client.call(SHARE_FETCH, 1, share_fetch(5))
        assert wrong["error_code"] == INVALID_SHARE_SESSION_EPOCH and wrong["responses"] == []
        assert client.call(SHARE_ACK, 1, share_ack(0))["error_code"] == INVALID_SHARE_SESSION_EPOCH
        assert client.call(SHARE_FETCH, 1, share_fetch(1))["error_code"] == 0  # still expecting 1
        assert client.call(SHARE_ACK, 1, share_ack(2))["error_code"] == 0
        assert client.call(SHARE_FETCH, 1, share_fetch(2))["error_code"] == INVALID_SHARE_SESSION_EPOCH
        assert client.call(SHARE_FETCH, 1, share_fetch(3))["error_code"] == 0
        # a new epoch 0 replaces the session
        assert client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))["error_code"] == 0
        assert client.call(SHARE_FETCH, 1, share_fetch(4))["error_code"] == INVALID_SHARE_SESSION_EPOCH
        assert client.call(SHARE_FETCH, 1, share_fetch(1))["error_code"] == 0
        # the final ShareFetch fetches nothing and ends the session
        produce(broker, "t", b"x")
        final = client.call(SHARE_FETCH, 1, share_fetch(-1, [(tid, 0, [])]))
        assert final["error_code"] == 0 and partitions(final) == {}
        assert client.call(SHARE_FETCH, 1, share_fetch(2))["error_code"] == SHARE_SESSION_NOT_FOUND
        assert client.call(SHARE_FETCH, 1, share_fetch(-1))["error_code"] == SHARE_SESSION_NOT_FOUND
    assert len(server.server.share_sessions) == 0


def test_requests_without_group_or_member_are_invalid(server):
    with WireClient(server.port) as client:
        assert client.call(SHARE_FETCH, 1, share_fetch(0, member=""))["error_code"] == INVALID_REQUEST
        assert client.call(SHARE_FETCH, 1, share_fetch(0, group=""))["error_code"] == INVALID_REQUEST
        assert client.call(SHARE_ACK, 1, share_ack(1, member=""))["error_code"] == INVALID_REQUEST
        body = share_fetch(0)
        body["group_id"] = None
        assert client.call(SHARE_FETCH, 1, body)["error_code"] == INVALID_REQUEST


def test_forgotten_and_added_partitions(server):
    broker = server.broker
    broker.create_topic("t", 2)
    tid = topic_id(broker, "t")
    with WireClient(server.port) as client:
        join(client)
        client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))
        produce(broker, "t", b"one", partition=1)
        assert partitions(client.call(SHARE_FETCH, 1, share_fetch(1))) == {}  # partition 1 is not in the session
        got = partitions(client.call(SHARE_FETCH, 1, share_fetch(2, [(tid, 1, [])])))
        assert delivered(got[(tid, 1)]) == {0: (b"one", 1)}
        produce(broker, "t", b"two", partition=1)
        assert partitions(client.call(SHARE_FETCH, 1, share_fetch(3, forgotten=[(tid, [1])]))) == {}
        assert server.server.share_sessions.get("g", MEMBER).partitions.keys() == {(tid, 0)}
        # what the member held on the forgotten partition is released at once: another member gets it
        again = broker.shares.acquire("g", "other", [("t", 1)], 10)
        assert [(a.offset, a.delivery_count) for a in again[0].acquired] == [(0, 2), (1, 1)]


# ---- per-partition errors -------------------------------------------------------------------------------------

def test_acknowledging_what_this_member_does_not_hold_is_invalid_record_state(server):
    broker = server.broker
    broker.create_topic("t", 2)
    produce(broker, "t", b"a", b"b")
    tid = topic_id(broker, "t")
    with WireClient(server.port) as client:
        join(client)
        first = partitions(client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, []), (tid, 1, [])])))
        assert set(delivered(first[(tid, 0)])) == {0, 1} and not first[(tid, 1)]["acquired_records"]
        # offset 7 was never acquired: partition 0's batch is refused whole; partition 1 holds nothing
        body = share_fetch(1, [(tid, 0, [acks(0, 0, ACCEPT), acks(7, 7, ACCEPT)]), (tid, 1, [acks(0, 0, ACCEPT)])])
        got = partitions(client.call(SHARE_FETCH, 1, body))
        assert got[(tid, 0)]["acknowledge_error_code"] == INVALID_RECORD_STATE
        assert got[(tid, 1)]["acknowledge_error_code"] == INVALID_RECORD_STATE
        answer = partitions(client.call(SHARE_ACK, 1, share_ack(2, [(tid, 0, [acks(0, 1, ACCEPT)])])))
        assert answer[(tid, 0)]["error_code"] == 0  # all or nothing: offset 0 was still held
        answer = partitions(client.call(SHARE_ACK, 1, share_ack(3, [(tid, 0, [acks(0, 0, ACCEPT)])])))
        assert answer[(tid, 0)]["error_code"] == INVALID_RECORD_STATE  # already acknowledged
        huge = partitions(client.call(SHARE_ACK, 1, share_ack(4, [(tid, 0, [acks(0, 2**62, ACCEPT)])])))
        assert huge[(tid, 0)]["error_code"] == INVALID_RECORD_STATE  # answered without expanding the range


@pytest.mark.parametrize("batches", [
    [acks(3, 2, ACCEPT)], [acks(0, 2, ACCEPT, ACCEPT)], [acks(0, 1, 4)], [acks(0, 1, ACCEPT), acks(1, 2, ACCEPT)],
    [acks(2, 2, ACCEPT), acks(0, 0, ACCEPT)], [acks(-1, 0, ACCEPT)], [acks(0, 0)],
], ids=["first>last", "types length", "type 4", "overlap", "descending", "negative", "no types"])
def test_malformed_acknowledgement_batches_are_invalid_request_for_their_partition(server, batches):
    broker = server.broker
    broker.create_topic("t", 1)
    produce(broker, "t", b"a", b"b", b"c")
    tid = topic_id(broker, "t")
    with WireClient(server.port) as client:
        join(client)
        client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))
        got = client.call(SHARE_FETCH, 1, share_fetch(1, [(tid, 0, batches)]))
        assert got["error_code"] == 0 and partitions(got)[(tid, 0)]["acknowledge_error_code"] == INVALID_REQUEST
        answer = client.call(SHARE_ACK, 1, share_ack(2, [(tid, 0, batches)]))
        assert partitions(answer)[(tid, 0)]["error_code"] == INVALID_REQUEST
        # nothing was applied: the three records are still this member's to accept
        ok = client.call(SHARE_ACK, 1, share_ack(3, [(tid, 0, [acks(0, 2, ACCEPT)])]))
        assert partitions(ok)[(tid, 0)]["error_code"] == 0


def test_unknown_topic_ids_and_partitions(server):
    broker = server.broker
    broker.create_topic("t", 1)
    produce(broker, "t", b"a")
    tid, nope = topic_id(broker, "t"), uuid.uuid4()
    with WireClient(server.port) as client:
        join(client)
        got = client.call(SHARE_FETCH, 1, share_fetch(0, [(nope, 0, []), (tid, 5, []), (tid, 0, [])]))
        entries = partitions(got)
        assert entries[(nope, 0)]["error_code"] == UNKNOWN_TOPIC_ID and entries[(nope, 0)]["records"] == b""
        assert entries[(tid, 5)]["error_code"] == 3
        assert delivered(entries[(tid, 0)]) == {0: (b"a", 1)}
        body = share_ack(1, [(nope, 0, [acks(0, 0, ACCEPT)]), (tid, 0, [acks(0, 0, ACCEPT)])])
        answer = client.call(SHARE_ACK, 1, body)
        codes = {k: p["error_code"] for k, p in partitions(answer).items()}
        assert codes == {(nope, 0): UNKNOWN_TOPIC_ID, (tid, 0): 0}
        # a topic deleted and made again has a new id: the old one is unknown
        broker.delete_topic("t")
        broker.create_topic("t", 1)
        got = partitions(client.call(SHARE_FETCH, 1, share_fetch(2)))
        assert got[(tid, 0)]["error_code"] == UNKNOWN_TOPIC_ID


def test_two_members_never_share_a_record(server):
    broker = server.broker
    broker.create_topic("t", 1)
    produce(broker, "t", *[b"v%d" % i for i in range(10)])
    tid = topic_id(broker, "t")
    with WireClient(server.port) as a, WireClient(server.port) as b:
        join(a, member="a")
        join(b, member="b")
        got_a = delivered(partitions(a.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], member="a",
                                                                        max_records=4)))[(tid, 0)])
        got_b = delivered(partitions(b.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], member="b")))[(tid, 0)])
        assert sorted(got_a) == [0, 1, 2, 3] and sorted(got_b) == list(range(4, 10))
        # b cannot acknowledge a's records
        answer = b.call(SHARE_ACK, 1, share_ack(1, [(tid, 0, [acks(0, 0, ACCEPT)])], member="b"))
        assert partitions(answer)[(tid, 0)]["error_code"] == INVALID_RECORD_STATE


# ---- long polls -----------------------------------------------------------------------------------------------

def test_long_poll_waits_for_max_wait_ms_and_wakes_early_on_produce(server):
    broker = server.broker
    broker.create_topic("t", 1)
    tid = topic_id(broker, "t")
    with WireClient(server.port) as client, WireClient(server.port) as producer:
        join(client)
        started = time.monotonic()
        empty = client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], max_wait_ms=600))
        waited = time.monotonic() - started
        assert empty["error_code"] == 0 and not partitions(empty)[(tid, 0)]["acquired_records"]
        assert 0.5 <= waited < 5, waited

        started = time.monotonic()
        client.send(SHARE_FETCH, 1, share_fetch(1, max_wait_ms=10_000))
        time.sleep(0.3)
        late = encode_batch([(None, b"late", [], int(time.time() * 1000))])
        produced = producer.call(PRODUCE, 7, {
            "transactional_id": None, "acks": -1, "timeout_ms": 30000,
            "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": late}]}]})
        assert produced["responses"][0]["partition_responses"][0]["error_code"] == 0
        _, body = client.recv(timeout=10)
        waited = time.monotonic() - started
        assert delivered(partitions(body)[(tid, 0)]) == {0: (b"late", 1)}
        assert 0.25 <= waited < 5, waited


def test_an_expiring_lock_wakes_a_long_poll_of_another_member(server):
    broker = server.broker
    broker.create_topic("t", 1)
    broker.shares.configure("g", lock_duration_ms=400)
    produce(broker, "t", b"a")
    tid = topic_id(broker, "t")
    with WireClient(server.port) as a, WireClient(server.port) as b:
        join(a, member="a")
        join(b, member="b")
        first = a.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], member="a"))
        assert first["acquisition_lock_timeout_ms"] == 400
        assert delivered(partitions(first)[(tid, 0)]) == {0: (b"a", 1)}
        started = time.monotonic()
        got = b.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], member="b", max_wait_ms=8000), timeout=15)
        assert delivered(partitions(got)[(tid, 0)]) == {0: (b"a", 2)}
        assert time.monotonic() - started < 4
        # a's lock is gone: its acknowledgement is refused
        answer = a.call(SHARE_ACK, 1, share_ack(1, [(tid, 0, [acks(0, 0, ACCEPT)])], member="a"))
        assert partitions(answer)[(tid, 0)]["error_code"] == INVALID_RECORD_STATE


# ---- sessions end: records released ---------------------------------------------------------------------------

def test_closing_the_connection_releases_the_members_records(server):
    broker = server.broker
    broker.create_topic("t", 1)
    produce(broker, "t", b"a", b"b")
    tid = topic_id(broker, "t")
    with WireClient(server.port) as b:
        join(b, member="b")
        with WireClient(server.port) as a:
            join(a, member="a")
            got = a.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], member="a"))
            assert set(delivered(partitions(got)[(tid, 0)])) == {0, 1}
            b.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], member="b"))  # nothing for b yet
            b.send(SHARE_FETCH, 1, share_fetch(1, member="b", max_wait_ms=8000))
            time.sleep(0.2)
        _, body = b.recv(timeout=15)  # woken by the release
        assert delivered(partitions(body)[(tid, 0)]) == {0: (b"a", 2), 1: (b"b", 2)}
    deadline = time.monotonic() + 5
    while len(server.server.share_sessions) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.server.share_sessions) == 0


def test_final_share_acknowledge_applies_acks_then_releases_the_rest(server):
    broker = server.broker
    broker.create_topic("t", 1)
    produce(broker, "t", b"a", b"b", b"c")
    tid = topic_id(broker, "t")
    with WireClient(server.port) as a, WireClient(server.port) as b:
        join(a, member="a")
        a.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], member="a"))
        final = a.call(SHARE_ACK, 1, share_ack(-1, [(tid, 0, [acks(0, 0, ACCEPT)])], member="a"))
        assert final["error_code"] == 0 and partitions(final)[(tid, 0)]["error_code"] == 0
        assert a.call(SHARE_ACK, 1, share_ack(1, member="a"))["error_code"] == SHARE_SESSION_NOT_FOUND
        got = b.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], member="b", max_wait_ms=5000))
        assert delivered(partitions(got)[(tid, 0)]) == {1: (b"b", 2), 2: (b"c", 2)}


def test_replacing_a_session_releases_what_the_old_one_held(server):
    broker = server.broker
    broker.create_topic("t", 1)
    produce(broker, "t", b"a")
    tid = topic_id(broker, "t")
    with WireClient(server.port) as client:
        join(client)
        got = client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))
        assert delivered(partitions(got)[(tid, 0)]) == {0: (b"a", 1)}
        # the client lost its session (say, after an epoch error) and opens a new one: what the old one
        # held is released first, so the new one gets it again at once
        got = client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))
        assert delivered(partitions(got)[(tid, 0)]) == {0: (b"a", 2)}
        answer = client.call(SHARE_ACK, 1, share_ack(1, [(tid, 0, [acks(0, 0, ACCEPT)])]))
        assert partitions(answer)[(tid, 0)]["error_code"] == 0


def test_old_connection_closing_does_not_end_a_replacement_session(server):
    broker = server.broker
    broker.create_topic("t", 1)
    produce(broker, "t", b"a")
    tid = topic_id(broker, "t")
    with WireClient(server.port) as second:
        with WireClient(server.port) as first:
            join(first)
            first.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))
            got = second.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))
            assert delivered(partitions(got)[(tid, 0)]) == {0: (b"a", 2)}
        time.sleep(0.3)  # the first connection's close is handled
        answer = second.call(SHARE_ACK, 1, share_ack(1, [(tid, 0, [acks(0, 0, ACCEPT)])]))
        assert partitions(answer)[(tid, 0)]["error_code"] == 0  # still held by this session


def test_server_shutdown_with_open_sessions_and_a_parked_fetch(tmp_path):
    s = InProcessServer(tmp_path / "data", share_auto_offset_reset="earliest")
    try:
        s.broker.create_topic("t", 1)
        tid = topic_id(s.broker, "t")
        client = WireClient(s.port)
        join(client)
        client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))
        client.send(SHARE_FETCH, 1, share_fetch(1, max_wait_ms=60_000))
        time.sleep(0.2)
    finally:
        started = time.monotonic()
        s.close()
        assert time.monotonic() - started < 10
    _, body = client.recv(timeout=5)  # the parked fetch was answered
    assert body["error_code"] == 0
    client.close()


def test_malformed_share_request_closes_only_its_connection(server):
    with WireClient(server.port) as bad, WireClient(server.port) as good:
        header = struct.pack(">hhih", SHARE_FETCH, 1, 1, -1) + b"\x00"
        bad.send_raw(struct.pack(">i", len(header) + 3) + header + b"\x05\xff\xff")
        assert bad.closed_by_server()
        assert good.call(HEARTBEAT, 1, heartbeat(topics=["t"]))["error_code"] == 0


# ---- helpers --------------------------------------------------------------------------------------------------

def test_acknowledgement_batch_helpers():
    assert check_batches([acks(0, 2, ACCEPT), acks(5, 6, RELEASE, GAP)]) == (0, 5)
    assert check_batches([acks(0, 2, ACCEPT), acks(2, 3, ACCEPT)])[0] == INVALID_REQUEST
    assert expand_batches([acks(0, 2, ACCEPT), acks(5, 6, RELEASE, GAP)]) == [
        (0, None, 1), (1, None, 1), (2, None, 1), (5, None, 2), (6, None, 0)]


def test_acquired_ranges_split_on_gaps_and_delivery_counts():
    from logbroker.groups.share_partition import Acquired

    got = acquired_ranges([Acquired(o, c, c) for o, c in [(5, 1), (3, 1), (4, 1), (6, 2), (7, 2), (9, 2)]])
    assert got == [{"first_offset": 3, "last_offset": 5, "delivery_count": 1},
                   {"first_offset": 6, "last_offset": 7, "delivery_count": 2},
                   {"first_offset": 9, "last_offset": 9, "delivery_count": 2}]


def test_wakeups_are_bounded_threads(server):
    """Many parked share fetches hold no threads: a normal request still gets through at once."""
    broker = server.broker
    broker.create_topic("t", 1)
    tid = topic_id(broker, "t")
    clients = [WireClient(server.port) for _ in range(40)]
    try:
        for i, c in enumerate(clients):
            join(c, member=f"m{i}")
            c.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])], member=f"m{i}"))
            c.send(SHARE_FETCH, 1, share_fetch(1, member=f"m{i}", max_wait_ms=1500))
        started = time.monotonic()
        with WireClient(server.port) as other:
            assert other.call(METADATA, 4, {"topics": None})["controller_id"] == 0
        assert time.monotonic() - started < 2
        threading.Thread(target=produce, args=(broker, "t", b"one"), daemon=True).start()
        winners = 0
        for c in clients:
            _, body = c.recv(timeout=10)
            winners += bool(partitions(body).get((tid, 0), {}).get("acquired_records"))
        assert winners == 1
    finally:
        for c in clients:
            c.close()


def test_server_share_options_set_the_default_group_config(tmp_path):
    from logbroker.broker import Broker
    from logbroker.errors import InvalidConfigError
    from logbroker.server import Server

    with Broker.open(str(tmp_path / "data"), housekeeping=False) as broker:
        with pytest.raises(InvalidConfigError):
            Server(broker, share_record_lock_duration_ms=0)
        with pytest.raises(InvalidConfigError):
            Server(broker, share_auto_offset_reset="by_duration:PT1H")
    s = InProcessServer(tmp_path / "data2", share_auto_offset_reset="earliest", share_record_lock_duration_ms=1234)
    try:
        config = s.broker.shares.default_config
        assert (config.auto_offset_reset, config.lock_duration_ms) == ("earliest", 1234)
        s.broker.create_topic("t", 1)
        with WireClient(s.port) as client:
            join(client)
            got = client.call(SHARE_FETCH, 1, share_fetch(0, [(topic_id(s.broker, "t"), 0, [])]))
            assert got["acquisition_lock_timeout_ms"] == 1234
    finally:
        s.close()


def test_by_default_a_new_share_group_starts_at_the_latest_offset(inproc):
    broker = inproc.broker
    broker.create_topic("t", 1)
    produce(broker, "t", b"before")
    tid = topic_id(broker, "t")
    with WireClient(inproc.port) as client:
        join(client)
        first = client.call(SHARE_FETCH, 1, share_fetch(0, [(tid, 0, [])]))
        assert partitions(first)[(tid, 0)]["acquired_records"] == []
        produce(broker, "t", b"after")
        got = client.call(SHARE_FETCH, 1, share_fetch(1, max_wait_ms=2000))
        assert delivered(partitions(got)[(tid, 0)]) == {1: (b"after", 1)}
