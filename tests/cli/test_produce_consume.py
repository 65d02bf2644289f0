"""``logbroker produce`` and ``logbroker consume`` (kcat -P / -C) through CliRunner, plus the
installed console script end to end in subprocesses and the data directory lock."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import subprocess
import sys

import mmh3
import pytest

from logbroker.broker import Broker
from logbroker.client import Producer
from logbroker.inspect import dump_file

from .conftest import start_lock_holder, stop, subprocess_env

JSON_KEYS = ["topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value", "headers"]


def produce_with_timestamps(data_dir: str, topic: str, records, partitions: int = 1, config=None):
    """(key, value, headers, timestamp) tuples through the Python API, each record its own batch."""
    with Broker.open(data_dir, housekeeping=False) as broker:
        if topic not in broker.list_topics():
            broker.create_topic(topic, partitions=partitions, config=config)
        with Producer(broker, linger_ms=0) as producer:
            for key, value, headers, ts in records:
                producer.send(topic, value, key=key, headers=headers, timestamp=ts, partition=0).result()


def log_files(data_dir: str, topic: str, partition: int = 0) -> list[str]:
    directory = os.path.join(data_dir, f"{topic}-{partition}")
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".log"))


# ---- produce ---------------------------------------------------------------------------------

def test_produce_lines_auto_creates_the_topic(run, data_dir):
    result = run.ok("produce", "greetings", input="hello\nworld\n")
    assert result.stderr == "Created topic greetings with 1 partition.\n"
    assert result.stdout == ""
    assert run.consume_values("greetings") == ["hello", "world"]
    second = run.ok("produce", "greetings", input="again\n")
    assert second.stderr == ""  # exists now
    assert run.consume_values("greetings") == ["hello", "world", "again"]
    with Broker.open(data_dir, read_only=True) as broker:
        assert broker.partition_count("greetings") == 1


def test_produce_no_create_refuses_a_missing_topic(run, data_dir):
    result = run("produce", "missing", "--no-create", input="x\n")
    assert result.exit_code == 1
    assert "topic 'missing' does not exist" in result.output
    with Broker.open(data_dir, read_only=True) as broker:
        assert broker.list_topics() == []


def test_produce_no_create_writes_to_an_existing_topic(run):
    run.ok("topic", "create", "t")
    run.ok("produce", "t", "--no-create", input="x\n")
    assert run.consume_values("t") == ["x"]


def test_produce_handles_crlf_empty_lines_and_a_missing_final_newline(run):
    run.ok("produce", "t", input=b"a\r\n\nb\r\nlast")
    assert [r["value"] for r in run.consume_json("t")] == ["a", "", "b", "last"]


def test_produce_empty_input_appends_nothing(run):
    run.ok("topic", "create", "t")
    run.ok("produce", "t", input="")
    assert run.consume_values("t") == []


def test_produce_with_fixed_key(run):
    run.ok("produce", "t", "-k", "user-1", input="a\nb\n")
    assert [(r["key"], r["value"]) for r in run.consume_json("t")] == [("user-1", "a"), ("user-1", "b")]


def test_produce_without_key_has_null_keys(run):
    run.ok("produce", "t", input="a\n")
    record = run.consume_json("t")[0]
    assert record["key"] is None and "key_encoding" not in record


def test_produce_key_delimiter_splits_at_the_first_delimiter(run):
    run.ok("produce", "t", "-K", ":", input="k1:v1\nno delimiter here\nk2:v:2\n:empty-key\nempty-value:\n")
    got = [(r["key"], r["value"]) for r in run.consume_json("t")]
    assert got == [("k1", "v1"), (None, "no delimiter here"), ("k2", "v:2"), ("", "empty-key"),
                   ("empty-value", "")]


def test_produce_multi_character_key_delimiter(run):
    run.ok("produce", "t", "--key-delimiter", "::", input="a::b:c\nplain:x\n")
    got = [(r["key"], r["value"]) for r in run.consume_json("t")]
    assert got == [("a", "b:c"), (None, "plain:x")]


def test_produce_key_and_key_delimiter_conflict(run):
    result = run("produce", "t", "-k", "a", "-K", ":", input="x\n")
    assert result.exit_code == 2 and "either -k or -K" in result.output


def test_produce_headers(run):
    run.ok("produce", "t", "-H", "type=created", "--header", "trace=a=b", "-H", "empty=", input="x\ny\n")
    for record in run.consume_json("t"):
        assert record["headers"] == [["type", "created"], ["trace", "a=b"], ["empty", ""]]


@pytest.mark.parametrize("header", ["novalue", "=value"])
def test_produce_malformed_header_is_a_usage_error(run, header):
    result = run("produce", "t", "-H", header, input="x\n")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


def test_produce_to_an_explicit_partition(run):
    run.ok("topic", "create", "t", "-p", "3")
    run.ok("produce", "t", "-p", "2", input="a\nb\nc\n")
    assert run.consume_values("t", "-p", "2") == ["a", "b", "c"]
    assert run.consume_values("t", "-p", "0") == []
    assert run.consume_values("t", "-p", "1") == []
    assert {r["partition"] for r in run.consume_json("t")} == {2}


def test_produce_to_a_missing_partition_fails(run):
    run.ok("topic", "create", "t", "-p", "2")
    result = run("produce", "t", "-p", "5", input="a\n")
    assert result.exit_code == 1
    assert "partitions 0..1" in result.output and "Traceback" not in result.output
    assert run.consume_values("t") == []


def test_produce_keys_choose_partitions_with_murmur3(run):
    run.ok("topic", "create", "t", "-p", "4")
    keys = [f"user-{i}" for i in range(40)]
    run.ok("produce", "t", "-K", "=", input="".join(f"{k}=v{i}\n" for i, k in enumerate(keys)))
    records = run.consume_json("t")
    assert len(records) == 40
    for record in records:
        assert record["partition"] == mmh3.hash(record["key"].encode(), 0, False) % 4
    assert len({r["partition"] for r in records}) > 1


def test_produce_keyless_records_are_sticky(run):
    """Keyless records fill one partition's batch, then move on to the next partition (Kafka's sticky
    partitioner): a few lines land together, many lines spread over every partition."""
    run.ok("topic", "create", "t", "-p", "3")
    run.ok("produce", "t", input="".join(f"{i}\n" for i in range(9)))
    assert len({record["partition"] for record in run.consume_json("t")}) == 1
    run.ok("topic", "create", "many", "-p", "3")
    run.ok("produce", "many", input="".join(f"{i:0100d}\n" for i in range(3000)))  # about 6 batches
    records = run.consume_json("many")
    assert len(records) == 3000
    assert {record["partition"] for record in records} == {0, 1, 2}


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_compression(run, data_dir, codec):
    lines = [f"record {i} " + "x" * 50 for i in range(20)]
    run.ok("produce", "t", "-z", codec, input="\n".join(lines) + "\n")
    assert run.consume_values("t") == lines
    batches = [b for path in log_files(data_dir, "t") for b in dump_file(path)]
    assert batches and {b["compression"] for b in batches} == {codec}
    if codec != "none":
        assert sum(b["size"] for b in batches) < sum(len(line) for line in lines)


def test_produce_unknown_compression_is_a_usage_error(run):
    result = run("produce", "t", "-z", "brotli", input="x\n")
    assert result.exit_code == 2


def test_produce_binary_lines(run):
    run.ok("produce", "t", "-K", ":", input=b"\xff\xfe:\x00\x01\x80\nok:\xc3\xa9t\xc3\xa9\n")
    first, second = run.consume_json("t")
    assert first["key"] == base64.b64encode(b"\xff\xfe").decode() and first["key_encoding"] == "base64"
    assert first["value"] == base64.b64encode(b"\x00\x01\x80").decode()
    assert first["value_encoding"] == "base64"
    assert second["key"] == "ok" and second["value"] == "été"
    assert "key_encoding" not in second and "value_encoding" not in second


def test_produce_records_are_durable_and_visible_to_a_fresh_broker(run, data_dir):
    run.ok("produce", "t", input="a\nb\n")
    with Broker.open(data_dir, housekeeping=False) as broker:
        assert broker.recovery_reports == []  # the CLI closed the directory cleanly
        assert broker.list_offsets("t", 0, -1) == (2, -1)


# ---- consume: where to start -----------------------------------------------------------------

@pytest.fixture
def ten(run):
    run.ok("produce", "t", input="".join(f"{i}\n" for i in range(10)))
    return run


@pytest.mark.parametrize("start, expected", [
    ("beginning", list(range(10))),
    ("end", []),
    ("7", [7, 8, 9]),
    ("0", list(range(10))),
    ("10", []),
    ("100", []),
    ("-3", [7, 8, 9]),
    ("-1", [9]),
    ("-100", list(range(10))),
])
def test_consume_offsets(ten, start, expected):
    assert ten.consume_values("t", "-o", start) == [str(i) for i in expected]
    assert ten.consume_values("t", f"--offset={start}") == [str(i) for i in expected]


def test_consume_defaults_to_the_beginning(ten):
    assert ten.consume_values("t") == [str(i) for i in range(10)]


def test_consume_offset_after_delete_records_starts_at_the_log_start(ten, data_dir):
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.delete_records("t", 0, 4)
    assert ten.consume_values("t", "-o", "beginning") == [str(i) for i in range(4, 10)]
    assert ten.consume_values("t", "-o", "2") == [str(i) for i in range(4, 10)]
    assert ten.consume_values("t", "-o", "-100") == [str(i) for i in range(4, 10)]


def test_consume_from_a_timestamp(run, data_dir):
    produce_with_timestamps(data_dir, "t", [(None, f"v{i}".encode(), None, 1000 * (i + 1)) for i in range(5)])
    assert run.consume_values("t", "-o", "s@0") == ["v0", "v1", "v2", "v3", "v4"]
    assert run.consume_values("t", "-o", "s@2000") == ["v1", "v2", "v3", "v4"]
    assert run.consume_values("t", "-o", "s@2500") == ["v2", "v3", "v4"]
    assert run.consume_values("t", "-o", "s@5000") == ["v4"]
    assert run.consume_values("t", "-o", "s@5001") == []


@pytest.mark.parametrize("start", ["middle", "s@", "s@abc", "1.5", ""])
def test_consume_bad_offset_is_a_usage_error(ten, start):
    result = ten("consume", "t", "-e", "-o", start)
    assert result.exit_code == 2
    assert "use beginning, end, an offset, -N (N before the end) or s@TIMESTAMP_MS" in result.output


# ---- consume: partitions, counts, end ----------------------------------------------------------

def test_consume_one_partition(run):
    run.ok("topic", "create", "t", "-p", "3")
    for p in range(3):
        run.ok("produce", "t", "-p", str(p), input=f"p{p}-a\np{p}-b\n")
    assert run.consume_values("t", "-p", "1") == ["p1-a", "p1-b"]
    assert run.consume_values("t", "--partition", "2", "-o", "-1") == ["p2-b"]
    assert sorted(run.consume_values("t")) == sorted(f"p{p}-{x}" for p in range(3) for x in "ab")


def test_consume_unknown_partition_and_topic(run):
    run.ok("topic", "create", "t", "-p", "2")
    result = run("consume", "t", "-p", "2", "-e")
    assert result.exit_code == 1 and "there is no partition 2" in result.output
    result = run("consume", "nope", "-e")
    assert result.exit_code == 1 and "topic 'nope' does not exist" in result.output
    assert run("consume", "t", "-p", "-1", "-e").exit_code == 2


def test_consume_count_stops_early_without_exit_at_end(ten):
    result = ten.ok("consume", "t", "-n", "3")  # no -e: -n alone must end it
    assert result.stdout.splitlines() == ["0", "1", "2"]
    assert ten.consume_values("t", "-o", "5", "--count", "2") == ["5", "6"]
    assert ten.consume_values("t", "-n", "100") == [str(i) for i in range(10)]  # -e ends it first
    assert ten("consume", "t", "-n", "0", "-e").exit_code == 2


def test_consume_count_across_partitions(run):
    run.ok("topic", "create", "t", "-p", "3")
    run.ok("produce", "t", input="".join(f"{i}\n" for i in range(12)))
    assert len(run.ok("consume", "t", "-n", "7").stdout.splitlines()) == 7


def test_consume_exit_at_end_on_an_empty_topic(run):
    run.ok("topic", "create", "t", "-p", "2")
    result = run.ok("consume", "t", "--exit-at-end")
    assert result.stdout == ""


# ---- consume: output formats -------------------------------------------------------------------

def test_consume_format_tokens(run, data_dir):
    produce_with_timestamps(data_dir, "t", [
        (b"key-1", b"value-one", [("h1", b"x"), ("h2", b"y")], 1_700_000_000_123),
        (None, b"v2", None, 1_700_000_000_456),
        (b"k3", None, [("n", None)], 1_700_000_000_789),
    ])
    fmt = "%t|%p|%o|%k|%s|%S|%K|%T|%h|%%|\\t|\\\\|\\r\\n"
    result = run.ok("consume", "t", "-e", "-f", fmt)
    assert result.stdout_bytes == (  # raw bytes: Result.stdout folds \r\n into \n
        b"t|0|0|key-1|value-one|9|5|1700000000123|h1=x,h2=y|%|\t|\\|\r\n"
        b"t|0|1||v2|2|-1|1700000000456||%|\t|\\|\r\n"
        b"t|0|2|k3||-1|2|1700000000789|n=|%|\t|\\|\r\n")


def test_consume_format_without_newline_and_unknown_tokens(run):
    run.ok("produce", "t", input="a\nb\n")
    assert run.ok("consume", "t", "-e", "--format", "[%s]").stdout == "[a][b]"
    assert run.ok("consume", "t", "-e", "-f", "%x %s\\n").stdout == "%x a\n%x b\n"


def test_consume_format_sizes_are_in_bytes(run):
    run.ok("produce", "t", "-k", "ké", input="été\n")
    assert run.ok("consume", "t", "-e", "-f", "%K %S %k %s\\n").stdout == "3 5 ké été\n"


def test_consume_json_one_object_per_line_with_stable_keys(run, data_dir):
    produce_with_timestamps(data_dir, "t", [
        (b"k", b"v", [("h", b"1"), ("h", b"2"), ("null", None)], 1234),
        (None, None, None, 5678),
    ])
    lines = run.ok("consume", "t", "-e", "--json").stdout.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert list(first) == JSON_KEYS and list(second) == JSON_KEYS
    assert first == {"topic": "t", "partition": 0, "offset": 0, "timestamp": 1234, "timestamp_type": "CreateTime",
                     "key": "k", "value": "v", "headers": [["h", "1"], ["h", "2"], ["null", None]]}
    assert second == {"topic": "t", "partition": 0, "offset": 1, "timestamp": 5678, "timestamp_type": "CreateTime",
                      "key": None, "value": None, "headers": []}


def test_consume_json_base64_for_non_utf8(run, data_dir):
    value = bytes(range(256))
    produce_with_timestamps(data_dir, "t", [(b"\x80key", value, None, 1)])
    (record,) = run.consume_json("t")
    assert list(record) == JSON_KEYS[:5] + ["key", "key_encoding", "value", "value_encoding", "headers"]
    assert base64.b64decode(record["value"]) == value and record["value_encoding"] == "base64"
    assert base64.b64decode(record["key"]) == b"\x80key" and record["key_encoding"] == "base64"


def test_consume_json_log_append_time(run, data_dir):
    produce_with_timestamps(data_dir, "t", [(None, b"v", None, 1)], config={"message.timestamp.type": "LogAppendTime"})
    (record,) = run.consume_json("t")
    assert record["timestamp_type"] == "LogAppendTime" and record["timestamp"] > 1


def test_consume_format_and_json_conflict(ten):
    result = ten("consume", "t", "-e", "--json", "-f", "%s")
    assert result.exit_code == 2 and "either -f or --json" in result.output


# ---- the data directory lock -------------------------------------------------------------------

def test_produce_while_another_process_holds_the_lock(run, data_dir):
    run.ok("produce", "t", input="before\n")
    holder = start_lock_holder(data_dir)
    try:
        result = run("produce", "t", input="during\n")
        assert result.exit_code == 1
        assert f"process {holder.pid}" in result.output
        assert "in use" in result.output and "Traceback" not in result.output
        created = run("topic", "create", "other")
        assert created.exit_code == 1 and f"process {holder.pid}" in created.output
        repaired = run("inspect", "repair", data_dir)
        assert repaired.exit_code == 1 and f"process {holder.pid}" in repaired.output
        # readers take no lock
        assert run.consume_values("t") == ["before"]
        assert run.ok("topic", "list").stdout == "t\n"
        assert json.loads(run.ok("topic", "describe", "t", "--json").stdout)["partitions"][0]["log_end_offset"] == 1
        assert run.ok("inspect", "verify", data_dir).exit_code == 0
    finally:
        stop(holder)
    run.ok("produce", "t", input="after\n")  # the kernel dropped the lock with the process
    assert run.consume_values("t") == ["before", "after"]


def test_lock_message_suggests_only_options_that_exist(run, data_dir):
    """The 'in use' error must not point at options the CLI does not have (e.g. --bootstrap)."""
    holder = start_lock_holder(data_dir)
    try:
        result = run("produce", "t", input="x\n")
    finally:
        stop(holder)
    assert result.exit_code == 1
    if "--bootstrap" in result.output:
        assert "--bootstrap" in run.ok("produce", "--help").stdout, result.output


# ---- the installed console script, end to end --------------------------------------------------

def console_script() -> pathlib.Path:
    script = pathlib.Path(sys.executable).with_name("logbroker")
    assert script.exists(), f"console script not installed next to {sys.executable}"
    return script


def test_console_script_produce_then_consume(tmp_path):
    script = console_script()
    env = dict(os.environ)
    env.pop("LOGBROKER_DATA_DIR", None)
    data = str(tmp_path / "data")
    produced = subprocess.run([script, "--data-dir", data, "produce", "orders", "-K", ":"], input=b"u1:a\nu2:b\n",
                              capture_output=True, timeout=60, cwd=tmp_path, env=env)
    assert produced.returncode == 0, produced.stderr
    assert produced.stderr == b"Created topic orders with 1 partition.\n"
    env["LOGBROKER_DATA_DIR"] = data  # the consumer finds the directory through the environment
    consumed = subprocess.run([script, "consume", "orders", "-e", "-f", "%k=%s\\n"],
                              capture_output=True, timeout=60, cwd=tmp_path, env=env)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout == b"u1=a\nu2=b\n"
    failed = subprocess.run([script, "--data-dir", data, "consume", "missing", "-e"], capture_output=True, timeout=60,
                            cwd=tmp_path, env=env)
    assert failed.returncode == 1
    assert failed.stderr == b"Error: topic 'missing' does not exist\n"


def test_python_dash_m_logbroker(tmp_path):
    result = subprocess.run([sys.executable, "-m", "logbroker", "--help"], capture_output=True, timeout=60,
                            cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"Usage: logbroker ")
    for command in (b"topic", b"produce", b"consume", b"inspect"):
        assert command in result.stdout
    version = subprocess.run([sys.executable, "-m", "logbroker", "--version"], capture_output=True, timeout=60,
                             cwd=tmp_path, env=subprocess_env())
    assert version.returncode == 0 and b"0.1.0" in version.stdout
