"""``logbroker consume TOPIC``: print records (kcat -C), from a read-only view of the data directory."""

from __future__ import annotations

import base64
import json
import re
import sys
import time

import click

from ..storage.log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from .main import CONTEXT_SETTINGS, bootstrap_option, client_args, handle_errors, is_remote, pass_settings

_TOKEN = re.compile(r"%[tpoksSKTh%]|\\[ntr\\]")


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", "replace")


def format_record(fmt: str, record) -> str:
    """Expand kcat's format tokens: %t topic, %p partition, %o offset, %k key, %s value, %S value
    size, %K key size, %T timestamp, %h headers (k=v,...), %% and the escapes \\n \\t \\r \\\\."""

    def expand(match: re.Match) -> str:
        token = match.group(0)
        if token == "%t":
            return record.topic
        if token == "%p":
            return str(record.partition)
        if token == "%o":
            return str(record.offset)
        if token == "%k":
            return _text(record.key)
        if token == "%s":
            return _text(record.value)
        if token == "%S":
            return str(-1 if record.value is None else len(record.value))
        if token == "%K":
            return str(-1 if record.key is None else len(record.key))
        if token == "%T":
            return str(record.timestamp)
        if token == "%h":
            return ",".join(f"{k}={_text(v)}" for k, v in record.headers)
        return {"%%": "%", "\\n": "\n", "\\t": "\t", "\\r": "\r", "\\\\": "\\"}[token]

    return _TOKEN.sub(expand, fmt)


def _json_bytes(out: dict, name: str, data: bytes | None) -> None:
    if data is None:
        out[name] = None
        return
    try:
        out[name] = data.decode("utf-8")
    except UnicodeDecodeError:
        out[name] = base64.b64encode(data).decode()
        out[f"{name}_encoding"] = "base64"


def record_json(record) -> str:
    """One line of ``--json`` output; keys are stable.  Non-UTF-8 key/value bytes are base64 with a
    ``key_encoding``/``value_encoding`` of "base64"."""
    out = {"topic": record.topic, "partition": record.partition, "offset": record.offset,
           "timestamp": record.timestamp,
           "timestamp_type": "LogAppendTime" if record.timestamp_type else "CreateTime"}
    _json_bytes(out, "key", record.key)
    _json_bytes(out, "value", record.value)
    out["headers"] = [[k, None if v is None else v.decode("utf-8", "replace")] for k, v in record.headers]
    return json.dumps(out, ensure_ascii=False)


def parse_start(text: str):
    """beginning | end | N | -N (N before the end) | s@TIMESTAMP_MS."""
    if text in ("beginning", "end"):
        return text
    if text.startswith("s@") and text[2:].isdigit():
        return ("timestamp", int(text[2:]))
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter("use beginning, end, an offset, -N (N before the end) or s@TIMESTAMP_MS",
                                 param_hint="-o") from None


def _start_offset(broker, topic: str, partition: int, start) -> int:
    earliest = broker.list_offsets(topic, partition, EARLIEST_TIMESTAMP)[0]
    latest = broker.list_offsets(topic, partition, LATEST_TIMESTAMP)[0]
    if start == "beginning":
        return earliest
    if start == "end":
        return latest
    if isinstance(start, tuple):
        found = broker.list_offsets(topic, partition, start[1])
        return latest if found is None else found[0]
    if start < 0:
        return max(earliest, latest + start)
    return min(max(start, earliest), latest)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("topics", metavar="TOPIC...", nargs=-1, required=True)
@click.option("-g", "--group", help="Join this consumer group: read the partitions it assigns, from its committed "
                                    "offsets, and commit what was printed.")
@click.option("-o", "--offset", "start", default="beginning", show_default=True,
              help="Where to start: beginning, end, OFFSET, -N (N before the end) or s@TIMESTAMP_MS. With -g only "
                   "where the group has no committed offset.")
@click.option("-p", "--partition", type=click.IntRange(0), help="Only this partition (default: all; not with -g).")
@click.option("-n", "--count", type=click.IntRange(1), help="Exit after COUNT records.")
@click.option("-e", "--exit-at-end", is_flag=True, help="Exit when the end of every partition is reached.")
@click.option("-f", "--format", "fmt", help="Output format with kcat's tokens %t %p %o %k %s %S %K %T %h.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record per line.")
@bootstrap_option
@pass_settings
@handle_errors
def consume(settings, topics: tuple[str, ...], group: str | None, start: str, partition: int | None,
            count: int | None, exit_at_end: bool, fmt: str | None, as_json: bool) -> None:
    """Print the records of TOPIC..., one per line (the value, unless -f or --json says otherwise).

    Without -g it reads the data directory without locking it, so it works next to a running
    producer.  With -g GROUP it joins the group (as kcat -G does), starts at the group's committed
    offsets and commits after printing: records are printed at least once across runs.  With
    --bootstrap it reads from that broker; with -g and a server owning the data directory, from
    that server.

    \b
    Example:
        logbroker consume orders -o beginning -e -f '%p:%o %k=%s\\n'
        logbroker consume orders -g billing -e
    """
    from ..client.consumer import Consumer

    if fmt and as_json:
        raise click.UsageError("use either -f or --json, not both")
    if group is not None and partition is not None:
        raise click.UsageError("-p cannot be combined with -g: the group assigns the partitions")
    start_at = parse_start(start)
    broker = settings.open_target(read_only=group is None)
    target = client_args(broker)
    consumer = None
    try:
        if group is None:
            consumer = Consumer(**target)
            parts = [(t, p) for t in topics
                     for p in ([partition] if partition is not None else range(broker.partition_count(t)))]
            consumer.assign(parts)
            for t, p in parts:
                consumer.seek(t, p, _start_offset(broker, t, p, start_at))
        else:
            def start_where_uncommitted(consumer, assigned):
                committed = consumer.committed(assigned)
                for tp in assigned:
                    if committed[tp] is None:
                        consumer.seek(tp.topic, tp.partition, _start_offset(broker, tp.topic, tp.partition, start_at))

            consumer = Consumer(**target, group=group, topics=topics, enable_auto_commit=False,
                                on_assign=start_where_uncommitted)
        _print_records(consumer, count, exit_at_end, fmt, as_json, commit=group is not None,
                       wait=is_remote(broker))
    except KeyboardInterrupt:
        pass
    finally:
        try:
            if consumer is not None:
                consumer.close()
        finally:
            broker.close()


def _print_records(consumer, count, exit_at_end: bool, fmt, as_json: bool, *, commit: bool,
                   wait: bool = False) -> None:
    """``wait``: records arrive from the network, so even with -e a poll waits a little for them
    (checking the end costs a request per partition)."""
    printed = 0
    out = sys.stdout
    while count is None or printed < count:
        records = consumer.poll(timeout=(0.1 if commit or wait else 0.0) if exit_at_end else 0.5,
                                max_records=None if count is None else count - printed)
        for record in records:
            if as_json:
                out.write(record_json(record) + "\n")
            elif fmt:
                out.write(format_record(fmt, record))
            else:
                out.write(_text(record.value) + "\n")
        printed += len(records)
        out.flush()
        if records and commit:
            consumer.commit()  # after the output is flushed: at-least-once
        if not records and exit_at_end and consumer.assignment() and consumer.at_end():
            break
        if not records and not exit_at_end:
            time.sleep(0.05)
