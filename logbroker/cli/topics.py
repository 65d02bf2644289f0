"""``logbroker topic create|list|describe|alter|delete``."""

from __future__ import annotations

import json

import click

from .main import CONTEXT_SETTINGS, bootstrap_option, handle_errors, pass_settings


def parse_configs(pairs: tuple[str, ...]) -> dict[str, str]:
    configs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="-c/--config")
        configs[key.strip()] = value.strip()
    return configs


config_option = click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
                             help="Topic config under Kafka's name, e.g. retention.ms=86400000 (repeatable).")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")


@click.group(context_settings=CONTEXT_SETTINGS)
def topic() -> None:
    """Create, list, describe, alter and delete topics.

    \b
    Example:
        logbroker topic create orders -p 3 -c retention.ms=86400000
    """


@topic.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("-p", "--partitions", default=1, show_default=True, type=click.IntRange(1), help="Partition count.")
@config_option
@click.option("--if-not-exists", is_flag=True, help="Succeed quietly when the topic already exists.")
@bootstrap_option
@pass_settings
@handle_errors
def create(settings, name: str, partitions: int, configs: tuple[str, ...], if_not_exists: bool) -> None:
    """Create topic NAME.

    \b
    Example:
        logbroker topic create orders -p 3 -c cleanup.policy=compact
    """
    config = parse_configs(configs)
    with settings.open_target() as broker:
        if if_not_exists and name in broker.list_topics():
            return
        meta = broker.create_topic(name, partitions=partitions, config=config)
    click.echo(f"Created topic {meta.name} with {meta.partitions} partition(s).")


@topic.command("list", context_settings=CONTEXT_SETTINGS)
@json_option
@bootstrap_option
@pass_settings
@handle_errors
def list_(settings, as_json: bool) -> None:
    """List topics.

    \b
    Example:
        logbroker topic list --json
    """
    with settings.open_target(read_only=True) as broker:
        topics = [broker.topic(name) for name in broker.list_topics()]
    if as_json:
        click.echo(json.dumps([{"name": t.name, "partitions": t.partitions, "topic_id": t.topic_id} for t in topics]))
    else:
        for t in topics:
            click.echo(t.name)


@topic.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@json_option
@bootstrap_option
@pass_settings
@handle_errors
def describe(settings, name: str, as_json: bool) -> None:
    """Show a topic's id, config overrides and per-partition offsets and sizes.

    \b
    Example:
        logbroker topic describe orders
    """
    with settings.open_target(read_only=True) as broker:
        info = broker.describe_topic(name)
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    # over the network the topic id, the segments and the size may be unknown: shown as "-"
    click.echo(f"Topic: {info['name']}\tTopicId: {_cell(info['topic_id'])}\tPartitions: {len(info['partitions'])}")
    if info["overrides"] is None:
        click.echo("Configs: (unknown: the broker does not serve DescribeConfigs)")
    else:
        overrides = ",".join(f"{k}={v}" for k, v in sorted(info["overrides"].items()))
        click.echo(f"Configs: {overrides or '(defaults)'}")
    for p in info["partitions"]:
        click.echo(f"\tPartition: {p['partition']}\tLogStartOffset: {p['log_start_offset']}\t"
                   f"LogEndOffset: {p['log_end_offset']}\tHighWatermark: {p['high_watermark']}\t"
                   f"Segments: {_cell(p['segments'])}\tSize: {_cell(p['size_bytes'])}")


def _cell(value) -> str:
    return "-" if value is None else str(value)


@topic.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@config_option
@click.option("-d", "--delete-config", "deletes", multiple=True, metavar="KEY",
              help="Remove an override, back to the default (repeatable).")
@bootstrap_option
@pass_settings
@handle_errors
def alter(settings, name: str, configs: tuple[str, ...], deletes: tuple[str, ...]) -> None:
    """Set or remove config overrides of topic NAME.

    \b
    Example:
        logbroker topic alter orders -c retention.ms=3600000 -d retention.bytes
    """
    if not configs and not deletes:
        raise click.UsageError("nothing to change: give -c KEY=VALUE and/or -d KEY")
    config = parse_configs(configs)
    with settings.open_target() as broker:
        overrides = broker.alter_topic_config(name, set=config, delete=list(deletes))
    shown = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    click.echo(f"Updated topic {name}: {shown or '(defaults)'}")


@topic.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@bootstrap_option
@pass_settings
@handle_errors
def delete(settings, name: str) -> None:
    """Delete topic NAME and all its data.

    \b
    Example:
        logbroker topic delete orders
    """
    with settings.open_target() as broker:
        broker.delete_topic(name)
    click.echo(f"Deleted topic {name}.")
