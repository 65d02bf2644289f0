"""Consumer groups: FindCoordinator (10), JoinGroup (11), SyncGroup (14), Heartbeat (12),
LeaveGroup (13), OffsetCommit (8), OffsetFetch (9), ListGroups (16), DescribeGroups (15),
DeleteGroups (42) -- wire shapes over ``broker.groups`` (GroupService), which does the protocol.

JoinGroup and SyncGroup may wait for the rest of the group.  The handler registers a future with the
server's ``GroupWaiters`` *before* calling the service (the answer may be produced by another thread
before the call returns), does the call in its ordered phase, and, when the service says "pending"
(None), ends the ordered phase and awaits the future: no thread is held while a group forms.

JoinGroup v0-3 with an empty member id: Kafka adds such members at once under a generated id, which
the service would only reveal in the answer.  The handler first asks the service for an id (the v4
MEMBER_ID_REQUIRED step, invisible to the client) and then joins with it, so the wait is keyed by
a known id.  Static members (``group_instance_id``) joining without an id wait under the prefix of
the id the coordinator will give them.
"""

from __future__ import annotations

from ...groups.responses import JoinGroupResponse
from .common import NONE, UNKNOWN_SERVER_ERROR, error_code
from .metadata import NODE_ID, broker_entry

COORDINATOR_NOT_AVAILABLE = 15
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
NO_AUTHORIZED_OPERATIONS = -2147483648


# ---- FindCoordinator ---------------------------------------------------------------------------------

async def handle_find_coordinator(ctx, body: dict) -> dict:
    key_type = body.get("key_type", 0)
    keys = body.get("coordinator_keys") or [body.get("key", "")]
    me = broker_entry(ctx)
    if key_type == 0:
        code, message, node, host, port = NONE, None, NODE_ID, me["host"], me["port"]
    else:  # transactions (1) and anything newer are not served
        code, message, node, host, port = (COORDINATOR_NOT_AVAILABLE, "this broker has no transaction coordinator",
                                           -1, "", -1)
    return {"throttle_time_ms": 0, "error_code": code, "error_message": message, "node_id": node, "host": host,
            "port": port,
            "coordinators": [{"key": k, "node_id": node, "host": host, "port": port, "error_code": code,
                              "error_message": message} for k in keys]}


# ---- JoinGroup / SyncGroup -----------------------------------------------------------------------------

def _join_body(response) -> dict:
    return {"throttle_time_ms": 0, "error_code": response.error_code, "generation_id": response.generation_id,
            "protocol_type": response.protocol_type, "protocol_name": response.protocol_name or "",
            "leader": response.leader or "", "skip_assignment": bool(response.skip_assignment),
            "member_id": response.member_id or "",
            "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                         "metadata": m.metadata} for m in response.members]}


async def _call_or_wait(ctx, kind: str, member_id: str, instance_id: str | None, fn, *args):
    """Call the service; when it says "pending", end the ordered phase and wait for the answer."""
    waiters = ctx.server.group_waiters
    if not member_id and instance_id is None:
        response = await ctx.run(fn, *args)
        return response
    token, future = waiters.register(kind, member_id, instance_id=instance_id)
    try:
        response = await ctx.run(fn, *args)
        if response is None:
            ctx.release()
            response = await future
        return response
    finally:
        waiters.discard(token, future)


async def handle_join_group(ctx, body: dict) -> dict:
    version = ctx.api_version
    service = ctx.server.groups
    group_id = body["group_id"]
    member_id = body.get("member_id") or ""
    instance_id = body.get("group_instance_id")
    protocol_type = body["protocol_type"]
    protocols = [(p["name"], bytes(p["metadata"])) for p in body.get("protocols") or []]
    session_timeout = body["session_timeout_ms"]
    rebalance_timeout = body.get("rebalance_timeout_ms", -1) if version >= 1 else -1
    client_host = "/" + str(ctx.connection.peer_host)

    def join(member: str, require_known: bool):
        return service.join_group(group_id, member, instance_id, protocol_type, protocols, session_timeout,
                                  rebalance_timeout, ctx.client_id, client_host, require_known)

    try:
        if not member_id and instance_id is None and version < 4:
            first = await ctx.run(join, "", True)
            if first is None or first.error_code != MEMBER_ID_REQUIRED:
                return _join_body(first or JoinGroupResponse(UNKNOWN_SERVER_ERROR))
            member_id = first.member_id
        response = await _call_or_wait(ctx, "join", member_id, instance_id, join, member_id, version >= 4)
    except Exception as exc:
        response = JoinGroupResponse(error_code(exc), member_id=member_id)
    if response is None:  # cannot happen: an unknown dynamic member is answered at once
        response = JoinGroupResponse(UNKNOWN_SERVER_ERROR, member_id=member_id)
    return _join_body(response)


async def handle_sync_group(ctx, body: dict) -> dict:
    service = ctx.server.groups
    member_id = body.get("member_id") or ""
    instance_id = body.get("group_instance_id")
    assignments = {a["member_id"]: bytes(a["assignment"]) for a in body.get("assignments") or []}
    try:
        response = await _call_or_wait(ctx, "sync", member_id, None, service.sync_group, body["group_id"],
                                       body["generation_id"], member_id, instance_id, body.get("protocol_type"),
                                       body.get("protocol_name"), assignments)
        code = response.error_code if response is not None else UNKNOWN_SERVER_ERROR
    except Exception as exc:
        response, code = None, error_code(exc)
    return {"throttle_time_ms": 0, "error_code": code,
            "protocol_type": getattr(response, "protocol_type", None),
            "protocol_name": getattr(response, "protocol_name", None),
            "assignment": (response.assignment or b"") if response is not None and code == NONE else b""}


# ---- Heartbeat / LeaveGroup ------------------------------------------------------------------------------

async def handle_heartbeat(ctx, body: dict) -> dict:
    try:
        code = await ctx.run(ctx.server.groups.heartbeat, body["group_id"], body["generation_id"],
                             body["member_id"], body.get("group_instance_id"))
    except Exception as exc:
        code = error_code(exc)
    return {"throttle_time_ms": 0, "error_code": code}


async def handle_leave_group(ctx, body: dict) -> dict:
    if ctx.api_version >= 3:
        members = [(m["member_id"], m.get("group_instance_id")) for m in body.get("members") or []]
    else:
        members = [(body["member_id"], None)]
    try:
        response = await ctx.run(ctx.server.groups.leave_group, body["group_id"], members)
        code, results = response.error_code, response.members
    except Exception as exc:
        code, results = error_code(exc), []
    if ctx.api_version < 3 and code == NONE and results:
        code = results[0].error_code  # v0-2 report the one member's outcome at the top
    return {"throttle_time_ms": 0, "error_code": code,
            "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                         "error_code": m.error_code} for m in results]}


# ---- offsets --------------------------------------------------------------------------------------------

async def handle_offset_commit(ctx, body: dict) -> dict:
    offsets = {}
    order = []
    for topic in body.get("topics") or []:
        for part in topic.get("partitions") or []:
            key = (topic["name"], part["partition_index"])
            order.append(key)
            offsets[key] = (part["committed_offset"], part.get("committed_leader_epoch", -1),
                            part.get("committed_metadata"))
    try:
        codes = await ctx.run(ctx.server.groups.commit_offsets, body["group_id"],
                              body.get("generation_id_or_member_epoch", body.get("generation_id", -1)),
                              body.get("member_id", ""), body.get("group_instance_id"), offsets)
    except Exception as exc:
        codes = dict.fromkeys(offsets, error_code(exc))
    topics: dict[str, list] = {}
    for name, index in order:
        topics.setdefault(name, []).append({"partition_index": index, "error_code": codes.get((name, index), NONE)})
    return {"throttle_time_ms": 0,
            "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()]}


def _fetch_group(service, group_id: str, topics) -> tuple[int, list[dict]]:
    wanted = None
    if topics is not None:
        wanted = [(t["name"], p) for t in topics for p in t.get("partition_indexes") or []]
    try:
        found = service.fetch_offsets(group_id, wanted)
    except Exception as exc:
        return error_code(exc), []
    by_topic: dict[str, list] = {}
    for (name, index), (offset, epoch, metadata) in found.items():
        by_topic.setdefault(name, []).append({"partition_index": index, "committed_offset": offset,
                                              "committed_leader_epoch": epoch, "metadata": metadata,
                                              "error_code": NONE})
    if topics is not None:  # the request's order
        order = list(dict.fromkeys(t["name"] for t in topics))
        return NONE, [{"name": n, "partitions": by_topic.get(n, [])} for n in order]
    return NONE, [{"name": n, "partitions": parts} for n, parts in by_topic.items()]


async def handle_offset_fetch(ctx, body: dict) -> dict:
    service = ctx.server.groups
    if "groups" in body and body.get("groups") is not None:  # v8+: several groups at once
        results = []
        for group in body["groups"]:
            code, topics = await ctx.run(_fetch_group, service, group["group_id"], group.get("topics"))
            results.append({"group_id": group["group_id"], "topics": topics, "error_code": code})
        return {"throttle_time_ms": 0, "groups": results}
    code, topics = await ctx.run(_fetch_group, service, body["group_id"], body.get("topics"))
    return {"throttle_time_ms": 0, "topics": topics, "error_code": code}


# ---- listing, describing, deleting --------------------------------------------------------------------------

async def handle_list_groups(ctx, body: dict) -> dict:
    try:
        groups = await ctx.run(ctx.server.groups.list_groups)
        code = NONE
    except Exception as exc:
        groups, code = [], error_code(exc)
    states = body.get("states_filter") or []
    return {"throttle_time_ms": 0, "error_code": code,
            "groups": [{"group_id": g, "protocol_type": ptype, "group_state": state, "group_type": "classic"}
                       for g, ptype, state in groups if not states or state in states]}


def _describe(service, group_ids: list[str], version: int) -> list[dict]:
    out = []
    for group_id in group_ids:
        try:
            d = service.describe_group(group_id)
        except Exception as exc:
            out.append({"error_code": error_code(exc), "group_id": group_id, "group_state": "", "protocol_type": "",
                        "protocol_data": "", "members": [], "authorized_operations": NO_AUTHORIZED_OPERATIONS})
            continue
        code = GROUP_ID_NOT_FOUND if d.state == "Dead" and version >= 6 else NONE
        out.append({"error_code": code, "group_id": group_id, "group_state": d.state,
                    "protocol_type": d.protocol_type, "protocol_data": d.protocol_name,
                    "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                                 "client_id": m.client_id, "client_host": m.client_host,
                                 "member_metadata": m.metadata, "member_assignment": m.assignment}
                                for m in d.members],
                    "authorized_operations": NO_AUTHORIZED_OPERATIONS})
    return out


async def handle_describe_groups(ctx, body: dict) -> dict:
    groups = await ctx.run(_describe, ctx.server.groups, list(body.get("groups") or []), ctx.api_version)
    return {"throttle_time_ms": 0, "groups": groups}


async def handle_delete_groups(ctx, body: dict) -> dict:
    names = list(body.get("groups_names") or [])
    try:
        codes = await ctx.run(ctx.server.groups.delete_groups, names)
    except Exception as exc:
        codes = dict.fromkeys(names, error_code(exc))
    return {"throttle_time_ms": 0, "results": [{"group_id": g, "error_code": codes.get(g, NONE)} for g in names]}
