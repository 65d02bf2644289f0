"""``logbroker queue receive|describe|list|redrive``: share groups (KIP-932 queues) from the shell.

``receive`` and ``redrive`` write, so they go where the other writing commands go
(``Settings.open_target``): with ``--bootstrap`` to that broker, else to the data directory, or to the
``logbroker serve`` that owns it (over the network: ``Queue(bootstrap=...)``, a RemoteQueue, and the
network Consumer / Producer for redrive).  ``describe`` and ``list`` read the files (next to a running
server too); with ``--bootstrap`` they stop with a clear error: describing share groups over the
network needs ShareGroupDescribe / DescribeShareGroupOffsets, which confluent-kafka 2.16 lacks.
"""

from __future__ import annotations

import json
import sys
import time

import click

from ..errors import LogbrokerError
from .consume import _text, format_record, record_json
from .main import (CONTEXT_SETTINGS, REMOTE_TIMEOUT_MS, bootstrap_option, client_args, handle_errors, is_remote,
                   pass_settings)

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
REMOTE_START_S = 2.0  # over the network the idle timeout starts this long after the start (join, first fetch)
NO_NETWORK_DESCRIBE = ("describing share groups over the network needs ShareGroupDescribe and "
                       "DescribeShareGroupOffsets, which confluent-kafka 2.16 (librdkafka) does not have")


@click.group(context_settings=CONTEXT_SETTINGS)
def queue() -> None:
    """Receive from, describe, list and redrive share groups (queues).

    \b
    Example:
        logbroker queue receive orders -g workers -n 10
    """


def open_files(settings, command: str):
    """The data directory, read-only (works next to a running server); --bootstrap: a clear error."""
    if settings.bootstrap:
        raise click.ClickException(f"queue {command} --bootstrap {settings.bootstrap}: {NO_NETWORK_DESCRIBE}; "
                                   f"run it on the data directory instead (next to a running logbroker serve "
                                   f"it reads the files)")
    return settings.open_broker(read_only=True)


@queue.command(context_settings=CONTEXT_SETTINGS)
@click.argument("topics", metavar="TOPIC...", nargs=-1, required=True)
@click.option("-g", "--group", required=True, help="The share group to receive as.")
@click.option("-n", "--count", type=click.IntRange(1), help="Exit after COUNT records.")
@click.option("--release", "action", flag_value="release",
              help="Release the records when done (delivered again, delivery count + 1), as a peek.  Over "
                   "the network: one batch, then stop (each record must be settled before the next fetch).")
@click.option("--reject", "action", flag_value="reject", help="Reject each record (dead-lettered, never again).")
@click.option("--timeout", type=click.FloatRange(0), help="Exit after this many seconds without records "
                                                          "(default 1 without -n; with -n, wait for COUNT; over "
                                                          "the network counted from 2 s after the start).")
@click.option("--visibility-timeout", type=click.FloatRange(0, min_open=True), metavar="S",
              help="Lock each record for S seconds (default: the group's setting, 30 for a new group).  Over "
                   "the network this sets the group's share.record.lock.duration.ms, for every member.")
@click.option("--max-deliveries", type=click.IntRange(1, 100), metavar="N",
              help="Set the group's delivery limit (default: unchanged, 5 for a new group).")
@click.option("--dead-letter-topic", metavar="TOPIC",
              help="Set the group's dead-letter topic ('' for none; default: unchanged).")
@click.option("--auto-offset-reset", type=click.Choice(["earliest", "latest"]),
              help="Where a new group starts (default: unchanged, earliest for a new group).")
@click.option("-f", "--format", "fmt", help="Output format with kcat's tokens %t %p %o %k %s %S %K %T %h.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per record per line (consume's keys plus delivery_count).")
@bootstrap_option
@pass_settings
@handle_errors
def receive(settings, topics: tuple[str, ...], group: str, count: int | None, action: str | None,
            timeout: float | None, visibility_timeout: float | None, max_deliveries: int | None,
            dead_letter_topic: str | None, auto_offset_reset: str | None, fmt: str | None, as_json: bool) -> None:
    """Receive records of TOPIC... as a member of share group GROUP, print each (the value, unless
    -f or --json says otherwise) and acknowledge it once printed (or --release / --reject it).

    Other members of the group (this command run again, applications) never get a record this one
    holds.  Options that are group settings change the group for every member.  With --bootstrap, or
    when a running logbroker serve owns the data directory, it receives from that broker over the
    network (Kafka's share protocol; group settings through IncrementalAlterConfigs).

    \b
    Example:
        logbroker queue receive orders -g workers -n 10
        logbroker queue receive orders -g workers --release --json
    """
    from ..client.queue import Queue

    if fmt and as_json:
        raise click.UsageError("use either -f or --json, not both")
    if timeout is None and count is None:
        timeout = 1.0
    given = {"visibility_timeout": visibility_timeout, "max_deliveries": max_deliveries,
             "dead_letter_topic": dead_letter_topic, "auto_offset_reset": auto_offset_reset}
    target = settings.open_target()
    remote = is_remote(target)
    try:
        kwargs = {name: value for name, value in given.items() if value is not None}  # the rest stay as they are
        if remote:
            q = Queue(**client_args(target), group=group, topics=list(topics), max_records=min(count or 500, 500),
                      request_timeout_ms=REMOTE_TIMEOUT_MS, **kwargs)
        else:
            q = Queue(target, group=group, topics=list(topics), **kwargs)
        with q:
            _receive_loop(q, count, timeout, action, fmt, as_json, remote=remote)
    except KeyboardInterrupt:
        pass
    finally:
        target.close()


def _receive_loop(q, count: int | None, timeout: float | None, action: str | None, fmt: str | None,
                  as_json: bool, *, remote: bool = False) -> None:
    """Print and settle batches until COUNT records or ``timeout`` seconds without any.  Released
    records stay held until the end, so that this run does not receive them again -- except over the
    network, where Kafka's share protocol wants every record settled before the next fetch: there
    --release prints one batch, releases it and stops."""
    held = []
    try:
        done = 0
        idle_since = time.monotonic() + (REMOTE_START_S if remote else 0.0)
        out = sys.stdout
        while count is None or done < count:
            wait = 0.5 if timeout is None else timeout - (time.monotonic() - idle_since)
            if wait < 0:
                break
            messages = q.receive(max_records=None if count is None else count - done, timeout=min(wait, 0.5))
            if not messages:
                continue
            for message in messages:
                out.write(_format(message, fmt, as_json))
            out.flush()
            done += len(messages)
            idle_since = time.monotonic()
            if action == "release":
                held += messages
                if remote:
                    break
            else:  # after the output is flushed: at-least-once
                (q.reject if action == "reject" else q.ack)(*messages)
    finally:
        if held:
            q.release(*held)


def _format(message, fmt: str | None, as_json: bool) -> str:
    if as_json:
        out = json.loads(record_json(message))
        out["delivery_count"] = message.delivery_count
        return json.dumps(out, ensure_ascii=False) + "\n"
    if fmt:
        return format_record(fmt, message)
    return _text(message.value) + "\n"


@queue.command("list", context_settings=CONTEXT_SETTINGS)
@json_option
@bootstrap_option
@pass_settings
@handle_errors
def list_(settings, as_json: bool) -> None:
    """List share groups, from the data directory's files (next to a running server too; not over
    --bootstrap: confluent-kafka 2.16 cannot describe share groups).

    \b
    Example:
        logbroker queue list --json
    """
    with open_files(settings, "list") as broker:
        groups = broker.shares.list_groups()
    if as_json:
        click.echo(json.dumps(groups))
        return
    for group in groups:
        click.echo(group)


COLUMNS = [("TOPIC", "topic"), ("PARTITION", "partition"), ("START-OFFSET", "start_offset"),
           ("LOG-END-OFFSET", "log_end_offset"), ("IN-FLIGHT", "acquired"), ("AVAILABLE", "available"),
           ("ACKNOWLEDGED", "acknowledged"), ("ARCHIVED", "archived"), ("LAG", "lag"),
           ("OLDEST-AGE-MS", "oldest_available_age_ms"), ("DELIVERIES", "delivery_counts")]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):  # delivery count -> records in flight
        return ",".join(f"{count}x{n}" for count, n in sorted(value.items())) or "-"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header] + rows]


@queue.command(context_settings=CONTEXT_SETTINGS)
@click.argument("group_id", metavar="GROUP")
@json_option
@bootstrap_option
@pass_settings
@handle_errors
def describe(settings, group_id: str, as_json: bool) -> None:
    """Show share group GROUP: its settings, members, and per partition the start offset, the log end
    offset, records in flight (acquired), available, acknowledged and archived, the lag (records not
    yet acknowledged or archived), the age of the oldest available record and how often the records
    in flight were delivered (DELIVERIES: COUNTxRECORDS).

    Members live in the process that runs them: read from the files, a group has none.  Reads the
    data directory's files, next to a running server too; --bootstrap is refused (describing share
    groups over the network needs APIs confluent-kafka 2.16 lacks).

    \b
    Example:
        logbroker queue describe workers --json
    """
    with open_files(settings, "describe") as broker:
        info = broker.shares.describe(group_id)
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    config = info["config"]
    click.echo(f"Group: {group_id}\tMembers: {len(info['members'])}")
    click.echo(f"Visibility timeout: {config['lock_duration_ms'] / 1000:g} s\tMax deliveries: "
               f"{config['delivery_count_limit']}\tDead-letter topic: {config['dead_letter_topic'] or '-'}\t"
               f"Auto offset reset: {config['auto_offset_reset']}")
    for m in info["members"]:
        click.echo(f"\tMember: {m['member_id']}\tTopics: {','.join(m['topics']) or '-'}")
    rows = [[_cell(p[key]) for _, key in COLUMNS] for p in info["partitions"]]
    for line in table([name for name, _ in COLUMNS], rows):
        click.echo(line)


@queue.command(context_settings=CONTEXT_SETTINGS)
@click.argument("dlq_topic", metavar="DLQ_TOPIC")
@click.option("--to", "to_topic", required=True, metavar="TOPIC", help="The topic to move the records to.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), default=100.0, show_default=True,
              help="At most this many records per second.")
@click.option("--max", "max_records", type=click.IntRange(0), help="Move at most this many records.")
@click.option("--group", metavar="GROUP", help="The consumer group that remembers what was moved "
                                               "[default: logbroker-redrive.DLQ_TOPIC].")
@bootstrap_option
@pass_settings
@handle_errors
def redrive(settings, dlq_topic: str, to_topic: str, rate: float, max_records: int | None,
            group: str | None) -> None:
    """Move the records of dead-letter topic DLQ_TOPIC to TOPIC, to be processed again.

    Key, value and headers are kept (minus the logbroker.dlq.* ones); the timestamp is now.  A
    consumer group remembers how far it got, so a second run continues where the first stopped.  It
    stops at the end of DLQ_TOPIC as it was when it started.  With --bootstrap, or when a running
    logbroker serve owns the data directory, it works through that broker.

    \b
    Example:
        logbroker queue redrive orders.dlq --to orders --rate 50
    """
    from ..client.redrive import redrive as move

    with settings.open_target() as target:
        moved = move(**client_args(target), dlq_topic=dlq_topic, to_topic=to_topic, rate=rate,
                     max_records=max_records, group=group)
    click.echo(f"Moved {moved} record{'' if moved == 1 else 's'} from {dlq_topic} to {to_topic}.")


@queue.command(context_settings=CONTEXT_SETTINGS)
@click.argument("group_ids", metavar="GROUP...", nargs=-1, required=True)
@bootstrap_option
@pass_settings
@handle_errors
def delete(settings, group_ids: tuple[str, ...]) -> None:
    """Delete share groups: their settings and the delivery state of their partitions.  Refused for a
    group with members or records in flight.  Works on the data directory (stop a running server first).

    \b
    Example:
        logbroker queue delete workers
    """
    if settings.bootstrap:
        raise click.ClickException(f"queue delete --bootstrap {settings.bootstrap}: deleting share groups over the "
                                   f"network is not supported; run it on the data directory with the server stopped")
    failed = False
    with settings.open_broker() as broker:
        for group_id in group_ids:
            try:
                broker.shares.delete_group(group_id)
            except LogbrokerError as exc:
                failed = True
                click.echo(f"Error: cannot delete share group {group_id}: {exc}", err=True)
            else:
                click.echo(f"Deleted share group {group_id}.")
    if failed:
        raise SystemExit(1)
