"""SIGKILL the process hosting a share group's Queues, again and again: no record is acknowledged twice,
each dead letter is copied exactly once, and nothing is lost.

One data directory belongs to one process, so killing "the broker" kills its embedded consumers too:
the test kills the whole process (``tools/crash_queue.py``: an embedded Broker and 3 ``Queue``
consumers of one share group, one thread each, visibility timeout 0.5 s, ``max_deliveries`` 3, a
dead-letter topic).  The topic has 3 partitions and 1,500 records with unique values; every 37th is
*poison* and always rejected.  Consumers release other records at random (they come back; some run out
of deliveries and are dead-lettered), sometimes leave one unsettled (its lock expires), sometimes ack
after the timeout (refused), sometimes extend the locks first (then the late ack must succeed), and
sometimes close their Queue and open a new one.  Each consumer fsyncs ``T`` lines before an ack call
and ``A`` (accepted) or ``N`` (refused) lines after it; the child verifies nothing.

Each round starts the child, SIGKILLs it after a random delay (every fourth round at a random moment
after start, possibly while it opens the broker or finishes dead letters of the previous kill; in
another fourth as soon as the dead-letter topic's file grows, so the kill lands between a copy and its
ARCHIVED state record, a window of about one fsync that random kills seldom hit), then
opens the directory in this process (alternately read-only and as the writer, which finishes pending
dead letters) and reads the dead-letter topic and ``__share_group_state`` (replayed here, with
SharePartition.replay, independently of broker/shares.py's loader).  After every kill:

  * no record has two ``A`` lines (a second accept of a record is refused by the broker);
  * every ``A`` record is durably acknowledged (below the share-partition start offset, or
    ACKNOWLEDGED), is not poison and is not in the dead-letter topic;
  * the dead-letter topic holds each source (topic, partition, offset) at most once (from the
    ``logbroker.dlq.*`` headers), as a copy of its key, value and headers; the reason is ``rejected``
    exactly for poison records (``delivery_count_limit`` for a poison record only if its reject was
    refused); the delivery count is 1..max_deliveries, and exactly max_deliveries when the deliveries
    ran out;
  * each dead-lettered record is ARCHIVED or ARCHIVING in the state (or below the start offset), and
    each ARCHIVED record in the window was copied; after a writer open none is left ARCHIVING;
  * no delivery count in the state exceeds max_deliveries; the start offsets the broker's own
    ``describe`` reports equal the replayed ones;
  * a consumer's run has at most one batch (``--max-batch`` records) whose ack call has no outcome line;
    an extended batch's late ack is never refused.

A last run goes on until every share-partition's start offset equals the log end offset, and closes
cleanly.  Then, besides the checks above: ``describe`` shows nothing acquired, available or being
dead-lettered and lag 0 on every partition; every record was accepted or dead-lettered, except records
whose ``A`` line a kill lost between a successful ack and the side-file write: each such record is in
an ack call without an outcome in a killed run, and there are at most kills x consumers x batch size of
them (and the broker finished them: its start offsets are at the log end, and, not being dead-lettered
with no gaps in the topic, they were acknowledged); every poison record is dead-lettered; at least
one record ran out of deliveries; the data directory verifies clean.  The seed is random and printed
with any failure; set CRASH_QUEUE_SEED to replay it.
"""

from __future__ import annotations

import glob
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from typing import NamedTuple

import pytest

from helpers import ChildProcess
from logbroker import Broker, Producer
from logbroker.groups.share_partition import (ACKNOWLEDGED, ARCHIVED, ARCHIVING, SharePartition)
from logbroker.groups.share_state_log import SHARE_STATE_TOPIC, decode_key, dead_letter_source
from logbroker.storage.log import LATEST_TIMESTAMP

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "crash_queue.py"
KILLS = 10
TIME_BUDGET_S = 40  # hard stop for the kill rounds; a round normally takes one or two seconds
STARTUP_TIMEOUT_S = 20
DEAD_LETTER_WATCH_S = 1.5
FINAL_RUN_TIMEOUT_S = 40
LINE = re.compile(rb"([TANJEU]) (\d+) (\d+) (\d+) (-?\d+) \.")
DLQ_HEADER = "logbroker.dlq."
INVALID_RECORD_STATE = 121


class Layout(NamedTuple):
    """The topic, the share group and its settings (test_kill_share_consumers.py has its own)."""

    topic: str
    group: str
    dlq: str
    partitions: int = 3
    records: int = 1500
    consumers: int = 3
    max_batch: int = 8
    max_deliveries: int = 3


LAYOUT = Layout("crash-q", "crash-share", "crash-q-dlq")
CHILD_OPTIONS = ["--topic", LAYOUT.topic, "--group", LAYOUT.group, "--dead-letter-topic", LAYOUT.dlq,
                 "--consumers", str(LAYOUT.consumers), "--max-batch", str(LAYOUT.max_batch),
                 "--max-deliveries", str(LAYOUT.max_deliveries), "--visibility-timeout", "0.5",
                 "--release", "0.2", "--drop", "0.03", "--late", "0.03", "--extend", "0.015", "--churn", "0.01",
                 "--work-ms", "20"]


def value_of(i: int) -> bytes:
    """As tools/crash_queue.py: unique values; every 37th record is poison (starts with ``p``)."""
    return (b"p%05d" if i % 37 == 0 else b"v%05d") % i


class Child(ChildProcess):
    """One run of the harness (tools/crash_queue.py)."""

    def __init__(self, data_dir: str, side_file: str, run: int, seed: int, extra: list[str]):
        argv = [sys.executable, str(SCRIPT), data_dir, side_file, str(run), str(seed), *CHILD_OPTIONS, *extra]
        super().__init__(argv, f"{side_file}.stderr-{run}")


# ---- shared with test_kill_share_consumers.py ------------------------------------------------------

def read_side_files(side_file: str, consumers: int) -> list[tuple[bytes, int, int, int, int, int]]:
    """[(kind, run, consumer, partition, offset, code)] from ``SIDE_FILE.c<consumer>``, complete lines
    only, in file order per consumer."""
    out = []
    for consumer in range(consumers):
        path = f"{side_file}.c{consumer}"
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            for line in f.read().split(b"\n"):
                if m := LINE.fullmatch(line):
                    run, p, offset, code = map(int, m.groups()[1:])
                    out.append((m.group(1), run, consumer, p, offset, code))
    return out


def produce(data_dir: str, layout: Layout) -> dict[tuple[int, int], tuple[bytes, bytes]]:
    """The records, as (partition, offset) -> (key, value)."""
    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.create_topic(layout.topic, layout.partitions, {"segment.bytes": "16384"})
        with Producer(broker, linger_ms=0) as producer:
            futures = [(b"k%05d" % i, value_of(i),
                        producer.send(layout.topic, value_of(i), b"k%05d" % i, partition=i % layout.partitions,
                                      headers={"src": b"crash"}))
                       for i in range(layout.records)]
            producer.flush()
            return {(f.result().partition, f.result().offset): (key, value) for key, value, f in futures}


class BrokerView:
    """What the data directory holds: the share-partitions (``__share_group_state`` replayed here with
    SharePartition.replay, independently of broker/shares.py's loader), then the dead letters (read
    after the state: a copy is made before its ARCHIVED record), and the broker's own ``describe``."""

    def __init__(self, data_dir: str, writer: bool, layout: Layout):
        opener = dict(housekeeping=False) if writer else dict(read_only=True)
        with Broker.open(data_dir, **opener) as broker:
            groups = broker.shares.list_groups()  # loads the state (a writer finishes pending dead letters)
            self.described = broker.shares.describe(layout.group) if layout.group in groups else None
            self.states: dict[int, SharePartition] = {}
            if SHARE_STATE_TOPIC in broker.list_topics():
                for p in range(broker.partition_count(SHARE_STATE_TOPIC)):
                    for r in broker.iter_records(SHARE_STATE_TOPIC, p):
                        if r.key is None:
                            continue
                        key = decode_key(r.key)
                        if key[0] == "state" and key[1:3] == (layout.group, layout.topic):
                            sp = self.states.setdefault(key[4], SharePartition(
                                start_offset=0, delivery_count_limit=layout.max_deliveries, dead_letter_queue=True))
                            sp.replay(r.value)
            self.dead_letters = []  # (headers, key, value)
            if layout.dlq in broker.list_topics():
                for p in range(broker.partition_count(layout.dlq)):
                    for r in broker.iter_records(layout.dlq, p):
                        self.dead_letters.append((r.headers, r.key, r.value))
            self.ends = {p: broker.list_offsets(layout.topic, p, LATEST_TIMESTAMP)[0] for p in range(layout.partitions)}

    def settled(self) -> int:
        """How many records are settled for good: the sum of the start offsets."""
        return sum(sp.start_offset for sp in self.states.values())


def dead_letter_index(view: BrokerView, produced: dict, where: str, layout: Layout) -> dict:
    """(partition, offset) -> (reason, delivery count) of each dead letter, checking each copy."""
    out: dict[tuple[int, int], tuple[str, int]] = {}
    for headers, key, value in view.dead_letters:
        source = dead_letter_source(headers)
        assert source is not None, f"{where}: a dead letter without its source headers: {headers}"
        group, topic, p, offset = source
        assert (group, topic) == (layout.group, layout.topic), f"{where}: a dead letter of {group}/{topic}"
        assert (p, offset) not in out, f"{where}: partition {p} offset {offset} dead-lettered twice"
        h = dict(headers)
        assert (key, value) == produced.get((p, offset)), \
            f"{where}: the dead letter of {p}@{offset} holds {key!r}={value!r}, not {produced.get((p, offset))}"
        assert h.get("src") == b"crash", f"{where}: the dead letter of {p}@{offset} lost its headers: {headers}"
        reason, count = h[DLQ_HEADER + "reason"].decode(), int(h[DLQ_HEADER + "delivery.count"])
        assert 1 <= count <= layout.max_deliveries, f"{where}: {p}@{offset} dead-lettered with delivery count {count}"
        assert reason in ("rejected", "delivery_count_limit"), f"{where}: {p}@{offset}: reason {reason!r}"
        if reason == "delivery_count_limit":
            assert count == layout.max_deliveries, f"{where}: {p}@{offset} ran out of deliveries at count {count}"
        out[(p, offset)] = (reason, count)
    return out


def check_view(where: str, view: BrokerView, produced: dict, lines, layout: Layout, *, writer: bool) -> dict:
    """The checks after every kill (the module docstring lists them); returns the dead-letter index."""
    accepted = Counter((p, o) for kind, _r, _c, p, o, _code in lines if kind == b"A")
    twice = sorted(k for k, n in accepted.items() if n > 1)
    assert not twice, f"{where}: acknowledged twice: {twice[:5]} " + \
        str([line for line in lines if (line[3], line[4]) in twice[:1]])
    letters = dead_letter_index(view, produced, where, layout)
    both = sorted(set(accepted) & set(letters))
    assert not both, f"{where}: both acknowledged and dead-lettered: {both[:5]}"
    poison = {k for k, (_key, value) in produced.items() if value.startswith(b"p")}
    assert not set(accepted) & poison, f"{where}: poison acknowledged: {sorted(set(accepted) & poison)[:5]}"
    refused_rejects = {(p, o) for kind, _r, _c, p, o, _code in lines if kind == b"J"}
    for k, (reason, _count) in letters.items():
        if k in poison:
            assert reason == "rejected" or k in refused_rejects, f"{where}: poison {k} dead-lettered as {reason}"
        else:
            assert reason != "rejected", f"{where}: {k} was never rejected but is dead-lettered as rejected"
    for (p, o) in accepted:
        sp = view.states.get(p)
        assert sp is not None and (o < sp.start_offset or sp.state_of(o)[0] == ACKNOWLEDGED), \
            f"{where}: {p}@{o} was acknowledged but the state says {sp and (sp.start_offset, sp.state_of(o))}"
    for (p, o) in letters:
        sp = view.states.get(p)
        assert sp is not None and (o < sp.start_offset or sp.state_of(o)[0] in (ARCHIVED, *ARCHIVING)), \
            f"{where}: {p}@{o} was dead-lettered but the state says {sp and (sp.start_offset, sp.state_of(o))}"
    for p, sp in view.states.items():
        for o in range(sp.start_offset, sp.end_offset):
            state, count = sp.state_of(o)
            assert count <= layout.max_deliveries, f"{where}: {p}@{o} has delivery count {count}"
            assert state != ARCHIVED or (p, o) in letters, f"{where}: {p}@{o} archived but never copied"
            assert not (writer and state in ARCHIVING), f"{where}: {p}@{o} still ARCHIVING after a writer open"
    if view.described is not None:
        starts = {d["partition"]: d["start_offset"] for d in view.described["partitions"] if d["topic"] == layout.topic}
        assert starts == {p: sp.start_offset for p, sp in view.states.items()}, \
            f"{where}: describe says start offsets {starts}, the state log " \
            f"{ {p: sp.start_offset for p, sp in view.states.items()} }"
    return letters


def unresolved_acks(lines) -> dict[tuple[int, int], set[tuple[int, int]]]:
    """Accepts whose outcome is unknown, by (run, consumer): a ``T`` line with no ``A`` or ``N`` line
    (a kill interrupted the call), a ``U`` line, or an ``N`` line with another error than
    INVALID_RECORD_STATE (the broker may have applied it before the connection broke)."""
    decided = {(run, c, p, o) for kind, run, c, p, o, code in lines
               if kind == b"A" or (kind == b"N" and code == INVALID_RECORD_STATE)}
    out = defaultdict(set)
    for kind, run, c, p, o, _code in lines:
        if kind in (b"T", b"U", b"N") and (run, c, p, o) not in decided:
            out[(run, c)].add((p, o))
    return out


def check_final(view: BrokerView, produced: dict, lines, layout: Layout, letters: dict, max_unresolved: int) -> dict:
    """Nothing left in flight, every record accepted or dead-lettered (or in an unresolved accept: its
    ``A`` line was lost; then the broker finished it, and not by a dead letter: it acknowledged it)."""
    assert view.described is not None
    parts = {d["partition"]: d for d in view.described["partitions"] if d["topic"] == layout.topic}
    assert sorted(parts) == list(range(layout.partitions)), view.described
    for p, d in parts.items():
        assert d["start_offset"] == d["log_end_offset"] == view.ends[p], d
        assert (d["acquired"], d["available"], d["dead_lettering"], d["lag"]) == (0, 0, 0, 0), d
    accepted = {(p, o) for kind, _r, _c, p, o, _code in lines if kind == b"A"}
    unresolved = set().union(*unresolved_acks(lines).values())
    missing = set(produced) - accepted - set(letters)
    unexplained = sorted(missing - unresolved)
    assert not unexplained, f"{len(unexplained)} records neither acknowledged nor dead-lettered: {unexplained[:5]}"
    assert len(missing) <= max_unresolved, f"{len(missing)} accepts with a lost outcome (at most {max_unresolved})"
    assert not accepted - set(produced) and not set(letters) - set(produced)
    poison = {k for k, (_key, value) in produced.items() if value.startswith(b"p")}
    assert poison <= set(letters), f"poison never dead-lettered: {sorted(poison - set(letters))[:5]}"
    exhausted = sum(reason == "delivery_count_limit" for reason, _count in letters.values())
    assert exhausted >= 1, "no record ran out of deliveries: the test did not exercise that"
    return {"accepted": len(accepted), "dead-lettered": len(letters), "out of deliveries": exhausted,
            "outcome lost": len(missing), **{k.decode(): n for k, n in Counter(line[0] for line in lines).items()}}


def wait_for_dead_letter(data_dir: str, dlq: str) -> bool:
    """Watch the dead-letter topic's files grow (bounded: DEAD_LETTER_WATCH_S) and return at once when
    they do, so the kill that follows lands between a copy and its ARCHIVED state record, a window of
    about one fsync that random kills rarely hit.  False if nothing was dead-lettered meanwhile."""
    pattern = os.path.join(data_dir, f"{dlq}-0", "*.log")
    size = sum(os.path.getsize(f) for f in glob.glob(pattern))
    deadline = time.monotonic() + DEAD_LETTER_WATCH_S
    while time.monotonic() < deadline:
        time.sleep(0.0002)
        try:
            if sum(os.path.getsize(f) for f in glob.glob(pattern)) != size:
                return True
        except FileNotFoundError:  # a segment rolled meanwhile
            continue
    return False


def check_extended(where: str, lines) -> None:
    """A late ack of records whose locks were extended (``E`` lines) is never refused in that run."""
    extended = set()
    for kind, run, consumer, p, o, _code in lines:
        if kind == b"E":
            extended.add((run, consumer, p, o))
        if kind == b"N":
            assert (run, consumer, p, o) not in extended, f"{where}: run {run}: the ack of extended {p}@{o} was refused"


@pytest.mark.slow
def test_sigkill_queue_host_never_acknowledges_twice_and_loses_nothing(tmp_path):
    seed = int(os.environ.get("CRASH_QUEUE_SEED") or random.randrange(1 << 32))
    try:
        run_rounds(tmp_path, seed)
    except AssertionError as exc:
        raise AssertionError(f"[seed {seed}; replay with CRASH_QUEUE_SEED={seed}] {exc}") from None


def run_rounds(tmp_path, seed: int) -> None:
    from logbroker.inspect import verify_data_dir

    layout = LAYOUT
    rng = random.Random(seed)
    data_dir, side_file = str(tmp_path / "data"), str(tmp_path / "side")
    produced = produce(data_dir, layout)
    deadline = time.monotonic() + TIME_BUDGET_S
    kills_mid_work = dead_letter_kills = 0
    for round_no in range(KILLS):
        assert time.monotonic() < deadline, f"time budget spent after {round_no} rounds"
        child = Child(data_dir, side_file, round_no, rng.randrange(1 << 32), [])
        try:
            if round_no % 4 == 3:  # any moment: while it opens the broker, finishes dead letters, makes the Queues
                time.sleep(rng.uniform(0.05, 1.0))
            else:
                assert child.ready.wait(STARTUP_TIMEOUT_S), "the child never got ready"
                time.sleep(rng.uniform(0.1, 1.0) if round_no % 4 != 2 else rng.uniform(0.1, 0.4))
                if round_no % 4 == 2:
                    dead_letter_kills += wait_for_dead_letter(data_dir, layout.dlq)
            was_alive = child.kill()
        finally:
            returncode, stderr = child.reap()
        assert was_alive and returncode == -signal.SIGKILL, (returncode, stderr[-3000:])
        writer = round_no % 2 == 1
        where = f"round {round_no} ({'writer' if writer else 'read-only'})"
        view = BrokerView(data_dir, writer, layout)
        lines = read_side_files(side_file, layout.consumers)
        check_view(where, view, produced, lines, layout, writer=writer)
        check_extended(where, lines)
        for (run, consumer), offsets in unresolved_acks(lines).items():  # one ack call per consumer at a time
            assert len(offsets) <= layout.max_batch, f"{where}: run {run} consumer {consumer}: {sorted(offsets)}"
        kills_mid_work += view.settled() < layout.records

    child = Child(data_dir, side_file, KILLS, rng.randrange(1 << 32), ["--until-done"])
    try:
        child.proc.wait(timeout=FINAL_RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
    finally:
        returncode, stderr = child.reap()
    assert returncode == 0 and child.finished, f"the final run did not finish cleanly: {returncode} {stderr[-3000:]}"
    lines = read_side_files(side_file, layout.consumers)
    view = BrokerView(data_dir, True, layout)
    letters = check_view("final", view, produced, lines, layout, writer=True)
    check_extended("final", lines)
    assert not any(run == KILLS for run, _c in unresolved_acks(lines)), "the final run lost an ack outcome"
    stats = check_final(view, produced, lines, layout, letters, KILLS * layout.consumers * layout.max_batch)
    assert verify_data_dir(data_dir) == []
    assert kills_mid_work >= KILLS // 2, f"only {kills_mid_work} of {KILLS} kills hit before the work was done"
    print(f"seed {seed}: {KILLS} kills, {kills_mid_work} before all was settled, {dead_letter_kills} right after "
          f"a dead letter was copied; {stats}")
