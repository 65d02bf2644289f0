"""``logbroker queue receive|describe|list|redrive``."""

from __future__ import annotations

import json
import subprocess
import sys

from logbroker.broker import Broker

from .conftest import start_lock_holder, stop, subprocess_env, wait_for_line


def produce(run, topic: str, lines: list[str]) -> None:
    run.ok("produce", topic, input="".join(line + "\n" for line in lines))


def receive(run, *args: str) -> list[str]:
    """``queue receive`` waiting 0.1 s for records rather than 1 s, unless told otherwise."""
    if "--timeout" not in args and "-n" not in args:
        args += ("--timeout", "0.1")
    return run.ok("queue", "receive", *args).stdout.splitlines()


def test_receive_prints_and_acknowledges(run):
    produce(run, "t", ["a", "b", "c"])
    assert receive(run, "t", "-g", "w") == ["a", "b", "c"]
    assert receive(run, "t", "-g", "w") == []
    produce(run, "t", ["d"])
    assert receive(run, "t", "-g", "w", "--timeout", "0.1") == ["d"]
    assert receive(run, "t", "-g", "other") == ["a", "b", "c", "d"]  # each share group has its own state


def test_count_stops_early_and_the_rest_stays_for_the_next_receive(run):
    produce(run, "t", ["a", "b", "c"])
    assert receive(run, "t", "-g", "w", "-n", "2") == ["a", "b"]
    assert receive(run, "t", "-g", "w", "-n", "5", "--timeout", "0.2") == ["c"]


def test_release_delivers_again_with_a_higher_count(run):
    produce(run, "t", ["a"])
    first = [json.loads(line) for line in receive(run, "t", "-g", "w", "--release", "--json")]
    assert [(r["value"], r["delivery_count"], r["offset"]) for r in first] == [("a", 1, 0)]
    second = [json.loads(line) for line in receive(run, "t", "-g", "w", "--json")]
    assert [(r["value"], r["delivery_count"]) for r in second] == [("a", 2)]
    assert receive(run, "t", "-g", "w") == []


def test_reject_dead_letters_and_redrive_moves_back(run):
    produce(run, "t", ["a", "b"])
    assert receive(run, "t", "-g", "w", "--reject", "--dead-letter-topic", "t.dlq", "-f", "%o:%s\\n") == ["0:a", "1:b"]
    assert receive(run, "t", "-g", "w") == []
    letters = run.consume_json("t.dlq")
    assert [r["value"] for r in letters] == ["a", "b"]
    assert ["logbroker.dlq.reason", "rejected"] in letters[0]["headers"]
    moved = run.ok("queue", "redrive", "t.dlq", "--to", "t", "--rate", "1000").stdout
    assert moved == "Moved 2 records from t.dlq to t.\n"
    assert run.ok("queue", "redrive", "t.dlq", "--to", "t").stdout == "Moved 0 records from t.dlq to t.\n"
    assert receive(run, "t", "-g", "w") == ["a", "b"]
    moved = run.consume_json("t", "-o", "2")
    assert all(not k.startswith("logbroker.dlq.") for r in moved for k, _ in r["headers"])


def test_redrive_with_max_and_an_own_group(run):
    produce(run, "t", ["a", "b", "c"])
    receive(run, "t", "-g", "w", "--reject", "--dead-letter-topic", "dlq")
    redrive = ("queue", "redrive", "dlq", "--to", "t", "--group", "r", "--rate", "1000")
    assert run.ok(*redrive, "--max", "1").stdout.startswith("Moved 1 record ")
    assert run.ok(*redrive).stdout.startswith("Moved 2 ")
    result = run("queue", "redrive", "dlq", "--to", "missing")
    assert result.exit_code == 1 and "Error:" in result.output


def test_group_settings_given_once_are_kept_by_later_receives(run):
    produce(run, "t", ["a"])
    receive(run, "t", "-g", "w", "--max-deliveries", "3", "--dead-letter-topic", "d", "--visibility-timeout", "7",
            "--release")
    receive(run, "t", "-g", "w", "--release")  # no options: the group's settings stay
    config = json.loads(run.ok("queue", "describe", "w", "--json").stdout)["config"]
    assert config == {"lock_duration_ms": 7000, "delivery_count_limit": 3, "dead_letter_topic": "d",
                      "auto_offset_reset": "earliest"}
    receive(run, "t", "-g", "w", "--dead-letter-topic", "", "-n", "1")
    config = json.loads(run.ok("queue", "describe", "w", "--json").stdout)["config"]
    assert config["dead_letter_topic"] is None and config["delivery_count_limit"] == 3


def test_auto_offset_reset_latest_for_a_new_group(run):
    produce(run, "t", ["old"])
    assert receive(run, "t", "-g", "w", "--auto-offset-reset", "latest") == []
    produce(run, "t", ["new"])
    assert receive(run, "t", "-g", "w") == ["new"]


def test_describe_and_list(run, data_dir):
    produce(run, "t", ["a", "b", "c", "d"])
    receive(run, "t", "-g", "w", "-n", "1")
    receive(run, "t", "-g", "w", "-n", "1", "--release")
    with Broker.open(data_dir, housekeeping=False) as broker:
        from logbroker.client.queue import Queue

        with Queue(broker, group="w", topics=["t"], member_id="m-1") as q:
            assert len(q.receive(max_records=1)) == 1  # b again, held while describing
            info = broker.shares.describe("w")
    assert [m["member_id"] for m in info["members"]] == ["m-1"]
    info = json.loads(run.ok("queue", "describe", "w", "--json").stdout)
    [part] = info["partitions"]
    assert (part["start_offset"], part["log_end_offset"], part["acknowledged"], part["lag"]) == (1, 4, 0, 3)
    assert part["available"] == 3 and part["acquired"] == 0 and part["delivery_counts"] == {"2": 1}
    assert part["oldest_available_offset"] == 1 and part["oldest_available_age_ms"] >= 0
    text = run.ok("queue", "describe", "w").stdout
    lines = text.splitlines()
    assert lines[0] == "Group: w\tMembers: 0"
    assert "Visibility timeout: 30 s" in lines[1] and "Max deliveries: 5" in lines[1]
    assert lines[2].split() == ["TOPIC", "PARTITION", "START-OFFSET", "LOG-END-OFFSET", "IN-FLIGHT", "AVAILABLE",
                                "ACKNOWLEDGED", "ARCHIVED", "LAG", "OLDEST-AGE-MS", "DELIVERIES"]
    assert lines[3].split()[:9] == ["t", "0", "1", "4", "0", "3", "0", "0", "3"]
    assert lines[3].split()[-1] == "2x1"
    receive(run, "t", "-g", "v")
    assert run.ok("queue", "list").stdout.splitlines() == ["v", "w"]
    assert json.loads(run.ok("queue", "list", "--json").stdout) == ["v", "w"]


def test_describe_an_unknown_group(run):
    produce(run, "t", ["a"])
    result = run("queue", "describe", "nope")
    assert result.exit_code == 1 and "nope" in result.output


def test_usage_errors(run):
    result = run("queue", "receive", "t", "-g", "w", "-f", "%s", "--json")
    assert result.exit_code == 2 and "either -f or --json" in result.output
    assert run("queue", "receive", "t").exit_code == 2  # -g is required


def test_describe_and_list_over_the_network_are_refused_clearly(run):
    for args in (["--bootstrap", "127.0.0.1:1", "queue", "list"], ["queue", "describe", "w", "--bootstrap",
                                                                       "127.0.0.1:1"]):
        result = run(*args)
        assert result.exit_code == 1 and "ShareGroupDescribe" in result.output, result.output
        assert "confluent-kafka 2.16" in result.output and "data directory" in result.output


SERVER_LIKE = """
import sys, time
from logbroker.broker import Broker
broker = Broker.open(sys.argv[1], housekeeping=False, listen="127.0.0.1:19092")
print("ready", flush=True)
time.sleep(60)
"""


def test_describe_and_list_read_the_files_of_a_directory_a_server_owns(run, data_dir):
    produce(run, "t", ["a"])
    receive(run, "t", "-g", "w")
    proc = subprocess.Popen([sys.executable, "-c", SERVER_LIKE, data_dir], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=subprocess_env())
    try:
        wait_for_line(proc, "ready")
        assert run.ok("queue", "list").stdout == "w\n"  # reading works next to it
        assert json.loads(run.ok("queue", "describe", "w", "--json").stdout)["partitions"][0]["start_offset"] == 1
    finally:
        stop(proc)


def test_a_data_directory_locked_by_another_process_names_it(run, data_dir):
    produce(run, "t", ["a"])
    proc = start_lock_holder(data_dir)
    try:
        result = run("queue", "receive", "t", "-g", "w")
        assert result.exit_code == 1 and "Error:" in result.output and str(proc.pid) in result.output
    finally:
        stop(proc)


def test_delete_forgets_a_share_group(run):
    produce(run, "t", ["a", "b"])
    receive(run, "t", "-g", "w", "--max-deliveries", "3", "-n", "1")
    assert "w" in run.ok("queue", "list").stdout.split()
    assert "Deleted share group w." in run.ok("queue", "delete", "w").stdout
    assert run.ok("queue", "list").stdout.split() == []
    failed = run("queue", "delete", "w", "nope")
    assert failed.exit_code == 1 and "cannot delete share group w" in failed.output
    assert receive(run, "t", "-g", "w") == ["a", "b"]  # a new group of that name starts afresh
