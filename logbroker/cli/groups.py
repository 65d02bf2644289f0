"""``logbroker group list|describe|reset-offsets|delete``: consumer groups, as kafka-consumer-groups.sh."""

from __future__ import annotations

import datetime
import json

import click

from ..errors import LogbrokerError, UnknownTopicOrPartitionError
from ..storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from .main import CONTEXT_SETTINGS, bootstrap_option, handle_errors, is_remote, pass_settings

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
ACTIVE_STATES = ("PreparingRebalance", "CompletingRebalance", "Stable")


@click.group(context_settings=CONTEXT_SETTINGS)
def group() -> None:
    """List, describe, reset and delete consumer groups.

    \b
    Example:
        logbroker group describe billing
    """


@group.command("list", context_settings=CONTEXT_SETTINGS)
@json_option
@bootstrap_option
@pass_settings
@handle_errors
def list_(settings, as_json: bool) -> None:
    """List consumer groups with their state.

    \b
    Example:
        logbroker group list --json
    """
    with settings.open_target(read_only=True) as broker:
        groups = sorted(broker.list_groups() if is_remote(broker) else broker.groups.list_groups())
    if as_json:
        click.echo(json.dumps([{"group": g, "protocol_type": t, "state": s} for g, t, s in groups]))
        return
    for group_id, _protocol_type, state in groups:
        click.echo(f"{group_id}\t{state}")


def describe_group(broker, group_id: str) -> dict:
    """Everything ``group describe`` shows, as one JSON-ready dict."""
    description = broker.groups.describe_group(group_id)
    owners = {}
    members = []
    assignments = broker.groups.assignments(group_id) if description.protocol_type == "consumer" else {}
    for member in description.members:
        partitions = assignments.get(member.member_id, [])
        for tp in partitions:
            owners[tuple(tp)] = member.member_id
        members.append({"member_id": member.member_id, "group_instance_id": member.group_instance_id,
                        "client_id": member.client_id, "client_host": member.client_host,
                        "assignment": [[t, p] for t, p in partitions]})
    offsets = []
    for row in broker.groups.lag(group_id):
        row["member_id"] = owners.get((row["topic"], row["partition"]))
        offsets.append(row)
    committed = {(r["topic"], r["partition"]) for r in offsets}
    for (topic, partition), member_id in sorted(owners.items()):  # assigned, nothing committed yet
        if (topic, partition) not in committed:
            end = broker.list_offsets(topic, partition, LATEST_TIMESTAMP)[0]
            offsets.append({"topic": topic, "partition": partition, "committed": None, "metadata": None,
                            "log_end_offset": end, "lag": None, "lag_ms": None, "member_id": member_id})
    offsets.sort(key=lambda r: (r["topic"], r["partition"]))
    return {"group": group_id, "state": description.state, "protocol_type": description.protocol_type,
            "protocol": description.protocol_name, "generation": description.generation_id,
            "leader": description.leader, "members": members, "offsets": offsets}


@group.command(context_settings=CONTEXT_SETTINGS)
@click.argument("group_id", metavar="GROUP")
@json_option
@bootstrap_option
@pass_settings
@handle_errors
def describe(settings, group_id: str, as_json: bool) -> None:
    """Show GROUP's state, members and their partitions, committed offsets, log end offsets and lag
    (in records, and in time: the age of the oldest record not yet consumed).

    \b
    Example:
        logbroker group describe billing --json
    """
    with settings.open_target(read_only=True) as broker:
        info = broker.describe_group(group_id) if is_remote(broker) else describe_group(broker, group_id)
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    if info["state"] == "Dead" and not info["offsets"]:
        raise click.ClickException(f"group {group_id!r} does not exist")
    generation = "-" if info["generation"] is None else info["generation"]  # None: not carried by the protocol
    click.echo(f"Group: {group_id}\tState: {info['state']}\tProtocol: {info['protocol'] or '-'}\t"
               f"Generation: {generation}\tMembers: {len(info['members'])}")
    for m in info["members"]:
        parts = ",".join(f"{t}-{p}" for t, p in m["assignment"]) or "-"
        click.echo(f"\tMember: {m['member_id']}\tClient: {m['client_id']}\tHost: {m['client_host']}\tPartitions: {parts}")
    click.echo("TOPIC\tPARTITION\tCOMMITTED\tLOG-END-OFFSET\tLAG\tLAG-MS\tMEMBER")
    for r in info["offsets"]:
        cells = [r["topic"], r["partition"], r["committed"], r["log_end_offset"], r["lag"], r["lag_ms"],
                 r["member_id"]]
        click.echo("\t".join("-" if c is None else str(c) for c in cells))


def parse_topic_partition(text: str) -> tuple[str, int | None]:
    topic, sep, partition = text.rpartition(":")
    if not sep:
        return text, None
    if not partition.isdigit():
        raise click.BadParameter(f"expected TOPIC or TOPIC:PARTITION, got {text!r}", param_hint="--topic")
    return topic, int(partition)


def parse_datetime(text: str) -> int:
    """ISO 8601 (a naive time is UTC) -> milliseconds since the epoch."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 date-time: {text!r}", param_hint="--to-datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000)


def plan_reset(broker, group_id: str, targets: list[tuple[str, int | None]], how: str, value) -> list[dict]:
    """The new offset of every partition named: clamped into [log start, log end].  ``broker`` is
    a Broker or a RemoteAdmin."""
    remote = is_remote(broker)
    committed = broker.fetch_offsets(group_id) if remote else broker.groups.fetch_offsets(group_id)
    plan = []
    for topic, partition in targets:
        count = broker.partition_count(topic)
        partitions = range(count) if partition is None else [partition]
        for p in partitions:
            if not remote:
                broker.log(topic, p)  # raises for an unknown partition
            elif not 0 <= p < count:
                raise UnknownTopicOrPartitionError(f"topic {topic!r} has no partition {p}")
            start = broker.list_offsets(topic, p, EARLIEST_TIMESTAMP)[0]
            end = broker.list_offsets(topic, p, LATEST_TIMESTAMP)[0]
            current = committed.get((topic, p), (-1,))[0]
            if how == "earliest":
                new = start
            elif how == "latest":
                new = end
            elif how == "offset":
                new = value
            elif how == "datetime":
                found = broker.list_offsets(topic, p, value)
                new = end if found is None else found[0]
            else:  # shift
                new = (current if current >= 0 else start) + value
            plan.append({"topic": topic, "partition": p, "current": None if current < 0 else current,
                         "new": min(max(new, start), end)})
    return plan


@group.command("reset-offsets", context_settings=CONTEXT_SETTINGS)
@click.argument("group_id", metavar="GROUP")
@click.option("--topic", "topics", multiple=True, required=True, metavar="TOPIC[:PARTITION]",
              help="Partitions to reset: a whole topic or one partition (repeatable).")
@click.option("--to-earliest", "how", flag_value="earliest", help="To the log start offset.")
@click.option("--to-latest", "how", flag_value="latest", help="To the log end offset (skip everything).")
@click.option("--to-offset", type=int, help="To this offset (clamped into the log).")
@click.option("--to-datetime", help="To the first record at or after this ISO 8601 time (UTC unless given).")
@click.option("--shift-by", type=int, help="Move the committed offset by N (negative: back).")
@click.option("--execute", is_flag=True, help="Apply the plan (without it, only show it).")
@json_option
@bootstrap_option
@pass_settings
@handle_errors
def reset_offsets(settings, group_id: str, topics: tuple[str, ...], how: str | None, to_offset: int | None,
                  to_datetime: str | None, shift_by: int | None, execute: bool, as_json: bool) -> None:
    """Plan (and with --execute, commit) new offsets for GROUP; refused while it has active members.

    \b
    Example:
        logbroker group reset-offsets billing --topic orders --to-earliest --execute
    """
    chosen = [(name, v) for name, v in (("how", how), ("offset", to_offset), ("datetime", to_datetime),
                                        ("shift", shift_by)) if v is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by")
    kind, value = chosen[0]
    if kind == "how":
        kind, value = how, None
    elif kind == "datetime":
        value = parse_datetime(value)
    targets = [parse_topic_partition(t) for t in topics]
    with settings.open_target(read_only=not execute) as broker:
        remote = is_remote(broker)
        state = broker.group_state(group_id) if remote else broker.groups.describe_group(group_id).state
        if state in ACTIVE_STATES:
            raise click.ClickException(f"group {group_id!r} has active members (state {state}); stop its "
                                       f"consumers before resetting offsets")
        plan = plan_reset(broker, group_id, targets, kind, value)
        if execute and remote:
            codes = broker.commit_offsets(group_id, {(r["topic"], r["partition"]): r["new"] for r in plan})
        elif execute:
            codes = broker.groups.commit_offsets(group_id, -1, "", None,
                                                 {(r["topic"], r["partition"]): (r["new"], -1, "") for r in plan})
        if execute:
            failed = {f"{t}-{p}": c for (t, p), c in codes.items() if c}
            if failed:
                raise LogbrokerError(f"the group refused the reset (Kafka error codes {failed})")
    if as_json:
        click.echo(json.dumps({"group": group_id, "executed": execute, "plan": plan}, sort_keys=True))
        return
    click.echo("TOPIC\tPARTITION\tCURRENT-OFFSET\tNEW-OFFSET")
    for r in plan:
        click.echo(f"{r['topic']}\t{r['partition']}\t{'-' if r['current'] is None else r['current']}\t{r['new']}")
    if not execute:
        click.echo("(dry run: add --execute to apply)")


@group.command(context_settings=CONTEXT_SETTINGS)
@click.argument("group_ids", metavar="GROUP...", nargs=-1, required=True)
@bootstrap_option
@pass_settings
@handle_errors
def delete(settings, group_ids: tuple[str, ...]) -> None:
    """Delete groups and their committed offsets; refused for a group with active members.

    \b
    Example:
        logbroker group delete billing
    """
    names = {25: "unknown member", 68: "the group has active members", 69: "no such group"}
    with settings.open_target() as broker:
        groups = broker if is_remote(broker) else broker.groups
        codes = groups.delete_groups(list(group_ids))
    failed = False
    for group_id in group_ids:
        code = codes.get(group_id, 0)
        if code:
            failed = True
            click.echo(f"Error: cannot delete group {group_id}: {names.get(code, f'Kafka error code {code}')}", err=True)
        else:
            click.echo(f"Deleted group {group_id}.")
    if failed:
        raise SystemExit(1)
