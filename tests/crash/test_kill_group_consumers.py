"""SIGKILL the process hosting a group's members, again and again: nothing is lost, and only what was
processed after the last commit is processed again.

One data directory belongs to one process, so the test kills the whole process that hosts the group
(``tools/crash_group_consumer.py``: 3 members polled in turn from one thread, at-least-once: each
batch is written and fsynced to a side-effect file, then committed synchronously; members are
replaced at random to force rebalances; each run picks "range" or "cooperative-sticky").  The topic
has 4 partitions and 2,000 records whose values are unique.  Each round starts the child, SIGKILLs it
after a random delay (every fourth round at a random moment after start, possibly while it opens the
broker or joins), then opens the directory in this process (alternately as the writer, which
recovers it, and read-only) and reads the group's committed offsets.  The embedded broker drops the
members a killed run left in the group when it opens; in one round it keeps them, as a broker serving
remote clients does, and the new members take over only once those expire (6 s sessions).  After
every kill:

  * each commit the child reported as returned (``c <partition> <offset>``) is durable: the committed
    offset is at least that;
  * committed offsets never go backwards;
  * every record below a committed offset is in the side-effect file (processing happened before the
    commit: at-least-once);
  * every record the killed run processed is at or above the committed offset its run started from.

A last run goes on until everything is committed and closes cleanly.  Then every record is in the
side-effect file with its own value; a record processed more than once was either processed again
in a later run and sits at or above the committed offset of the kill before that run (duplicates
come only from after the last commit), or processed again in the same run after a refused commit
covering it (``F`` lines); committed offsets equal the log end offsets; the data directory verifies
clean.  The seed is random and printed with any failure; set CRASH_GROUP_SEED to replay it.
"""

from __future__ import annotations

import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from helpers import ChildProcess
from logbroker import Broker, Producer
from logbroker.storage.log import LATEST_TIMESTAMP

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "crash_group_consumer.py"
TOPIC, GROUP, PARTITIONS, RECORDS = "crash", "crash-group", 4, 2000
KILLS = 8
TIME_BUDGET_S = 40  # hard stop for the kill rounds; a round normally takes about a second
STARTUP_TIMEOUT_S = 20
FINAL_RUN_TIMEOUT_S = 40
CHILD_OPTIONS = ["--members", "3", "--max-poll-records", "10", "--work-ms", "16", "--churn", "0.02"]
STRATEGIES = ["range", "cooperative-sticky"]
EXPIRY_ROUND = 6  # even: the check after the round before (odd) opens read-only, keeping that run's members
LINE = re.compile(rb"R(\d+) m(\d+) (\d+) (\d+) (\S+) \.")
FAILED = re.compile(rb"F (\d+) m(\d+) (\d+) (\d+) (\d+) \.")


class Child(ChildProcess):
    """One run of the harness; notes when it was ready and when its first commit returned."""

    def __init__(self, data_dir: str, side_file: str, run: int, seed: int, extra: list[str]):
        self.first_commit_at = None  # time.monotonic() of the first "c" line
        argv = [sys.executable, str(SCRIPT), data_dir, side_file, str(run), str(seed), "--topic", TOPIC,
                "--group", GROUP, *CHILD_OPTIONS, *extra]
        super().__init__(argv, f"{side_file}.stderr-{run}")

    def on_line(self, line: bytes) -> None:
        if self.first_commit_at is None and line.startswith(b"c "):
            self.first_commit_at = time.monotonic()

    def acknowledged_commits(self) -> dict[int, int]:
        """Highest offset per partition whose commit() had returned (complete lines only)."""
        out: dict[int, int] = {}
        for line in self.lines:
            if line.startswith(b"c ") and line.endswith(b"\n"):
                _, p, offset = line.split()
                out[int(p)] = max(out.get(int(p), 0), int(offset))
        return out


def read_side_file(path: str):
    """(processed, failed): processed = [(run, member, partition, offset, value)] in file order (complete
    lines only), failed = {run: [(partition, first, last)]} from refused commits."""
    processed, failed = [], defaultdict(list)
    if not os.path.exists(path):
        return processed, failed
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            if m := LINE.fullmatch(line):
                run, member, p, offset = map(int, m.groups()[:4])
                processed.append((run, member, p, offset, m.group(5)))
            elif m := FAILED.fullmatch(line):
                run, _member, p, first, last = map(int, m.groups())
                failed[run].append((p, first, last))
    return processed, failed


def committed_offsets(data_dir: str, read_only: bool) -> tuple[dict[int, int], int]:
    """(committed offset per partition, members the group lists: a writer open drops them first)."""
    opener = dict(read_only=True) if read_only else dict(housekeeping=False)
    with Broker.open(data_dir, **opener) as broker:
        found = broker.groups.fetch_offsets(GROUP)
        members = len(broker.groups.describe_group(GROUP).members)
    return {p: offset for (topic, p), (offset, _epoch, _meta) in found.items() if topic == TOPIC}, members


def produce(data_dir: str) -> dict[tuple[int, int], bytes]:
    """The records, as (partition, offset) -> value."""
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.create_topic(TOPIC, PARTITIONS, {"segment.bytes": "16384"})
        with Producer(broker, linger_ms=0) as producer:
            futures = [(b"v%05d" % i, producer.send(TOPIC, b"v%05d" % i, partition=i % PARTITIONS))
                       for i in range(RECORDS)]
            producer.flush()
            return {(f.result().partition, f.result().offset): value for value, f in futures}


def check_after_kill(round_no: int, child: Child, committed: dict, before: dict, processed) -> None:
    for p, offset in child.acknowledged_commits().items():
        assert committed.get(p, 0) >= offset, \
            f"round {round_no}: partition {p}: commit of {offset} returned but {committed.get(p)} is stored"
    for p, offset in before.items():
        assert committed.get(p, 0) >= offset, f"round {round_no}: partition {p} went back: {offset} -> {committed}"
    seen = {(p, o) for _run, _m, p, o, _v in processed}
    for p, offset in committed.items():
        missing = [o for o in range(offset) if (p, o) not in seen]
        assert not missing, f"round {round_no}: partition {p} committed {offset} but never processed {missing[:5]}"
    below = [(p, o) for run, _m, p, o, _v in processed if run == round_no and o < before.get(p, 0)]
    assert not below, f"round {round_no} processed records below its starting commit {before}: {below[:5]}"


def check_final(produced: dict, processed, failed, kill_commits: list[dict], final: dict, ends: dict) -> None:
    assert final == ends, f"committed {final} != log end offsets {ends}"
    occurrences = defaultdict(list)
    for run, member, p, offset, value in processed:
        assert produced.get((p, offset)) == value, f"partition {p} offset {offset}: processed {value!r}"
        occurrences[(p, offset)].append(run)
    lost = sorted(set(produced) - set(occurrences))
    assert not lost, f"{len(lost)} records never processed, e.g. {lost[:5]}"
    for (p, offset), runs in occurrences.items():
        for previous, run in zip(runs, runs[1:]):
            if run != previous:  # processed again in a later run: the kill before it had not committed it
                start = kill_commits[run - 1].get(p, 0)
                assert offset >= start, (f"partition {p} offset {offset} processed in runs {runs}, but run {run} "
                                         f"started from committed offset {start}")
            else:  # processed again in the same run: only after a refused commit of it
                assert any(fp == p and first <= offset <= last for fp, first, last in failed[run]), \
                    f"partition {p} offset {offset} processed twice in run {run} without a refused commit"


@pytest.mark.slow
def test_sigkill_group_members_redelivers_only_what_was_not_committed(tmp_path):
    seed = int(os.environ.get("CRASH_GROUP_SEED") or random.randrange(1 << 32))
    try:
        run_rounds(tmp_path, seed)
    except AssertionError as exc:
        raise AssertionError(f"[seed {seed}; replay with CRASH_GROUP_SEED={seed}] {exc}") from None


def run_rounds(tmp_path, seed: int) -> None:
    from logbroker.inspect import verify_data_dir

    rng = random.Random(seed)
    data_dir, side_file = str(tmp_path / "data"), str(tmp_path / "side-effects.txt")
    produced = produce(data_dir)
    kill_commits: list[dict] = []  # committed offsets read right after each kill
    deadline = time.monotonic() + TIME_BUDGET_S
    kills_mid_work = stale_members = 0
    expiry_note = "the expiry round did not commit"
    strategy = rng.choice(STRATEGIES)
    for round_no in range(KILLS):
        assert time.monotonic() < deadline, f"time budget spent after {round_no} rounds"
        options = ["--strategy", strategy]
        if round_no == EXPIRY_ROUND:  # same strategy as the stale members, or they could never agree
            options.append("--keep-stale-members")  # a writer open by this test would have dropped them
        child = Child(data_dir, side_file, round_no, rng.randrange(1 << 32), options)
        try:
            if round_no % 4 != 3:
                assert child.ready.wait(STARTUP_TIMEOUT_S), "the child never got ready"
            time.sleep(rng.uniform(0.2, 1.0) + (6.2 if round_no == EXPIRY_ROUND else 0))
            was_alive = child.kill()
        finally:
            returncode, stderr = child.reap()
        assert was_alive and returncode == -signal.SIGKILL, (returncode, stderr[-3000:])
        if round_no == EXPIRY_ROUND and stale_members and child.first_commit_at is not None:
            waited = child.first_commit_at - child.ready_at
            assert waited > 4, f"round {round_no}: committed {waited:.1f}s after start; {stale_members} stale members"
            expiry_note = f"the expiry round waited {waited:.1f}s for {stale_members} stale members"
        committed, stale_members = committed_offsets(data_dir, read_only=round_no % 2 == 1)
        processed, _failed = read_side_file(side_file)
        check_after_kill(round_no, child, committed, kill_commits[-1] if kill_commits else {}, processed)
        kills_mid_work += sum(committed.values()) < RECORDS
        kill_commits.append(committed)
        if round_no + 1 != EXPIRY_ROUND:
            strategy = rng.choice(STRATEGIES)

    child = Child(data_dir, side_file, KILLS, rng.randrange(1 << 32), ["--until-done", "--strategy", strategy])
    try:
        child.proc.wait(timeout=FINAL_RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
    finally:
        returncode, stderr = child.reap()
    assert returncode == 0 and child.finished, f"the final run did not finish cleanly: {returncode} {stderr[-3000:]}"
    processed, failed = read_side_file(side_file)
    with Broker.open(data_dir, housekeeping=False) as broker:
        final = {p: o for (t, p), (o, _e, _m) in broker.groups.fetch_offsets(GROUP).items() if t == TOPIC}
        ends = {p: broker.list_offsets(TOPIC, p, LATEST_TIMESTAMP)[0] for p in range(PARTITIONS)}
    check_final(produced, processed, failed, kill_commits, final, ends)
    assert verify_data_dir(data_dir) == []
    assert kills_mid_work >= KILLS // 2, f"only {kills_mid_work} of {KILLS} kills hit before the work was done"
    again = len(processed) - len(produced)
    print(f"seed {seed}: {KILLS} kills, {kills_mid_work} before all was committed; {again} records processed again, "
          f"{sum(len(f) for f in failed.values())} refused commits; {expiry_note}")
