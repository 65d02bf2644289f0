"""The delivery-semantics examples in examples/, run as real processes and SIGKILLed where a crash is claimed.

Each example stops at its "crash window" when asked (``--crash-window-after N``: after batch N it
prints ``crash-window`` and waits); the test SIGKILLs it there, looks at what it left (side effects,
the group's committed offsets), runs it again to the end (``--exit-at-end``) and checks the claim:

  * at-least-once (process, then commit): the batch processed but not committed is delivered again
    and processed twice; nothing is lost; nothing else is duplicated;
  * at-most-once (commit, then process): the committed but unprocessed batch is lost for good;
    nothing is processed twice;
  * effectively-once (results and offsets in one sqlite transaction): a kill between the sqlite
    commit and the group commit leaves the group's offsets behind, yet nothing is stored twice; and
    SIGKILLs at random moments while it works through 3,000 records leave every record stored
    exactly once.
"""

from __future__ import annotations

import os
import pathlib
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest

from logbroker import Broker, Producer
from logbroker.storage.log import LATEST_TIMESTAMP

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TOPIC = "events"
TIMEOUT_S = 30  # for any one child process


def produce(data_dir: str, n: int, partitions: int) -> dict[tuple[int, int], bytes]:
    """``n`` records with unique values, spread over the partitions: (partition, offset) -> value."""
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.create_topic(TOPIC, partitions)
        with Producer(broker, linger_ms=0) as producer:
            futures = [(b"value-%d" % i, producer.send(TOPIC, b"value-%d" % i, partition=i % partitions))
                       for i in range(n)]
            producer.flush()
            return {(f.result().partition, f.result().offset): value for value, f in futures}


def state(data_dir: str, group: str) -> tuple[dict[int, int], dict[int, int]]:
    """(the group's committed offsets, the log end offsets), per partition."""
    with Broker.open(data_dir, read_only=True) as broker:
        committed = {p: o for (t, p), (o, _e, _m) in broker.groups.fetch_offsets(group).items() if t == TOPIC}
        ends = {p: broker.list_offsets(TOPIC, p, LATEST_TIMESTAMP)[0] for p in range(broker.partition_count(TOPIC))}
    return committed, ends


def start(example: str, data_dir: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("LOGBROKER_DATA_DIR", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, str(EXAMPLES / example), data_dir, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT_S) -> tuple[int, str, str]:
    """Wait for the child (bounded; killed if it overstays); return (returncode, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # only the process this test started
        out, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, out.decode(), err.decode()


def kill_in_crash_window(proc: subprocess.Popen) -> None:
    """Wait (bounded) for the child to reach its crash window, then SIGKILL it there."""
    deadline = time.monotonic() + TIMEOUT_S
    seen = b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = proc.stdout.readline() if ready else b""
            seen += line
            if line == b"crash-window\n" or not line:
                break
    finally:
        reached = seen.endswith(b"crash-window\n")
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # only the process this test started
        returncode, _out, err = finish(proc)
    assert reached, f"the example never reached its crash window: {returncode} {seen!r} {err[-3000:]}"
    assert returncode == -signal.SIGKILL, (returncode, err[-3000:])


def run_to_end(example: str, data_dir: str, *args: str) -> str:
    returncode, out, err = finish(start(example, data_dir, *args, "--exit-at-end"))
    assert returncode == 0, (returncode, err[-3000:])
    return out


def processed(path) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) per line the example appended, in order."""
    with open(path, "rb") as f:
        return [(int(p), int(o), v) for p, o, v in (line.split() for line in f.read().splitlines())]


def test_at_least_once_redelivers_what_was_processed_but_not_committed(tmp_path):
    data_dir, out = str(tmp_path / "data"), tmp_path / "out.txt"
    produced = produce(data_dir, 40, 2)
    options = ["--out", str(out), "--max-poll-records", "5"]
    kill_in_crash_window(start("at_least_once.py", data_dir, *options, "--crash-window-after", "3"))
    committed, _ = state(data_dir, "at-least-once")
    before = processed(out)
    uncommitted = {(p, o) for p, o, _v in before if o >= committed.get(p, 0)}
    assert len(before) == 15 and 1 <= len(uncommitted) <= 5, (before, committed)  # 3 batches, the last uncommitted

    run_to_end("at_least_once.py", data_dir, *options)
    after = processed(out)
    counts = Counter((p, o) for p, o, _v in after)
    assert set(counts) == set(produced), "records were lost"
    assert {key for key, n in counts.items() if n > 1} == uncommitted  # exactly the uncommitted batch, again
    assert max(counts.values()) == 2
    assert all(produced[(p, o)] == v for p, o, v in after)
    committed, ends = state(data_dir, "at-least-once")
    assert committed == ends


def test_at_most_once_loses_what_was_committed_but_not_processed(tmp_path):
    data_dir, out = str(tmp_path / "data"), tmp_path / "out.txt"
    produced = produce(data_dir, 40, 2)
    options = ["--out", str(out), "--max-poll-records", "5"]
    kill_in_crash_window(start("at_most_once.py", data_dir, *options, "--crash-window-after", "3"))
    committed, _ = state(data_dir, "at-most-once")
    before = {(p, o) for p, o, _v in processed(out)}
    lost = {(p, o) for p, end in committed.items() for o in range(end)} - before
    assert len(before) == 10 and 1 <= len(lost) <= 5, (before, committed)  # 3 batches committed, 2 processed

    run_to_end("at_most_once.py", data_dir, *options)
    after = processed(out)
    counts = Counter((p, o) for p, o, _v in after)
    assert max(counts.values()) == 1, "a record was processed twice"
    assert set(produced) - set(counts) == lost  # exactly the committed, unprocessed batch is missing
    assert all(produced[(p, o)] == v for p, o, v in after)
    committed, ends = state(data_dir, "at-most-once")
    assert committed == ends


def stored(db_path) -> tuple[Counter, dict, dict]:
    """(times each (partition, offset) is in the results table, stored next offsets per partition,
    (partition, offset) -> stored value)."""
    db = sqlite3.connect(str(db_path))
    try:
        counts = Counter(db.execute('SELECT partition, "offset" FROM results WHERE topic = ?', (TOPIC,)).fetchall())
        offsets = dict(db.execute("SELECT partition, next_offset FROM offsets WHERE topic = ?", (TOPIC,)).fetchall())
        values = dict(((p, o), v) for p, o, v in db.execute('SELECT partition, "offset", value FROM results'))
    finally:
        db.close()
    return counts, offsets, values


def test_effectively_once_stores_nothing_twice_when_the_group_commit_is_lost(tmp_path):
    data_dir, db_path = str(tmp_path / "data"), tmp_path / "results.sqlite"
    produced = produce(data_dir, 40, 2)
    options = ["--db", str(db_path), "--max-poll-records", "5"]
    kill_in_crash_window(start("effectively_once_sqlite.py", data_dir, *options, "--crash-window-after", "3"))
    committed, _ = state(data_dir, "effectively-once")
    counts, offsets, _ = stored(db_path)
    assert sum(counts.values()) == 15
    assert sum(committed.values()) == 10 and sum(offsets.values()) == 15  # the group's offsets lag behind

    out = run_to_end("effectively_once_sqlite.py", data_dir, *options)
    assert "dropped" not in out  # the seek to the stored offsets avoided the re-reads, not the guard
    counts, offsets, values = stored(db_path)
    assert set(counts) == set(produced) and max(counts.values()) == 1
    assert values == produced
    committed, ends = state(data_dir, "effectively-once")
    assert offsets == ends and committed == ends


def wait_for_progress(db_path, stored_before: int, proc: subprocess.Popen) -> None:
    """Until the results table holds more than ``stored_before`` rows (bounded in time)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if os.path.exists(db_path) and sum(stored(db_path)[0].values()) > stored_before:
                return
        except sqlite3.OperationalError:  # the child has not created its tables yet
            pass
        time.sleep(0.01)
    raise AssertionError(f"no progress past {stored_before} stored records: {proc.poll()}")


@pytest.mark.slow
def test_effectively_once_survives_sigkill_at_random_moments(tmp_path):
    seed = int(os.environ.get("DELIVERY_SEED") or random.randrange(1 << 32))
    rng = random.Random(seed)
    data_dir, db_path = str(tmp_path / "data"), tmp_path / "results.sqlite"
    produced = produce(data_dir, 3000, 4)
    options = ["--db", str(db_path), "--max-poll-records", "50", "--work-ms", "60"]
    progress = [0]
    deadline = time.monotonic() + 60
    for round_no in range(6):
        assert time.monotonic() < deadline, f"[seed {seed}] time budget spent"
        proc = start("effectively_once_sqlite.py", data_dir, *options)
        try:
            if round_no % 2 == 0:  # once it has stored something, at a random moment of its work
                wait_for_progress(db_path, progress[-1], proc)
                time.sleep(rng.uniform(0.0, 0.5))
            else:  # at a random moment after start: opening the broker, joining, working
                time.sleep(rng.uniform(0.1, 1.5))
            alive = proc.poll() is None
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)  # only the process this test started
            returncode, out, err = finish(proc)
        assert alive and returncode == -signal.SIGKILL, (seed, returncode, err[-3000:])
        assert "dropped" not in out, f"[seed {seed}] it read records again that it had stored: {out}"
        counts, offsets, _ = stored(db_path)
        assert max(counts.values(), default=1) == 1, f"[seed {seed}] a record stored twice after a kill"
        assert sum(offsets.values()) == sum(counts.values()), f"[seed {seed}] offsets and results disagree"
        progress.append(sum(counts.values()))
    mid_work = sum(1 for a, b in zip(progress, progress[1:]) if a < b < len(produced))
    assert mid_work >= 3, f"[seed {seed}] too few kills landed while it worked: {progress}"

    out = run_to_end("effectively_once_sqlite.py", data_dir, *options)
    assert "dropped" not in out, f"[seed {seed}] it read records again that it had stored: {out}"
    print(f"seed {seed}: records stored after each kill: {progress}")
    counts, offsets, values = stored(db_path)
    duplicates = [key for key, n in counts.items() if n > 1]
    assert not duplicates, f"[seed {seed}] stored more than once: {duplicates[:5]}"
    assert set(counts) == set(produced), f"[seed {seed}] lost: {sorted(set(produced) - set(counts))[:5]}"
    assert values == produced
    _committed, ends = state(data_dir, "effectively-once")
    assert offsets == ends
