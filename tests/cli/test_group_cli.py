"""``logbroker consume -g`` and ``logbroker group list|describe|reset-offsets|delete``."""

from __future__ import annotations

import json

from logbroker.broker import Broker
from logbroker.client.consumer import Consumer


def produce(run, topic: str, lines: list[str], partitions: int = 1) -> None:
    run.ok("topic", "create", topic, "-p", str(partitions), "--if-not-exists")
    for i, line in enumerate(lines):
        run.ok("produce", topic, "-p", str(i % partitions), input=line + "\n")


def test_consume_with_a_group_commits_and_the_next_run_continues(run):
    produce(run, "t", ["a", "b", "c"])
    assert run.ok("consume", "t", "-g", "g", "-e").stdout.splitlines() == ["a", "b", "c"]
    assert run.ok("consume", "t", "-g", "g", "-e").stdout == ""
    produce(run, "t", ["d"])
    assert run.ok("consume", "t", "-g", "g", "-e").stdout.splitlines() == ["d"]
    # -n stops early; the commit covers only what was printed
    produce(run, "t", ["e", "f", "g"])
    assert run.ok("consume", "t", "-g", "g", "-n", "1").stdout.splitlines() == ["e"]
    assert run.ok("consume", "t", "-g", "g", "-e").stdout.splitlines() == ["f", "g"]


def test_offset_option_applies_only_where_nothing_is_committed(run):
    produce(run, "t", ["a", "b", "c"])
    assert run.ok("consume", "t", "-g", "g", "-o", "end", "-e").stdout == ""
    produce(run, "t", ["d"])
    assert run.ok("consume", "t", "-g", "g2", "-o", "-2", "-n", "1").stdout.splitlines() == ["c"]
    assert run.ok("consume", "t", "-g", "g2", "-o", "beginning", "-e").stdout.splitlines() == ["d"]


def test_consume_several_topics_with_a_group(run):
    produce(run, "t1", ["x"])
    produce(run, "t2", ["y"])
    out = run.ok("consume", "t1", "t2", "-g", "g", "-e", "-f", "%t=%s\\n").stdout.splitlines()
    assert sorted(out) == ["t1=x", "t2=y"]


def test_partition_option_is_refused_with_a_group(run):
    produce(run, "t", ["a"])
    result = run("consume", "t", "-g", "g", "-p", "0")
    assert result.exit_code == 2
    assert "-p cannot be combined with -g" in result.output


def test_group_list_and_describe(run, data_dir):
    produce(run, "t", ["a", "b", "c", "d"], partitions=2)
    run.ok("consume", "t", "-g", "billing", "-n", "1")
    assert run.ok("group", "list").stdout.splitlines() == ["billing\tEmpty"]
    assert json.loads(run.ok("group", "list", "--json").stdout) == [
        {"group": "billing", "protocol_type": "consumer", "state": "Empty"}]
    info = json.loads(run.ok("group", "describe", "billing", "--json").stdout)
    assert info["state"] == "Empty" and info["members"] == []
    rows = {(r["topic"], r["partition"]): r for r in info["offsets"]}
    committed = sum(r["committed"] for r in rows.values())
    assert committed == 1
    assert sum(r["lag"] for r in rows.values()) == 3
    assert all(r["log_end_offset"] == 2 for r in rows.values())
    text = run.ok("group", "describe", "billing").stdout
    assert "State: Empty" in text and "LAG" in text


def test_describe_shows_live_members_and_their_partitions(run, data_dir):
    produce(run, "t", ["a"], partitions=2)
    with Broker.open(data_dir) as broker:
        consumer = Consumer(broker, group="live", topics=["t"])
        consumer.poll(timeout=2.0)
        from logbroker.cli.groups import describe_group

        info = describe_group(broker, "live")
        consumer.close()
    assert info["state"] == "Stable"
    [member] = info["members"]
    assert sorted(map(tuple, member["assignment"])) == [("t", 0), ("t", 1)]
    assert {r["member_id"] for r in info["offsets"]} == {member["member_id"]}


def test_describe_an_unknown_group_fails(run):
    result = run("group", "describe", "nope")
    assert result.exit_code == 1 and "does not exist" in result.output


def test_reset_offsets_shows_a_plan_and_applies_it_only_with_execute(run):
    produce(run, "t", ["a", "b", "c", "d"])
    run.ok("consume", "t", "-g", "g", "-e")
    plan = json.loads(run.ok("group", "reset-offsets", "g", "--topic", "t", "--to-offset", "1", "--json").stdout)
    assert plan["plan"] == [{"topic": "t", "partition": 0, "current": 4, "new": 1}] and not plan["executed"]
    assert run.ok("consume", "t", "-g", "g", "-e").stdout == ""  # dry run changed nothing
    out = run.ok("group", "reset-offsets", "g", "--topic", "t:0", "--shift-by", "-2", "--execute").stdout
    assert "t\t0\t4\t2" in out
    assert run.ok("consume", "t", "-g", "g", "-e").stdout.splitlines() == ["c", "d"]
    run.ok("group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--execute")
    assert run.ok("consume", "t", "-g", "g", "-n", "1").stdout.splitlines() == ["a"]
    run.ok("group", "reset-offsets", "g", "--topic", "t", "--to-latest", "--execute")
    assert run.ok("consume", "t", "-g", "g", "-e").stdout == ""
    # clamped into the log
    plan = json.loads(run.ok("group", "reset-offsets", "g", "--topic", "t", "--to-offset", "99", "--json").stdout)
    assert plan["plan"][0]["new"] == 4


def test_reset_offsets_to_a_datetime(run, data_dir):
    run.ok("topic", "create", "t")
    with Broker.open(data_dir) as broker:
        from logbroker.client.producer import Producer

        with Producer(broker, linger_ms=0) as producer:
            producer.send("t", b"old", timestamp=1_600_000_000_000)  # 2020-09-13T12:26:40Z
            producer.send("t", b"new", timestamp=1_700_000_000_000)  # 2023-11-14T22:13:20Z
    run.ok("group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "2021-01-01T00:00:00", "--execute")
    assert run.ok("consume", "t", "-g", "g", "-e").stdout.splitlines() == ["new"]
    result = run("group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday")
    assert result.exit_code == 2


def test_reset_offsets_is_refused_while_the_group_has_members(run, data_dir):
    produce(run, "t", ["a"])
    with Broker.open(data_dir) as broker:
        consumer = Consumer(broker, group="busy", topics=["t"])
        consumer.poll(timeout=2.0)
        from click.testing import CliRunner

        from logbroker.cli.groups import reset_offsets
        from logbroker.cli.main import Settings as CliSettings

        class Settings(CliSettings):
            def open_broker(self, read_only=False):
                class Borrowed:  # the CLI's own code path over the broker this process already owns
                    def __enter__(self):
                        return broker

                    def __exit__(self, *exc):
                        return None

                return Borrowed()

        result = CliRunner().invoke(reset_offsets, ["busy", "--topic", "t", "--to-earliest", "--execute"],
                                    obj=Settings(data_dir))
        consumer.close()
    assert result.exit_code == 1
    assert "active members" in result.output


def test_reset_offsets_needs_exactly_one_target(run):
    produce(run, "t", ["a"])
    assert run("group", "reset-offsets", "g", "--topic", "t").exit_code == 2
    assert run("group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--shift-by", "1").exit_code == 2


def test_group_delete(run):
    produce(run, "t", ["a"])
    run.ok("consume", "t", "-g", "g", "-e")
    assert run.ok("group", "delete", "g").stdout.strip() == "Deleted group g."
    assert run.ok("group", "list").stdout == ""
    assert run.ok("consume", "t", "-g", "g", "-e").stdout.splitlines() == ["a"]  # the offsets went too
    result = run("group", "delete", "nope")
    assert result.exit_code == 1 and "no such group" in result.output


def test_inspect_offsets_decodes_the_latest_commit_per_partition(run, data_dir):
    produce(run, "t", ["a", "b", "c"])
    run.ok("consume", "t", "-g", "g1", "-n", "1")
    run.ok("consume", "t", "-g", "g1", "-n", "1")
    run.ok("consume", "t", "-g", "g2", "-e")
    lines = run.ok("inspect", "offsets", data_dir, "--json", data_dir=False).stdout.splitlines()
    rows = sorted((r["group"], r["topic"], r["partition"], r["offset"]) for r in map(json.loads, lines))
    assert rows == [("g1", "t", 0, 2), ("g2", "t", 0, 3)]
    text = run.ok("inspect", "offsets", data_dir, "-g", "g2", data_dir=False).stdout
    assert "g2" in text and "g1" not in text and "group g2: generation" in text
    run.ok("group", "delete", "g1")
    lines = run.ok("inspect", "offsets", data_dir, "--json", data_dir=False).stdout.splitlines()
    assert [json.loads(line)["group"] for line in lines] == ["g2"]  # the tombstones took g1 away


def test_inspect_offsets_of_a_directory_without_groups(run, data_dir):
    produce(run, "t", ["a"])
    assert "No committed offsets" in run.ok("inspect", "offsets", data_dir, data_dir=False).stdout
