"""``logbroker inspect dump|verify|repair|producers|offsets``: offline tools over files, no broker needed."""

from __future__ import annotations

import json
import sys

import click

from .main import CONTEXT_SETTINGS, handle_errors


@click.group(context_settings=CONTEXT_SETTINGS)
def inspect() -> None:
    """Read, verify and repair data directories and segment files without a running broker.

    \b
    Example:
        logbroker inspect verify ./data
    """


@inspect.command(context_settings=CONTEXT_SETTINGS)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--records", is_flag=True, help="Also print every record of each batch.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per batch or index entry per line.")
def dump(paths: tuple[str, ...], records: bool, as_json: bool) -> None:
    """Print the batches of .log files, the entries of .index / .timeindex files and the producer
    entries of .snapshot files.

    \b
    Example:
        logbroker inspect dump data/orders-0/00000000000000000000.log --records
    """
    from ..inspect import dump_file, format_entry

    failed = False
    for path in paths:
        try:
            items = dump_file(path, records=records)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="PATHS") from None
        if not as_json:
            click.echo(f"Dumping {path}")
        for item in items:
            failed = failed or "error" in item
            if as_json:
                click.echo(json.dumps({"file": path, **item}, ensure_ascii=False))
            else:
                click.echo(format_entry(path, item))
    if failed:
        sys.exit(1)


@inspect.command(context_settings=CONTEXT_SETTINGS)
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Problems as JSON objects, one per line.")
def verify(data_dir: str, as_json: bool) -> None:
    """Check CRCs, offsets and indexes of every partition; exit 1 and list each problem if any.

    \b
    Example:
        logbroker inspect verify ./data
    """
    from ..inspect import partition_dirs, verify_data_dir

    problems = verify_data_dir(data_dir)
    for problem in problems:
        if as_json:
            click.echo(json.dumps({"file": problem.file, "position": problem.position, "message": problem.message}))
        else:
            click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s) found.", err=True)
        sys.exit(1)
    if not as_json:
        click.echo(f"OK: {len(partition_dirs(data_dir))} partition(s) verified, no problems.")


@inspect.command(context_settings=CONTEXT_SETTINGS)
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@handle_errors
def repair(data_dir: str) -> None:
    """Recover every partition from its first byte: truncate damaged tails, rebuild indexes.

    Takes the directory's lock, so no broker may be running on it.

    \b
    Example:
        logbroker inspect repair ./data
    """
    from ..inspect import repair_data_dir

    reports = repair_data_dir(data_dir)
    dropped = [r for r in reports if r.dropped_anything]
    for report in reports:
        click.echo(report.describe())
    click.echo(f"Repaired {len(reports)} partition(s); {len(dropped)} had data dropped.")


@inspect.command(context_settings=CONTEXT_SETTINGS)
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per producer and partition per line.")
def producers(data_dir: str, as_json: bool) -> None:
    """List the idempotent producers each partition knows: epoch, last sequence, last offset.

    Rebuilt as an opening broker would (newest snapshot, then the log after it), without the lock
    and without changing any file.  Exits 1 if a partition could not be read.

    \b
    Example:
        logbroker inspect producers ./data --json
    """
    from ..inspect import producer_states

    states = producer_states(data_dir)
    rows = [(state, entry) for state in states for entry in state.producers]
    if as_json:
        for state, entry in rows:
            click.echo(json.dumps({"topic": state.topic, "partition": state.partition, **entry.to_dict()}))
    elif rows:
        header = ("TOPIC", "PARTITION", "PRODUCER_ID", "EPOCH", "LAST_SEQUENCE", "LAST_OFFSET", "LAST_TIMESTAMP")
        table = [header] + [(state.topic, state.partition, entry.producer_id, entry.epoch, entry.last_seq,
                             entry.last_offset, entry.last_timestamp) for state, entry in rows]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
        for row in table:
            click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    else:
        click.echo(f"No idempotent producers in {len(states)} partition(s).")
    errors = [state for state in states if state.error]
    for state in errors:
        click.echo(f"{state.topic}-{state.partition}: {state.error}", err=True)
    if errors:
        sys.exit(1)


@inspect.command(context_settings=CONTEXT_SETTINGS)
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-g", "--group", "only_group", help="Only this group.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per committed partition per line.")
def offsets(data_dir: str, only_group: str | None, as_json: bool) -> None:
    """Decode the offsets log (__consumer_offsets): the latest commit per group, topic and partition,
    and each group's last stored generation and members.

    Reads the files without the lock and without changing them.  Exits 1 if a partition of the
    offsets log could not be read.

    \b
    Example:
        logbroker inspect offsets ./data -g billing
    """
    from ..inspect import offsets_log_state

    state = offsets_log_state(data_dir)
    commits = sorted((k, v) for k, v in state.commits.items() if only_group in (None, k[0]))
    if as_json:
        for (group_id, topic, partition), value in commits:
            click.echo(json.dumps({"group": group_id, "topic": topic, "partition": partition, "offset": value.offset,
                                   "leader_epoch": value.leader_epoch, "metadata": value.metadata,
                                   "commit_timestamp": value.commit_timestamp}))
    elif commits:
        header = ("GROUP", "TOPIC", "PARTITION", "OFFSET", "LEADER_EPOCH", "COMMIT_TIMESTAMP", "METADATA")
        table = [header] + [(g, t, p, v.offset, v.leader_epoch, v.commit_timestamp, v.metadata or "")
                            for (g, t, p), v in commits]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
        for row in table:
            click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    else:
        click.echo(f"No committed offsets ({state.records} record(s) in the offsets log).")
    if not as_json:
        for group_id, meta in sorted(state.groups.items()):
            if only_group in (None, group_id):
                click.echo(f"group {group_id}: generation {meta.generation}, protocol {meta.protocol or '-'}, "
                           f"{len(meta.members)} member(s)")
    for error in state.errors:
        click.echo(error, err=True)
    if state.errors:
        sys.exit(1)
