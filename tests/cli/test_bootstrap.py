"""The CLI with --bootstrap, against librdkafka's mock Kafka cluster (tests/client/kafka_mock.py).

The mock does not serve CreateTopics, DescribeConfigs, ListGroups or DescribeGroups: topics are
created through the mock's own API here, and those commands are tested against ``logbroker serve``
in test_bootstrap_serve.py.
"""

from __future__ import annotations

import json
import os

import pytest

from client.kafka_mock import MockCluster
from logbroker.cli.main import cli, connectable
from logbroker.client.producer import partition_for_key


@pytest.fixture
def mock():
    cluster = MockCluster()
    try:
        yield cluster
    finally:
        cluster.close()


def test_every_command_but_inspect_and_serve_takes_bootstrap():
    def leaves(command, path=()):
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            yield path, command
            return
        for name, sub in subcommands.items():
            yield from leaves(sub, path + (name,))

    for path, command in leaves(cli):
        names = {opt for p in command.params for opt in getattr(p, "opts", ())}
        if path[0] in ("inspect", "serve"):
            assert "--bootstrap" not in names, path
        else:
            assert "--bootstrap" in names, path
    assert "--bootstrap" in {opt for p in cli.params for opt in p.opts}


def test_topic_list_root_option_command_option_and_env(run, mock, data_dir):
    mock.create_topic("orders", 3)
    mock.create_topic("audit")
    assert run.ok("--bootstrap", mock.bootstrap, "topic", "list").stdout.splitlines() == ["audit", "orders"]
    assert run.ok("topic", "list", "--bootstrap", mock.bootstrap).stdout.splitlines() == ["audit", "orders"]
    listed = run.ok("topic", "list", "--json", env={"LOGBROKER_BOOTSTRAP": mock.bootstrap}).stdout
    assert {(t["name"], t["partitions"]) for t in json.loads(listed)} == {("audit", 1), ("orders", 3)}
    assert not os.path.exists(data_dir)  # the data directory was never touched


def test_topic_create_on_a_broker_without_the_admin_api_is_a_clear_error(run, mock):
    result = run("--bootstrap", mock.bootstrap, "topic", "create", "new", "-p", "2")
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot create topic 'new'") and "not supported by broker" in result.output


def test_produce_and_consume_to_the_end(run, mock):
    mock.create_topic("orders", 3)
    b = ("--bootstrap", mock.bootstrap)
    run.ok(*b, "produce", "orders", "-K", ":", "-H", "src=cli", "-z", "gzip", input="u1:created\nu2:paid\nu1:shipped\n")
    run.ok(*b, "produce", "orders", "-p", "0", input="plain\n")
    records = run.consume_json("orders", *b)
    assert len(records) == 4
    keyed = [r for r in records if r["key"]]
    assert [(r["key"], r["value"]) for r in keyed if r["key"] == "u1"] == [("u1", "created"), ("u1", "shipped")]
    for r in keyed:
        assert r["partition"] == partition_for_key(r["key"].encode(), 3)
        assert r["headers"] == [["src", "cli"]] and r["timestamp_type"] == "CreateTime"
    assert [r for r in records if r["value"] == "plain"][0]["partition"] == 0
    # -f, -p, -o, -n
    formatted = run.ok(*b, "consume", "orders", "-e", "-p", "0", "-f", "%p:%o %s\\n").stdout
    assert formatted.splitlines()[-1].endswith(" plain") and formatted.splitlines()[-1].startswith("0:")
    p = partition_for_key(b"u1", 3)
    in_p = [r["value"] for r in sorted(records, key=lambda r: r["offset"]) if r["partition"] == p]
    assert run.consume_values("orders", *b, "-p", str(p), "-o", "1") == in_p[1:]
    assert len(run.ok(*b, "consume", "orders", "-e", "-n", "2").stdout.splitlines()) == 2
    assert run.consume_values("orders", *b, "-o", "end") == []
    assert run.consume_values("orders", *b, "-p", "0", "-o", "-1") == ["plain"]


def test_produce_creates_nothing_the_broker_does_not(run, mock):
    mock.create_topic("t")
    result = run("--bootstrap", mock.bootstrap, "produce", "missing", "--no-create", input="x\n")
    assert result.exit_code == 1 and "does not exist" in result.output


@pytest.fixture
def quick_groups(monkeypatch):
    """The mock ignores LeaveGroup: a member that left holds its partitions until its session times
    out (45 s by default), so each `consume -g` run here uses 2 s sessions."""
    from logbroker.client.remote_consumer import RemoteConsumer

    original = RemoteConsumer.__init__

    def init(self, *args, **kwargs):
        kwargs.setdefault("session_timeout_ms", 2000)
        kwargs.setdefault("max_poll_interval_ms", 2000)
        original(self, *args, **kwargs)

    monkeypatch.setattr(RemoteConsumer, "__init__", init)


def test_consume_with_a_group_commits_what_it_printed(run, mock, quick_groups):
    mock.create_topic("jobs", 2)
    b = ("--bootstrap", mock.bootstrap)
    run.ok(*b, "produce", "jobs", "-K", ":", input="".join(f"k{i}:job-{i}\n" for i in range(6)))
    first = run.consume_values("jobs", *b, "-g", "workers")
    assert sorted(first) == [f"job-{i}" for i in range(6)]
    assert run.consume_values("jobs", *b, "-g", "workers") == []  # everything was committed
    run.ok(*b, "produce", "jobs", "-K", ":", input="k9:job-9\n")
    assert run.consume_values("jobs", *b, "-g", "workers") == ["job-9"]
    # a new group starts where -o says (only where nothing is committed)
    assert run.consume_values("jobs", *b, "-g", "latecomers", "-o", "end") == []


def test_an_unreachable_bootstrap_fails_with_an_error(run, monkeypatch):
    monkeypatch.setattr("logbroker.cli.main.REMOTE_TIMEOUT_MS", 1000)
    result = run("--bootstrap", "127.0.0.1:1", "topic", "list")
    assert result.exit_code == 1 and result.output.startswith("Error: ")


def test_wildcard_listen_addresses_become_loopback():
    assert connectable("0.0.0.0:9092") == "127.0.0.1:9092"
    assert connectable("[::]:9092") == "[::1]:9092"
    assert connectable("127.0.0.1:9092") == "127.0.0.1:9092"
    assert connectable("[::1]:9092") == "[::1]:9092"
