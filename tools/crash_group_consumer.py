#!/usr/bin/env python
"""Consume a topic with several members of one group in one process until killed (helper of tests/crash/).

    python tools/crash_group_consumer.py DATA_DIR SIDE_FILE RUN SEED [options]

By hand, e.g.: ``... /tmp/d /tmp/side 0 1 --produce 2000 & sleep 1; kill -9 $!`` (a few times, RUN
counting up), then ``... /tmp/d /tmp/side 9 1 --until-done`` and compare /tmp/side with the topic.

One data directory belongs to one process, so a "member crash" here is the death of the process that
hosts all of a group's members.  This opens the Broker on DATA_DIR as the writer, creates
``--members`` Consumers of ``--group`` subscribed to ``--topic`` (enable_auto_commit=False) and
polls them in turn from this one thread.  Each poll batch is "processed" at least once:

  1. its lines ``R<RUN> <member> <partition> <offset> <value> .`` are appended to SIDE_FILE with one
     ``os.write`` and fsynced (the side effect, done BEFORE the commit);
  2. the next offset of each partition in the batch is committed synchronously; after a commit
     returns, ``c <partition> <offset>`` is printed (and flushed) on stdout: that commit is durable;
     a refused commit (a rebalance ended the generation) appends ``F <RUN> <member> <partition>
     <first> <last> .`` to SIDE_FILE: those records may be processed again by the partition's next owner.

A line of SIDE_FILE without the trailing `` .`` was cut by a kill; each run starts on a fresh line.
With ``--churn P`` a random member is closed and replaced by a new one (a rebalance) with probability
P per round of polls; ``--work-ms`` sleeps up to that long per batch (the "work", so kills land mid-way).

An embedded broker removes the members of the killed run when it opens (they lived in this process),
so the new members take over at once.  With ``--keep-stale-members`` the broker keeps them, as one
serving remote clients does (``configure_groups(members_survive_restart=True)``): the new members then
get partitions only once those sessions expire (6 s at least).

``ready`` is printed once the broker is open and the members exist.  With ``--until-done`` the
process stops by itself once the group's committed offsets reach the end of every partition: it
closes the members and the broker cleanly, prints ``done`` and exits 0.  Bounded: it exits 3 after
``--max-seconds`` (default 60 s) either way, so a lost test can never leave it running.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from logbroker import Broker, Consumer, Producer  # noqa: E402
from logbroker.client.consumer import CommitFailedError  # noqa: E402
from logbroker.storage.log import LATEST_TIMESTAMP  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("side_file")
    ap.add_argument("run", type=int)
    ap.add_argument("seed", type=int)
    ap.add_argument("--topic", default="crash")
    ap.add_argument("--group", default="crash-group")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--strategy", default="range", help="partition assignment strategy (range, cooperative-sticky)")
    ap.add_argument("--static", action="store_true", help="members use group_instance_id m0, m1, ...")
    ap.add_argument("--max-poll-records", type=int, default=25, help="each poll asks for 1..this many records")
    ap.add_argument("--work-ms", type=float, default=0.0, help="sleep up to this long per processed batch")
    ap.add_argument("--churn", type=float, default=0.0, help="chance per round of polls to replace a member")
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("--keep-stale-members", action="store_true",
                    help="keep the killed run's members until their sessions expire (as for remote clients)")
    ap.add_argument("--produce", type=int, default=0, metavar="N",
                    help="first create the topic (4 partitions) if missing, with N records valued v00000...")
    ap.add_argument("--until-done", action="store_true", help="exit 0 once everything is committed")
    ap.add_argument("--max-seconds", type=float, default=60.0)
    return ap.parse_args(argv[1:])


def produce(broker: Broker, topic: str, n: int) -> None:
    broker.create_topic(topic, 4)
    with Producer(broker, linger_ms=0) as producer:
        for i in range(n):
            producer.send(topic, b"v%05d" % i, partition=i % 4)


class Harness:
    def __init__(self, args: argparse.Namespace, broker: Broker):
        self.args, self.broker = args, broker
        self.rng = random.Random(args.seed)
        self.fd = os.open(args.side_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._start_on_fresh_line()
        self.members = [self._new_member(i) for i in range(args.members)]

    def _start_on_fresh_line(self) -> None:
        """A killed run may have left half a line; never glue this run's first line onto it."""
        size = os.fstat(self.fd).st_size
        if size:
            with open(self.args.side_file, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    self._write(b"\n")

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        os.fsync(self.fd)

    def _new_member(self, index: int) -> Consumer:
        a = self.args
        return Consumer(self.broker, group=a.group, topics=[a.topic], enable_auto_commit=False,
                        heartbeat_interval_ms=100, session_timeout_ms=a.session_timeout_ms,
                        max_poll_interval_ms=max(a.session_timeout_ms, 10_000),
                        partition_assignment_strategy=[a.strategy],
                        group_instance_id=f"m{index}" if a.static else None)

    def process_and_commit(self, index: int, consumer: Consumer, records) -> None:
        run = self.args.run
        self._write(b"".join(b"R%d m%d %d %d %s .\n" % (run, index, r.partition, r.offset, r.value)
                             for r in records))
        if self.args.work_ms:
            time.sleep(self.rng.uniform(0, self.args.work_ms) / 1000.0)
        ranges: dict[int, list[int]] = {}
        for r in records:
            first_last = ranges.setdefault(r.partition, [r.offset, r.offset])
            first_last[1] = r.offset
        offsets = {(self.args.topic, p): last + 1 for p, (_first, last) in ranges.items()}
        try:
            consumer.commit(offsets)
        except CommitFailedError:
            self._write(b"".join(b"F %d m%d %d %d %d .\n" % (run, index, p, first, last)
                                 for p, (first, last) in ranges.items()))
            return
        sys.stdout.write("".join(f"c {p} {off}\n" for (_t, p), off in offsets.items()))
        sys.stdout.flush()

    def poll_round(self) -> None:
        for index, consumer in enumerate(self.members):
            records = consumer.poll(timeout=0.005, max_records=self.rng.randint(1, self.args.max_poll_records))
            if records:
                self.process_and_commit(index, consumer, records)
        if self.args.churn and self.rng.random() < self.args.churn:
            index = self.rng.randrange(len(self.members))
            self.members[index].close()
            self.members[index] = self._new_member(index)

    def everything_committed(self) -> bool:
        topic, broker = self.args.topic, self.broker
        committed = broker.groups.fetch_offsets(self.args.group)
        for p in range(broker.partition_count(topic)):
            end = broker.list_offsets(topic, p, LATEST_TIMESTAMP)[0]
            if committed.get((topic, p), (-1,))[0] < end:
                return False
        return True

    def close(self) -> None:
        for consumer in self.members:
            consumer.close()
        os.close(self.fd)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    deadline = time.monotonic() + args.max_seconds
    broker = Broker.open(args.data_dir)
    if args.keep_stale_members:
        broker.configure_groups(members_survive_restart=True)
    if args.produce and args.topic not in broker.list_topics():
        produce(broker, args.topic, args.produce)
    harness = Harness(args, broker)
    print("ready", flush=True)
    checked = 0.0
    while time.monotonic() < deadline:
        harness.poll_round()
        if args.until_done and time.monotonic() - checked > 0.1:
            checked = time.monotonic()
            if harness.everything_committed():
                harness.close()
                broker.close()
                print("done", flush=True)
                return 0
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
