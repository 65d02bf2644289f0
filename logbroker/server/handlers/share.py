"""Share groups (KIP-932): ShareGroupHeartbeat (76), ShareFetch (78), ShareAcknowledge (79), v1 only --
wire shapes over ``broker.shares`` (ShareGroupService) and the server's share sessions
(``share_sessions.py``).  SHARE_GROUPS.md §2-§5 is the specification.

* **Topic ids.**  Share RPCs name topics by id only: the 16 bytes of a topic's ``topic_id`` (stored as
  URL-safe base64).  The server keeps an id -> name index, rebuilt when an id is not in it or names a
  topic that was deleted and made again; an unknown id is UNKNOWN_TOPIC_ID (100) for its partition.
* **ShareGroupHeartbeat**: the request is validated as Kafka's coordinator does (§3.10: empty group or
  member id, rack "", epoch < -1, epoch 0 without topics -> INVALID_REQUEST 42), then it is the
  service's ``heartbeat``; the assignment goes back by topic id (null when the service gives none).
* **ShareFetch**: the session step first (share_sessions.py; a top-level error stops there).  Repeated
  topic ids are merged by (topic id, partition) (§5.2).  Piggybacked acknowledgements are applied
  before anything is acquired, and every partition that carried some is in the answer with its
  ``acknowledge_error_code`` (§3.9).  Then records are acquired across the session's partitions, up to
  ``max_records``; when nothing could be and ``max_wait_ms`` > 0, the request waits -- holding no
  thread -- on the server's ``share_signal`` (the service calls it when records may have become
  available: new data, a release, an expired lock) and on the next lock deadline, and tries again.
  The answer carries the stored batches holding the acquired offsets (empty bytes, never null),
  ``acquired_records`` as runs of consecutive offsets with one delivery count, and the group's lock
  duration.  An epoch-0 answer lists every partition of the session; later ones only partitions with
  records, errors or acknowledgement results.  Epoch -1 applies the acknowledgements, fetches nothing
  and ends the session.
* **ShareAcknowledge**: epoch 0 is INVALID_SHARE_SESSION_EPOCH; otherwise the acknowledgements are
  applied and each acknowledged partition answered with its ``error_code``; -1 ends the session.
* **Acknowledgement batches** (§3.4): first <= last, ascending and non-overlapping per partition,
  ``acknowledge_types`` one value for the range or one per offset, types 0-3; otherwise
  INVALID_REQUEST (42) for that partition.  They become per-offset ``(offset, None, type)`` for the
  service, which applies a partition's all or nothing (121 when an offset is not this member's).
  A partition naming more offsets than any member can hold (``MAX_ACK_OFFSETS``) is answered 121
  without being expanded, so a huge range costs nothing.
* **A session ends** by epoch -1, by an epoch-0 request replacing it, or when the connection that
  created it closes (``Server._connection_closed``); then, once the session's calls still running in
  the work pool are done, ``release_member`` releases every record that session acquired (locks carry
  the session's token, so however late a release runs it never frees a newer session's records).  A
  later request of the same (group, member) first waits (bounded) for that release.
  Partitions a ShareFetch *forgets* are dropped from the session and the member's records there are
  released at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from ...errors import LogbrokerError
from ...groups.share_membership import HEARTBEAT_INTERVAL_MS
from ...groups.share_partition import ACCEPT, GAP, INVALID_RECORD_STATE, RELEASE, REJECT
from ...records.batch import iter_batches
from ..share_sessions import INITIAL_EPOCH
from .common import INVALID_REQUEST, NONE, UNKNOWN_TOPIC_OR_PARTITION, error_code, error_message
from .metadata import UNKNOWN_TOPIC_ID, topic_uuid

log = logging.getLogger(__name__)

DEFAULT_MAX_RECORDS = 500  # librdkafka's max.poll.records
MAX_WAIT_MS = 300_000  # a ShareFetch never waits longer than this, whatever it asks for
MIN_READ_BYTES = 1 << 20
MAX_ACK_OFFSETS = 2000  # per partition and request: what one member can hold (the share-partition's locks)
MAX_ACK_OFFSETS_PER_REQUEST = 1_000_000
RELEASE_WAIT_S = 30.0


# ---- topic ids ---------------------------------------------------------------------------------------

class TopicIds:
    """id -> topic name for the share RPCs (ids as Metadata sends them, ``metadata.topic_uuid``); used from
    the work pool: the index is replaced whole, never changed in place."""

    def __init__(self, broker):
        self._broker = broker
        self._names: dict[uuid.UUID, str] = {}

    def name(self, topic_id: uuid.UUID) -> str | None:
        name = self._names.get(topic_id)
        if name is not None and self._current(name) == topic_id:
            return name
        self._rebuild()
        return self._names.get(topic_id)

    def uuid_of(self, name: str) -> uuid.UUID | None:
        return self._current(name)

    def _current(self, name: str) -> uuid.UUID | None:
        try:
            topic_id = topic_uuid(self._broker.topic(name).topic_id)
        except LogbrokerError:
            return None
        return topic_id if topic_id.int else None  # the zero id names no topic

    def _rebuild(self) -> None:
        names = {}
        for name in self._broker.list_topics():
            topic_id = self._current(name)
            if topic_id is not None:
                names[topic_id] = name
        self._names = names


def _topic_ids(server) -> TopicIds:
    ids = getattr(server, "share_topic_ids", None)
    if ids is None:
        ids = server.share_topic_ids = TopicIds(server.broker)
    return ids


# ---- sessions: waiting for and releasing -------------------------------------------------------------

def share_signal(server):
    """The server's DataSignal fed by the share service's listener (registered on first use)."""
    signal = server.share_signal
    if not server.share_listening:
        server.broker.shares.add_listener(signal.notify_threadsafe)
        server.share_listening = True
    return signal


def end_sessions(server, sessions) -> None:
    """Release the members of sessions that ended, each after its session's unfinished calls (loop only)."""
    loop = asyncio.get_running_loop()
    for session in sessions:
        key = session.key
        previous = server.share_releases.get(key)
        task = loop.create_task(_release(server, session, previous), name=f"release share member {key}")
        server.share_releases[key] = task
        task.add_done_callback(lambda t, key=key: _forget_release(server, key, t))


def _forget_release(server, key, task) -> None:
    if server.share_releases.get(key) is task:
        del server.share_releases[key]


async def _release(server, session, previous) -> None:
    if previous is not None:
        await asyncio.wait({previous}, timeout=RELEASE_WAIT_S)
    running = [asyncio.wrap_future(f) for f in list(session.inflight) if not f.done()]
    if running:
        await asyncio.wait(running, timeout=RELEASE_WAIT_S)
    try:
        await asyncio.get_running_loop().run_in_executor(server.executor, server.broker.shares.release_member,
                                                         session.group, session.member_id, None, session.token)
    except Exception as exc:  # the broker is closing, or its disk failed: the locks expire instead
        log.warning("could not release the records of share member %s of group %r: %s", session.member_id,
                    session.group, exc)


async def settle(server, key) -> None:
    """Wait (bounded) until the release of an earlier session of ``key`` is done."""
    task = server.share_releases.get(key)
    if task is not None and not task.done():
        await asyncio.wait({task}, timeout=RELEASE_WAIT_S)


async def drain_releases(server, timeout: float) -> None:
    """Shutdown: wait (bounded) for every pending release."""
    tasks = [t for t in server.share_releases.values() if not t.done()]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


async def _call(ctx, session, fn, *args):
    """Run ``fn`` in the work pool as part of ``session`` (its release waits for it)."""
    future = ctx.server.executor.submit(fn, *args)
    session.inflight.add(future)
    try:
        return await asyncio.wrap_future(future)
    finally:
        if future.done():
            session.inflight.discard(future)


# ---- ShareGroupHeartbeat -----------------------------------------------------------------------------

async def handle_share_group_heartbeat(ctx, body: dict) -> dict:
    group = body.get("group_id") or ""
    member = body.get("member_id") or ""
    epoch = body.get("member_epoch", 0)
    rack = body.get("rack_id")
    topics = body.get("subscribed_topic_names")

    def answer(code: int, message: str | None = None, member_epoch: int = epoch,
               interval: int = HEARTBEAT_INTERVAL_MS, assignment: dict | None = None) -> dict:
        return {"throttle_time_ms": 0, "error_code": code, "error_message": message, "member_id": member or None,
                "member_epoch": member_epoch, "heartbeat_interval_ms": interval, "assignment": assignment}

    problem = None
    if not group:
        problem = "the group id is empty"
    elif not member:
        problem = "the member id is empty"
    elif rack == "":
        problem = "the rack id is empty"
    elif epoch < -1:
        problem = f"member epoch {epoch} is invalid"
    elif epoch == 0 and not topics:
        problem = "joining (epoch 0) needs a non-empty list of subscribed topics"
    if problem is not None:
        return answer(INVALID_REQUEST, problem)
    broker = ctx.broker
    ids = _topic_ids(ctx.server)

    def call():
        result = broker.shares.heartbeat(group, member, epoch, None if topics is None else list(topics))
        assignment = None
        if result.error_code == NONE and result.assignment is not None:
            entries = []
            for topic, partitions in result.assignment.items():
                topic_id = ids.uuid_of(topic)
                if topic_id is not None:  # deleted meanwhile: the next heartbeat says so
                    entries.append({"topic_id": topic_id, "partitions": sorted(partitions)})
            assignment = {"topic_partitions": entries}
        return result, assignment

    try:
        result, assignment = await ctx.run(call)
    except Exception as exc:
        return answer(error_code(exc), error_message(exc))
    interval = result.heartbeat_interval_ms if result.heartbeat_interval_ms > 0 else HEARTBEAT_INTERVAL_MS
    return answer(result.error_code, None, result.member_epoch, interval, assignment)


# ---- acknowledgements --------------------------------------------------------------------------------

def _merge_topics(topics) -> tuple[dict, dict]:
    """(partitions named, in order; acknowledgement batches per partition that carried some)."""
    wanted: dict = {}
    acks: dict = {}
    for topic in topics or []:
        topic_id = topic.get("topic_id")
        for partition in topic.get("partitions") or []:
            key = (topic_id, partition.get("partition_index"))
            wanted.setdefault(key, None)
            batches = partition.get("acknowledgement_batches") or []
            if batches:
                acks.setdefault(key, []).extend(batches)
    return wanted, acks


def check_batches(batches) -> tuple[int, int]:
    """(error code, offsets named) of one partition's acknowledgement batches (§3.4)."""
    previous_last = -1
    total = 0
    for batch in batches:
        first, last = batch.get("first_offset", -1), batch.get("last_offset", -1)
        types = batch.get("acknowledge_types") or []
        if first < 0 or last < first or first <= previous_last:
            return INVALID_REQUEST, 0
        count = last - first + 1
        if len(types) not in (1, count) or any(t not in (GAP, ACCEPT, RELEASE, REJECT) for t in types):
            return INVALID_REQUEST, 0
        previous_last = last
        total += count
    return NONE, total


def expand_batches(batches) -> list[tuple[int, None, int]]:
    """Checked batches as the service's per-offset ``(offset, None, type)``."""
    out = []
    for batch in batches:
        first, last, types = batch["first_offset"], batch["last_offset"], batch["acknowledge_types"]
        if len(types) == 1:
            out.extend((offset, None, types[0]) for offset in range(first, last + 1))
        else:
            out.extend((first + i, None, t) for i, t in enumerate(types))
    return out


def _acknowledge(server, group: str, member: str, acks: dict) -> dict:
    """Apply acknowledgements (work pool); {(topic id, partition): error code} for every partition."""
    ids = _topic_ids(server)
    codes = {}
    items = {}
    keys = {}
    budget = MAX_ACK_OFFSETS_PER_REQUEST
    for key, batches in acks.items():
        topic_id, partition = key
        code, count = check_batches(batches)
        if code:
            codes[key] = code
            continue
        name = ids.name(topic_id)
        if name is None:
            codes[key] = UNKNOWN_TOPIC_ID
            continue
        if count > MAX_ACK_OFFSETS or count > budget:
            codes[key] = INVALID_RECORD_STATE  # more than this member can hold
            continue
        budget -= count
        items[(name, partition)] = expand_batches(batches)
        keys[(name, partition)] = key
    if items:
        try:
            results = server.broker.shares.acknowledge(group, member, items)
        except Exception as exc:
            code = error_code(exc)
            results = {k: code for k in items}
        for k, code in results.items():
            codes[keys[k]] = code
    return codes


# ---- acquisition -------------------------------------------------------------------------------------

def _release_forgotten(server, group: str, member: str, forgotten: list, token: int) -> None:
    """Partitions the member stopped fetching (work pool): what it holds there is released at once."""
    ids = _topic_ids(server)
    partitions = [(ids.name(topic_id), partition) for topic_id, partition in forgotten]
    partitions = [(name, partition) for name, partition in partitions if name is not None]
    if partitions:
        try:
            server.broker.shares.release_member(group, member, partitions, token)
        except LogbrokerError as exc:  # their locks expire instead
            log.warning("could not release forgotten partitions of share member %s: %s", member, exc)


def acquired_ranges(acquired) -> list[dict]:
    """Runs of consecutive offsets sharing one delivery count."""
    out: list[dict] = []
    for a in sorted(acquired, key=lambda a: a.offset):
        last = out[-1] if out else None
        if last is not None and a.offset == last["last_offset"] + 1 and a.delivery_count == last["delivery_count"]:
            last["last_offset"] = a.offset
        else:
            out.append({"first_offset": a.offset, "last_offset": a.offset, "delivery_count": a.delivery_count})
    return out


def _acquire(server, group: str, member: str, partitions: list, max_records: int, max_bytes: int, token: int):
    """Acquire and read (work pool): ({key: (bytes, [Acquired])}, {key: error}, lock ms, next lock deadline)."""
    broker = server.broker
    shares = broker.shares
    ids = _topic_ids(server)
    errors = {}
    valid = []
    keys = {}
    for key in partitions:
        topic_id, partition = key
        name = ids.name(topic_id)
        if name is None:
            errors[key] = UNKNOWN_TOPIC_ID
            continue
        try:
            count = broker.partition_count(name)
        except LogbrokerError:
            errors[key] = UNKNOWN_TOPIC_ID
            continue
        if not isinstance(partition, int) or not 0 <= partition < count:
            errors[key] = UNKNOWN_TOPIC_OR_PARTITION
            continue
        valid.append((name, partition))
        keys[(name, partition)] = key
    got = {}
    lock_ms = shares.config(group).lock_duration_ms
    if valid:
        try:
            acquisitions = shares.acquire(group, member, valid, max_records, session=token)
        except Exception as exc:
            code = error_code(exc)
            errors.update({keys[k]: code for k in valid})
            acquisitions = []
        for pa in acquisitions:
            key = keys[(pa.topic, pa.partition)]
            try:
                got[key] = _read(shares, group, member, pa, max_bytes)
            except Exception as exc:
                errors[key] = error_code(exc)
                _release_quietly(shares, group, member, pa.topic, pa.partition, pa.acquired)
    return got, errors, lock_ms, shares.next_deadline()


def _read(shares, group: str, member: str, pa, max_bytes: int):
    """The stored batches holding ``pa``'s offsets; offsets a size limit left out are released again."""
    limit = max(max_bytes, MIN_READ_BYTES)
    data = shares.read_batches(pa.topic, pa.partition, pa.acquired, limit)
    acquired = list(pa.acquired)
    if len(data) >= limit:
        end = None
        for _, header in iter_batches(data):
            end = header.next_offset
        if end is not None:
            left = [a for a in acquired if a.offset >= end]
            if left:
                acquired = [a for a in acquired if a.offset < end]
                _release_quietly(shares, group, member, pa.topic, pa.partition, left)
    return data, acquired


def _release_quietly(shares, group, member, topic, partition, acquired) -> None:
    """Acquired records that could not be sent go back at once, their delivery not counted."""
    try:
        shares.return_unsent(group, member, topic, partition, [a.offset for a in acquired])
    except Exception:  # the locks expire instead
        log.warning("could not release records of %s-%d for share member %s", topic, partition, member,
                    exc_info=True)


# ---- ShareFetch --------------------------------------------------------------------------------------

def _fetch_partition(index: int) -> dict:
    return {"partition_index": index, "error_code": NONE, "error_message": None, "acknowledge_error_code": NONE,
            "acknowledge_error_message": None, "current_leader": {"leader_id": -1, "leader_epoch": -1},
            "records": b"", "acquired_records": []}


def _by_topic(entries: dict) -> list[dict]:
    topics: dict = {}
    for (topic_id, _), entry in entries.items():
        topics.setdefault(topic_id, []).append(entry)
    return [{"topic_id": topic_id, "partitions": partitions} for topic_id, partitions in topics.items()]


def _fetch_answer(code: int = NONE, message: str | None = None, lock_ms: int = 0, entries: dict | None = None) -> dict:
    return {"throttle_time_ms": 0, "error_code": code, "error_message": message,
            "acquisition_lock_timeout_ms": lock_ms, "responses": _by_topic(entries or {}), "node_endpoints": []}


_SESSION_ERRORS = {122: "no share session for this group and member", 123: "unexpected share session epoch",
                   133: "too many share sessions on this broker"}


async def handle_share_fetch(ctx, body: dict) -> dict:
    server = ctx.server
    group = body.get("group_id") or ""
    member = body.get("member_id") or ""
    epoch = body.get("share_session_epoch", 0)
    if not group or not member:
        return _fetch_answer(INVALID_REQUEST, "a share fetch needs a group id and a member id")
    wanted, acks = _merge_topics(body.get("topics"))
    forgotten = [(t.get("topic_id"), p)
                 for t in body.get("forgotten_topics_data") or [] for p in t.get("partitions") or []]
    if epoch == INITIAL_EPOCH and acks:
        return _fetch_answer(INVALID_REQUEST, "a share fetch opening a session cannot carry acknowledgements")
    step = server.share_sessions.share_fetch(group, member, epoch, ctx.connection, wanted)
    if step.error_code:
        return _fetch_answer(step.error_code, _SESSION_ERRORS.get(step.error_code))
    session = step.session
    replaced = [s for s in step.ended if s is not session]
    if replaced:
        end_sessions(server, replaced)
    try:
        await settle(server, session.key)
        if epoch != INITIAL_EPOCH and not step.final:
            session.update(wanted, forgotten)
            if forgotten:
                await _call(ctx, session, _release_forgotten, server, group, member, forgotten, session.token)
        entries: dict = {}
        if acks:
            codes = await _call(ctx, session, _acknowledge, server, group, member, acks)
            for key, code in codes.items():
                entries.setdefault(key, _fetch_partition(key[1]))["acknowledge_error_code"] = code
        if step.final:
            return _fetch_answer(entries=entries)
        if epoch == INITIAL_EPOCH:
            for key in session.partitions:
                entries.setdefault(key, _fetch_partition(key[1]))
        got, errors, lock_ms = await _fetch_records(ctx, body, session)
    finally:
        if step.final:
            end_sessions(server, [session])
    for key, code in errors.items():
        entries.setdefault(key, _fetch_partition(key[1]))["error_code"] = code
    for key, (data, acquired) in got.items():
        entry = entries.setdefault(key, _fetch_partition(key[1]))
        entry["records"] = data
        entry["acquired_records"] = acquired_ranges(acquired)
    return _fetch_answer(lock_ms=lock_ms, entries=entries)


async def _fetch_records(ctx, body: dict, session):
    """Acquire, waiting up to max_wait_ms (without a thread) while nothing can be: (got, errors, lock ms)."""
    server = ctx.server
    max_records = body.get("max_records") or 0
    if max_records <= 0:
        max_records = body.get("batch_size") or 0
    if max_records <= 0:
        max_records = DEFAULT_MAX_RECORDS
    max_bytes = body.get("max_bytes")
    if max_bytes is None or max_bytes <= 0:
        max_bytes = 0x7FFFFFFF
    max_wait_s = min(max(body.get("max_wait_ms") or 0, 0), MAX_WAIT_MS) / 1000
    signal = share_signal(server)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    clock = ctx.broker.clock
    lock_ms = 0
    while True:
        if session.ended:  # ended while this request waited (replaced, connection closed): fetch nothing more
            return {}, {}, lock_ms
        version = signal.version
        got, errors, lock_ms, next_lock = await _call(ctx, session, _acquire, server, session.group,
                                                      session.member_id, list(session.partitions), max_records,
                                                      max_bytes, session.token)
        ctx.release()
        if got or errors or session.ended or server.closing or ctx.connection.closed:
            return got, errors, lock_ms
        remaining = deadline - loop.time()
        if remaining <= 0:
            return got, errors, lock_ms
        timeout = remaining
        if next_lock is not None:  # an expiring lock makes records available again
            timeout = min(timeout, max(0.0, (next_lock - clock.time_ms()) / 1000) + 0.005)
        await signal.wait(version, timeout)


# ---- ShareAcknowledge --------------------------------------------------------------------------------

def _ack_partition(index: int, code: int) -> dict:
    return {"partition_index": index, "error_code": code, "error_message": None,
            "current_leader": {"leader_id": -1, "leader_epoch": -1}}


def _ack_answer(code: int = NONE, message: str | None = None, entries: dict | None = None) -> dict:
    return {"throttle_time_ms": 0, "error_code": code, "error_message": message,
            "responses": _by_topic(entries or {}), "node_endpoints": []}


async def handle_share_acknowledge(ctx, body: dict) -> dict:
    server = ctx.server
    group = body.get("group_id") or ""
    member = body.get("member_id") or ""
    epoch = body.get("share_session_epoch", 0)
    if not group or not member:
        return _ack_answer(INVALID_REQUEST, "a share acknowledge needs a group id and a member id")
    _, acks = _merge_topics(body.get("topics"))
    step = server.share_sessions.share_acknowledge(group, member, epoch)
    if step.error_code:
        return _ack_answer(step.error_code, _SESSION_ERRORS.get(step.error_code))
    session = step.session
    try:
        await settle(server, session.key)
        codes = await _call(ctx, session, _acknowledge, server, group, member, acks) if acks else {}
    finally:
        if step.final:
            end_sessions(server, [session])
    return _ack_answer(entries={key: _ack_partition(key[1], code) for key, code in codes.items()})


__all__ = ["handle_share_acknowledge", "handle_share_fetch", "handle_share_group_heartbeat", "end_sessions",
           "drain_releases", "topic_uuid", "TopicIds"]
