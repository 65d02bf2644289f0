"""``logbroker produce TOPIC``: one record per line of standard input (kcat -P)."""

from __future__ import annotations

import sys

import click

from ..errors import UnknownTopicOrPartitionError
from .main import CONTEXT_SETTINGS, bootstrap_option, client_args, handle_errors, is_remote, pass_settings


def parse_headers(pairs: tuple[str, ...]) -> list[tuple[str, bytes]]:
    headers = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="-H")
        headers.append((key, value.encode()))
    return headers


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("topic")
@click.option("-k", "--key", help="Key for every record.")
@click.option("-K", "--key-delimiter", metavar="DELIM", help="Split each line into key and value at the first DELIM.")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE", help="Header on every record (repeatable).")
@click.option("-p", "--partition", type=click.IntRange(0), help="Partition (default: by key, else sticky: one partition per batch).")
@click.option("-z", "--compression", type=click.Choice(["none", "gzip", "snappy", "lz4", "zstd"]), default="none",
              show_default=True, help="Batch compression.")
@click.option("--create/--no-create", default=True, show_default=True,
              help="Create a missing topic with one partition (as Kafka's auto.create.topics.enable).")
@bootstrap_option
@pass_settings
@handle_errors
def produce(settings, topic: str, key: str | None, key_delimiter: str | None, headers: tuple[str, ...],
            partition: int | None, compression: str, create: bool) -> None:
    """Append each line of standard input to TOPIC as one record.

    Returns once every record is durable (fsynced, unless the topic relaxes flush.messages);
    over the network (--bootstrap, or a server owning the data directory), once acknowledged.

    \b
    Example:
        printf 'user-1:created\\nuser-2:created\\n' | logbroker produce orders -K :
    """
    from ..client.producer import Producer

    if key is not None and key_delimiter is not None:
        raise click.UsageError("use either -k or -K, not both")
    header_list = parse_headers(headers)
    fixed_key = key.encode() if key is not None else None
    delimiter = key_delimiter.encode() if key_delimiter else None
    with settings.open_target() as broker:
        if topic not in broker.list_topics():
            if not create:
                raise UnknownTopicOrPartitionError(f"topic {topic!r} does not exist")
            broker.create_topic(topic)
            click.echo(f"Created topic {topic} with 1 partition.", err=True)
        count = 0
        # embedded: each batch is appended as soon as it is full; over the network librdkafka
        # batches by time as well (a few ms), and gives up on a record after 30 s
        options = {"linger_ms": 5, "delivery_timeout_ms": 30000} if is_remote(broker) else {"linger_ms": 0}
        with Producer(**client_args(broker), compression=compression, **options) as producer:
            futures = []
            for line in sys.stdin.buffer:
                line = line.rstrip(b"\n").rstrip(b"\r")
                record_key = fixed_key
                if delimiter is not None:
                    record_key, sep, line = line.partition(delimiter)
                    if not sep:
                        record_key, line = None, record_key
                futures.append(producer.send(topic, line, key=record_key, headers=header_list or None,
                                             partition=partition))
                count += 1
            producer.flush()
            for future in futures:
                future.result()
