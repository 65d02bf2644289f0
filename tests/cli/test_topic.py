"""``logbroker topic create|list|describe|alter|delete`` through CliRunner on a temporary data dir."""

from __future__ import annotations

import base64
import json
import os

import pytest

from logbroker.broker import Broker

from helpers import tree

PARTITION_KEYS = {"partition", "log_start_offset", "log_end_offset", "high_watermark", "segments", "size_bytes"}


def overrides(data_dir: str, topic: str) -> dict:
    with Broker.open(data_dir, read_only=True) as broker:
        return broker.describe_topic(topic)["overrides"]


# ---- create ----------------------------------------------------------------------------------

def test_create_with_partitions_and_configs(run, data_dir):
    result = run.ok("topic", "create", "orders", "-p", "3", "-c", "retention.ms=86400000",
                    "--config", "cleanup.policy=compact")
    assert result.stdout == "Created topic orders with 3 partition(s).\n"
    for p in range(3):
        assert os.path.isdir(os.path.join(data_dir, f"orders-{p}"))
    assert not os.path.exists(os.path.join(data_dir, "orders-3"))
    assert overrides(data_dir, "orders") == {"retention.ms": "86400000", "cleanup.policy": "compact"}
    with Broker.open(data_dir, read_only=True) as broker:
        assert broker.partition_count("orders") == 3


def test_create_defaults_to_one_partition_and_no_overrides(run, data_dir):
    assert run.ok("topic", "create", "t").stdout == "Created topic t with 1 partition(s).\n"
    assert overrides(data_dir, "t") == {}
    assert os.path.isdir(os.path.join(data_dir, "t-0"))
    assert not os.path.exists(os.path.join(data_dir, "t-1"))


def test_create_config_values_are_trimmed(run, data_dir):
    run.ok("topic", "create", "t", "-c", " retention.ms = 1000 ")
    assert overrides(data_dir, "t") == {"retention.ms": "1000"}


def test_create_existing_topic_fails_unless_if_not_exists(run, data_dir):
    run.ok("topic", "create", "t", "-p", "2")
    again = run("topic", "create", "t")
    assert again.exit_code == 1
    assert "already exists" in again.output and "'t'" in again.output
    quiet = run("topic", "create", "t", "-p", "5", "--if-not-exists")
    assert quiet.exit_code == 0 and quiet.output == ""
    with Broker.open(data_dir, read_only=True) as broker:
        assert broker.partition_count("t") == 2  # untouched


def test_create_if_not_exists_creates_a_missing_topic(run, data_dir):
    result = run.ok("topic", "create", "fresh", "--if-not-exists", "-p", "2")
    assert "Created topic fresh with 2 partition(s)." in result.stdout
    assert os.path.isdir(os.path.join(data_dir, "fresh-1"))


@pytest.mark.parametrize("name", ["../x", "../../etc", "a/b", "/abs", "..", ".", "", "x" * 250, "with space",
                                  "tópico", "semi;colon", "nul\x00byte"])
def test_create_rejects_invalid_names_and_creates_nothing(run, data_dir, tmp_path, name):
    Broker.open(data_dir).close()  # an initialised data dir, so only the topic itself could appear
    before = tree(tmp_path)
    result = run("topic", "create", name)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: topic name")
    assert "Traceback" not in result.output
    assert tree(tmp_path) == before
    assert not os.path.exists(tmp_path / "x-0")
    with Broker.open(data_dir, read_only=True) as broker:
        assert broker.list_topics() == []


def test_create_and_delete_the_longest_valid_name(run, data_dir):
    name = "n" * 249  # Kafka's limit
    result = run("topic", "create", name)
    assert result.exit_code == 0, result.output
    assert run.ok("topic", "list").stdout == name + "\n"
    run.ok("topic", "delete", name)
    assert run.ok("topic", "list").stdout == ""


def test_path_traversal_name_message_is_clear(run, tmp_path):
    result = run("topic", "create", "../x")
    assert result.exit_code == 1
    assert "'../x'" in result.output and "'/'" in result.output
    assert "only ASCII letters, digits, '.', '_' and '-' are allowed" in result.output
    assert not os.path.exists(tmp_path / "x-0")


@pytest.mark.parametrize("config, message", [
    ("retention.ms=abc", "invalid value 'abc' for retention.ms"),
    ("nope=1", "unknown topic config 'nope'"),
    ("segment.bytes=10", "invalid value '10' for segment.bytes"),
    ("cleanup.policy=forever", "invalid value 'forever' for cleanup.policy"),
    ("message.timestamp.type=Now", "invalid value 'Now' for message.timestamp.type"),
])
def test_create_rejects_bad_configs(run, data_dir, config, message):
    result = run("topic", "create", "t", "-c", config)
    assert result.exit_code == 1
    assert message in result.output
    assert not os.path.exists(os.path.join(data_dir, "t-0"))
    with Broker.open(data_dir, read_only=True) as broker:
        assert broker.list_topics() == []


@pytest.mark.parametrize("config", ["retention.ms", "=5", "noequals"])
def test_create_malformed_config_is_a_usage_error(run, data_dir, config):
    result = run("topic", "create", "t", "-c", config)
    assert result.exit_code == 2
    assert "expected KEY=VALUE" in result.output
    assert "Try 'logbroker topic create --help'" in result.output
    assert not os.path.exists(os.path.join(data_dir, "t-0"))


@pytest.mark.parametrize("partitions", ["0", "-1", "many"])
def test_create_bad_partition_count_is_a_usage_error(run, partitions):
    assert run("topic", "create", "t", "-p", partitions).exit_code == 2


# ---- list ------------------------------------------------------------------------------------

def test_list_text_and_json(run):
    assert run.ok("topic", "list").stdout == ""
    assert json.loads(run.ok("topic", "list", "--json").stdout) == []
    run.ok("topic", "create", "zeta", "-p", "2")
    run.ok("topic", "create", "alpha")
    run.ok("topic", "create", "mid.dle_-x")
    assert run.ok("topic", "list").stdout == "alpha\nmid.dle_-x\nzeta\n"
    listed = json.loads(run.ok("topic", "list", "--json").stdout)
    assert [t["name"] for t in listed] == ["alpha", "mid.dle_-x", "zeta"]
    for entry in listed:
        assert list(entry) == ["name", "partitions", "topic_id"]
        assert len(base64.urlsafe_b64decode(entry["topic_id"] + "==")) == 16 and len(entry["topic_id"]) == 22
    assert {t["name"]: t["partitions"] for t in listed} == {"alpha": 1, "mid.dle_-x": 1, "zeta": 2}


def test_list_does_not_create_a_missing_data_dir(run, data_dir):
    assert run.ok("topic", "list").stdout == ""
    assert not os.path.exists(data_dir)


# ---- describe --------------------------------------------------------------------------------

def test_describe_text(run):
    run.ok("topic", "create", "orders", "-p", "2", "-c", "retention.ms=1000", "-c", "cleanup.policy=compact")
    run.ok("produce", "orders", "-p", "1", input="a\nb\nc\n")
    topic_id = json.loads(run.ok("topic", "list", "--json").stdout)[0]["topic_id"]
    lines = run.ok("topic", "describe", "orders").stdout.splitlines()
    assert lines[0] == f"Topic: orders\tTopicId: {topic_id}\tPartitions: 2"
    assert lines[1] == "Configs: cleanup.policy=compact,retention.ms=1000"
    assert lines[2].startswith("\tPartition: 0\tLogStartOffset: 0\tLogEndOffset: 0\tHighWatermark: 0\tSegments: 1\t")
    assert lines[3].startswith("\tPartition: 1\tLogStartOffset: 0\tLogEndOffset: 3\tHighWatermark: 3\tSegments: 1\t")
    assert len(lines) == 4


def test_describe_text_without_overrides(run):
    run.ok("topic", "create", "plain")
    assert "Configs: (defaults)" in run.ok("topic", "describe", "plain").stdout


def test_describe_json_has_stable_keys(run):
    run.ok("topic", "create", "orders", "-p", "2", "-c", "retention.ms=1000")
    run.ok("produce", "orders", "-p", "0", input="a\nb\n")
    text = run.ok("topic", "describe", "orders", "--json").stdout
    info = json.loads(text)
    assert list(info) == ["config", "name", "overrides", "partitions", "topic_id"]  # sorted, stable
    assert info["name"] == "orders"
    assert info["overrides"] == {"retention.ms": "1000"}
    assert info["config"]["retention.ms"] == "1000"
    assert info["config"]["cleanup.policy"] == "delete"  # effective config includes defaults
    assert [p["partition"] for p in info["partitions"]] == [0, 1]
    for p in info["partitions"]:
        assert set(p) == PARTITION_KEYS
    p0, p1 = info["partitions"]
    assert (p0["log_start_offset"], p0["log_end_offset"], p0["high_watermark"]) == (0, 2, 2)
    assert p0["size_bytes"] > 0 and p1["size_bytes"] == 0
    assert text == run.ok("topic", "describe", "orders", "--json").stdout  # deterministic


def test_describe_unknown_topic(run):
    result = run("topic", "describe", "missing")
    assert result.exit_code == 1
    assert "topic 'missing' does not exist" in result.output


def test_describe_invalid_name(run):
    result = run("topic", "describe", "../etc")
    assert result.exit_code == 1 and "topic name" in result.output


# ---- alter -----------------------------------------------------------------------------------

def test_alter_sets_and_deletes_overrides_persistently(run, data_dir):
    run.ok("topic", "create", "t", "-c", "retention.ms=1000")
    result = run.ok("topic", "alter", "t", "-c", "retention.ms=5000", "-c", "max.message.bytes=2000")
    assert result.stdout == "Updated topic t: max.message.bytes=2000,retention.ms=5000\n"
    assert overrides(data_dir, "t") == {"retention.ms": "5000", "max.message.bytes": "2000"}
    result = run.ok("topic", "alter", "t", "-d", "retention.ms")
    assert result.stdout == "Updated topic t: max.message.bytes=2000\n"
    assert overrides(data_dir, "t") == {"max.message.bytes": "2000"}
    result = run.ok("topic", "alter", "t", "--delete-config", "max.message.bytes", "--config", "segment.ms=60000")
    assert result.stdout == "Updated topic t: segment.ms=60000\n"
    result = run.ok("topic", "alter", "t", "-d", "segment.ms")
    assert result.stdout == "Updated topic t: (defaults)\n"
    assert json.loads(run.ok("topic", "describe", "t", "--json").stdout)["overrides"] == {}


def test_alter_deleting_an_absent_override_is_fine(run, data_dir):
    run.ok("topic", "create", "t")
    assert run.ok("topic", "alter", "t", "-d", "retention.ms").stdout == "Updated topic t: (defaults)\n"


def test_alter_takes_effect_for_produce(run):
    run.ok("topic", "create", "t")
    run.ok("topic", "alter", "t", "-c", "max.message.bytes=200")
    result = run("produce", "t", input="x" * 500 + "\n")
    assert result.exit_code == 1
    assert "max.message.bytes=200" in result.output


def test_alter_needs_something_to_change(run):
    run.ok("topic", "create", "t")
    result = run("topic", "alter", "t")
    assert result.exit_code == 2 and "nothing to change" in result.output


@pytest.mark.parametrize("args, message", [
    (["-c", "retention.ms=soon"], "invalid value 'soon' for retention.ms"),
    (["-c", "bogus.key=1"], "unknown topic config 'bogus.key'"),
    (["-d", "bogus.key"], "unknown topic config 'bogus.key'"),
])
def test_alter_rejects_bad_configs_and_changes_nothing(run, data_dir, args, message):
    run.ok("topic", "create", "t", "-c", "retention.ms=1000")
    result = run("topic", "alter", "t", *args)
    assert result.exit_code == 1 and message in result.output
    assert overrides(data_dir, "t") == {"retention.ms": "1000"}


def test_alter_malformed_config_is_a_usage_error(run):
    run.ok("topic", "create", "t")
    result = run("topic", "alter", "t", "-c", "retention.ms")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


def test_alter_unknown_topic(run):
    result = run("topic", "alter", "missing", "-c", "retention.ms=1")
    assert result.exit_code == 1 and "does not exist" in result.output


# ---- delete ----------------------------------------------------------------------------------

def test_delete_removes_topic_and_data(run, data_dir):
    run.ok("topic", "create", "doomed", "-p", "2")
    run.ok("topic", "create", "kept")
    run.ok("produce", "doomed", input="a\nb\n")
    assert run.ok("topic", "delete", "doomed").stdout == "Deleted topic doomed.\n"
    assert run.ok("topic", "list").stdout == "kept\n"
    leftovers = [n for n in os.listdir(data_dir) if n.startswith("doomed")]
    assert leftovers == []
    assert not os.path.exists(os.path.join(data_dir, ".metadata", "topics", "doomed.json"))
    again = run("topic", "delete", "doomed")
    assert again.exit_code == 1 and "does not exist" in again.output


def test_recreated_topic_is_empty_with_a_new_id(run):
    run.ok("topic", "create", "t")
    run.ok("produce", "t", input="old\n")
    first_id = json.loads(run.ok("topic", "list", "--json").stdout)[0]["topic_id"]
    run.ok("topic", "delete", "t")
    run.ok("topic", "create", "t")
    assert json.loads(run.ok("topic", "list", "--json").stdout)[0]["topic_id"] != first_id
    assert run.consume_values("t") == []


def test_delete_invalid_name(run):
    result = run("topic", "delete", "../x")
    assert result.exit_code == 1 and "topic name" in result.output


# ---- where the data directory comes from -----------------------------------------------------

def test_data_dir_from_environment_variable(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from logbroker.cli.main import cli

    monkeypatch.chdir(tmp_path)
    target = tmp_path / "from-env"
    result = CliRunner().invoke(cli, ["topic", "create", "t"], env={"LOGBROKER_DATA_DIR": str(target)})
    assert result.exit_code == 0, result.output
    assert (target / "t-0").is_dir()
    assert not (tmp_path / "data").exists()
    listed = CliRunner().invoke(cli, ["topic", "list"], env={"LOGBROKER_DATA_DIR": str(target)})
    assert listed.output == "t\n"


def test_data_dir_option_beats_environment_variable(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from logbroker.cli.main import cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "opt"), "topic", "create", "t"],
                                env={"LOGBROKER_DATA_DIR": str(tmp_path / "env")})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "opt" / "t-0").is_dir()
    assert not (tmp_path / "env").exists()


def test_default_data_dir_is_data_in_the_working_directory(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from logbroker.cli.main import cli

    monkeypatch.delenv("LOGBROKER_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["topic", "create", "t"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "t-0").is_dir()
    produced = runner.invoke(cli, ["produce", "t"], input="hello\n")
    assert produced.exit_code == 0, produced.output
    consumed = runner.invoke(cli, ["consume", "t", "-e"])
    assert consumed.stdout == "hello\n"


def test_data_dir_that_is_a_file_is_a_usage_error(run, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    result = run("--data-dir", str(path), "topic", "list", data_dir=False)
    assert result.exit_code == 2
