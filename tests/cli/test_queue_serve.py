"""``logbroker queue receive|redrive`` against a real ``logbroker serve``: with --bootstrap, and without it
on a data directory the server owns (the CLI then talks to that server, as the other writing commands
do); ``queue list|describe`` keep reading the files next to it.  One server per module; every wait is
bounded."""

from __future__ import annotations

import json

from .conftest import Cli
from .test_bootstrap_serve import remote, server  # noqa: F401  (fixtures: one server for this module)


def receive_json(call, *args) -> list[tuple]:
    out = call("queue", "receive", *args, "--json").stdout
    return [(r["value"], r["delivery_count"]) for r in map(json.loads, out.splitlines())]


def test_receive_release_reject_and_redrive_with_bootstrap(remote):
    remote("topic", "create", "jobs", "-p", "2")
    remote("produce", "jobs", "-p", "0", input="a\nb\n")
    remote("produce", "jobs", "-p", "1", input="c\n")
    # a new group starts at earliest: what was produced before is received; -n stops early
    first = remote("queue", "receive", "jobs", "-g", "w", "-n", "2").stdout.splitlines()
    assert len(first) == 2
    rest = remote("queue", "receive", "jobs", "-g", "w", "-n", "1", "--timeout", "5").stdout.splitlines()
    assert sorted(first + rest) == ["a", "b", "c"]
    remote("produce", "jobs", "-p", "0", input="d\n")
    # --release over the network: one batch, released (delivered again, count 2)
    assert receive_json(remote, "jobs", "-g", "w", "--release", "-n", "1", "--timeout", "5") == [("d", 1)]
    assert receive_json(remote, "jobs", "-g", "w", "-n", "1", "--timeout", "5") == [("d", 2)]
    assert remote("queue", "receive", "jobs", "-g", "w").stdout == ""
    # --reject with a dead-letter topic set through the command's option (IncrementalAlterConfigs)
    remote("produce", "jobs", "-p", "1", input="bad\n")
    rejected = remote("queue", "receive", "jobs", "-g", "w", "-n", "1", "--timeout", "5", "--reject",
                      "--dead-letter-topic", "jobs.dlq", "-f", "%s\\n").stdout
    assert rejected == "bad\n"
    letters = [json.loads(line) for line in remote("consume", "jobs.dlq", "-e", "--json").stdout.splitlines()]
    assert [r["value"] for r in letters] == ["bad"] and ["logbroker.dlq.reason", "rejected"] in letters[0]["headers"]
    moved = remote("queue", "redrive", "jobs.dlq", "--to", "jobs", "--rate", "1000").stdout
    assert moved == "Moved 1 record from jobs.dlq to jobs.\n"
    assert remote("queue", "redrive", "jobs.dlq", "--to", "jobs").stdout == "Moved 0 records from jobs.dlq to jobs.\n"
    assert remote("queue", "receive", "jobs", "-g", "w", "-n", "1", "--timeout", "5").stdout == "bad\n"
    missing = remote("queue", "redrive", "jobs.dlq", "--to", "nowhere", ok=False)
    assert missing.exit_code == 1 and missing.output.startswith("Error: ")
    # describe / list over the network: refused clearly
    refused = remote("queue", "describe", "w", ok=False)
    assert refused.exit_code == 1 and "ShareGroupDescribe" in refused.output


def test_queue_commands_use_the_server_owning_the_data_dir(server):
    local = Cli(server.data_dir)  # no --bootstrap: only the data directory
    env = {"LOGBROKER_BOOTSTRAP": ""}
    local.ok("topic", "create", "owned-q", env=env)
    local.ok("produce", "owned-q", input="x\ny\n", env=env)
    got = local.ok("queue", "receive", "owned-q", "-g", "owners", "-n", "2", "--timeout", "10",
                   "--visibility-timeout", "9", "--reject", "--dead-letter-topic", "owned-q.dlq", env=env)
    assert sorted(got.stdout.splitlines()) == ["x", "y"]
    moved = local.ok("queue", "redrive", "owned-q.dlq", "--to", "owned-q", "--rate", "1000", env=env).stdout
    assert moved == "Moved 2 records from owned-q.dlq to owned-q.\n"
    again = local.ok("queue", "receive", "owned-q", "-g", "owners", "-n", "2", "--timeout", "10", env=env)
    assert sorted(again.stdout.splitlines()) == ["x", "y"]
    # list and describe read the files, next to the server: the settings written over the network are there
    assert "owners" in local.ok("queue", "list", env=env).stdout.splitlines()
    info = json.loads(local.ok("queue", "describe", "owners", "--json", env=env).stdout)
    assert info["config"] == {"lock_duration_ms": 9000, "delivery_count_limit": 5,
                              "dead_letter_topic": "owned-q.dlq", "auto_offset_reset": "earliest"}
    assert [p["start_offset"] for p in info["partitions"]] == [4]
