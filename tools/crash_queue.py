#!/usr/bin/env python
"""Consume a topic with several Queues of one share group in one process until killed (helper of tests/crash/).

    python tools/crash_queue.py DATA_DIR SIDE_FILE RUN SEED [options]

By hand, e.g.: ``... /tmp/d /tmp/side 0 1 --produce 1500 & sleep 1; kill -9 $!`` (a few times, RUN
counting up), then ``... /tmp/d /tmp/side 9 1 --until-done`` and compare the side files with the
topic and its dead-letter topic.

One data directory belongs to one process, so killing "the broker" kills its embedded consumers too:
this opens the Broker on DATA_DIR as the writer (housekeeping on: it fires expired locks) and runs
``--consumers`` threads, each with its own ``Queue`` of ``--group`` on ``--topic`` (visibility timeout
``--visibility-timeout``, ``--max-deliveries``, ``--dead-letter-topic``, auto offset reset earliest).
Each thread loops: ``receive`` 1..``--max-batch`` records, then settles them:

  * a *poison* record (its value starts with ``p``) is rejected (dead-lettered, reason ``rejected``);
  * with probability ``--release`` a record is released (it comes back, with its delivery count one
    higher, and is dead-lettered once it has been delivered ``--max-deliveries`` times);
  * with probability ``--drop`` per batch one non-poison record is dropped: never settled, its lock
    expires;
  * with probability ``--late`` per batch the thread stalls past the visibility timeout before it
    acks the batch (those acks are refused); with probability ``--extend`` it first extends every
    lock of the batch by four times the timeout, and its late acks must then succeed;
  * the rest is acked with one ``ack`` call.

Nothing is verified here: each consumer ``i`` appends lines to ``SIDE_FILE.c<i>`` (one ``os.write``
per batch, then ``fsync``), ``<kind> <run> <partition> <offset> <code> .`` with kind (code: the
partition's Kafka error code for ``N`` and ``J``, else 0)

  ``T``  an ack of this record is about to be sent (written before the ``ack`` call);
  ``A``  its ack was accepted (written after the call returned, or raised naming other records);
  ``N``  its ack was refused (``AcknowledgementError`` named it);
  ``J``  its reject was refused;
  ``E``  its lock was extended (written after ``extend`` returned).

So a record with a ``T`` line but neither ``A`` nor ``N`` in a run was in the batch whose ack call
a kill interrupted: the broker may or may not have accepted it.  A line without the trailing `` .``
was cut by a kill; each run starts on a fresh line.  With ``--churn P`` a consumer closes its Queue
(releasing what it still holds) and opens a new one with probability P per batch.

``ready`` is printed once the broker is open and the Queues exist.  With ``--until-done`` the process
stops by itself once every share-partition's start offset has reached the log end offset: it stops
the threads, closes the Queues and the broker, prints ``done`` and exits 0.  An unexpected exception
in a consumer thread prints its traceback and exits 4 at once.  Bounded: exits 3 after
``--max-seconds`` (default 60 s) either way, so a lost test can never leave it running.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from logbroker import Broker, Producer  # noqa: E402
from logbroker.client.queue import AcknowledgementError, Queue  # noqa: E402
from logbroker.storage.log import LATEST_TIMESTAMP  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("side_file")
    ap.add_argument("run", type=int)
    ap.add_argument("seed", type=int)
    ap.add_argument("--topic", default="crash-q")
    ap.add_argument("--group", default="crash-share")
    ap.add_argument("--dead-letter-topic", default="crash-q-dlq")
    ap.add_argument("--consumers", type=int, default=3)
    ap.add_argument("--visibility-timeout", type=float, default=1.0, help="seconds")
    ap.add_argument("--max-deliveries", type=int, default=3)
    ap.add_argument("--max-batch", type=int, default=8, help="each receive asks for 1..this many records")
    ap.add_argument("--release", type=float, default=0.2, help="chance to release a (non-poison) record")
    ap.add_argument("--drop", type=float, default=0.03, help="chance per batch to leave one record unsettled")
    ap.add_argument("--late", type=float, default=0.01, help="chance per batch to ack after the timeout")
    ap.add_argument("--extend", type=float, default=0.01, help="chance per batch to extend, then ack late")
    ap.add_argument("--churn", type=float, default=0.01, help="chance per batch to replace the Queue")
    ap.add_argument("--work-ms", type=float, default=0.0, help="sleep up to this long per batch")
    ap.add_argument("--produce", type=int, default=0, metavar="N",
                    help="first create the topic (3 partitions) if missing, with N records (every 37th poison)")
    ap.add_argument("--until-done", action="store_true", help="exit 0 once every record is settled")
    ap.add_argument("--max-seconds", type=float, default=60.0)
    return ap.parse_args(argv[1:])


def value_of(i: int) -> bytes:
    """The value of the i-th record: unique; every 37th is poison (starts with ``p``)."""
    return (b"p%05d" if i % 37 == 0 else b"v%05d") % i


def produce(broker: Broker, topic: str, n: int, partitions: int = 3) -> None:
    broker.create_topic(topic, partitions)
    with Producer(broker, linger_ms=0) as producer:
        for i in range(n):
            producer.send(topic, value_of(i), b"k%05d" % i, partition=i % partitions, headers={"src": b"crash"})


def format_lines(kind: bytes, run: int, messages, codes: dict | None = None) -> bytes:
    """``<kind> <run> <partition> <offset> <code> .`` per message; code: the partition's Kafka error code."""
    codes = codes or {}
    return b"".join(b"%s %d %d %d %d .\n" % (kind, run, m.partition, m.offset, codes.get((m.topic, m.partition), 0))
                    for m in messages)


class SideFile:
    """Append-only, fsynced, one per consumer."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        size = os.fstat(self.fd).st_size
        if size:  # a killed run may have left half a line; never glue this run's first line onto it
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    self.write(b"\n")

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        os.fsync(self.fd)

    def lines(self, kind: bytes, run: int, messages, codes: dict | None = None) -> None:
        if messages:
            self.write(format_lines(kind, run, messages, codes))

    def close(self) -> None:
        os.close(self.fd)


class Worker:
    def __init__(self, args: argparse.Namespace, broker: Broker, index: int, seed: int, stop: threading.Event):
        self.args, self.broker, self.index, self.stop = args, broker, index, stop
        self.rng = random.Random(seed)
        self.side = SideFile(f"{args.side_file}.c{index}")
        self.queue = self._new_queue()
        self.thread = threading.Thread(target=self._main, name=f"consumer-{index}", daemon=True)

    def _new_queue(self) -> Queue:
        a = self.args
        return Queue(self.broker, group=a.group, topics=[a.topic], visibility_timeout=a.visibility_timeout,
                     max_deliveries=a.max_deliveries, dead_letter_topic=a.dead_letter_topic,
                     auto_offset_reset="earliest", max_records=a.max_batch)

    def _main(self) -> None:
        try:
            while not self.stop.is_set():
                self.round()
        except BaseException:  # noqa: BLE001 - anything unexpected ends the process, loudly
            sys.stderr.write(f"consumer {self.index} failed:\n{traceback.format_exc()}")
            sys.stderr.flush()
            os._exit(4)

    def round(self) -> None:
        a, rng, run = self.args, self.rng, self.args.run
        messages = self.queue.receive(max_records=rng.randint(1, a.max_batch), timeout=0.2)
        if not messages:
            return
        poison = [m for m in messages if m.value.startswith(b"p")]
        rest = [m for m in messages if not m.value.startswith(b"p")]
        if rest and rng.random() < a.drop:
            rest.pop(rng.randrange(len(rest)))  # never settled: its lock expires
        release = [m for m in rest if rng.random() < a.release]
        accept = [m for m in rest if m not in release]
        draw = rng.random()
        late = accept and draw < a.extend + a.late
        if accept and draw < a.extend:
            extended = []
            for m in accept:
                try:
                    self.queue.extend(m, 4 * a.visibility_timeout)
                    extended.append(m)
                except AcknowledgementError:
                    pass  # held longer than the timeout already (a slow machine): its ack is refused
            self.side.lines(b"E", run, extended)
        if poison:
            try:
                self.queue.reject(*poison)
            except AcknowledgementError as exc:
                self.side.lines(b"J", run, exc.messages, exc.errors)
        if release:
            try:
                self.queue.release(*release)
            except AcknowledgementError:
                pass  # the lock had expired: it comes back anyway
        if a.work_ms:
            time.sleep(rng.uniform(0, a.work_ms) / 1000.0)
        if accept:
            if late:  # past the visibility timeout: refused, unless extended
                time.sleep(a.visibility_timeout * 1.2)
            self.side.lines(b"T", run, accept)
            try:
                self.queue.ack(*accept)
                refused, codes = [], {}
            except AcknowledgementError as exc:
                refused, codes = exc.messages, exc.errors
            done = [m for m in accept if m not in refused]
            self.side.write(format_lines(b"A", run, done) + format_lines(b"N", run, refused, codes))
        if a.churn and rng.random() < a.churn:
            self.queue.close()  # releases the dropped record, if any, at once
            self.queue = self._new_queue()

    def close(self) -> None:
        self.queue.close()
        self.side.close()


def everything_settled(broker: Broker, topic: str, group: str) -> bool:
    try:
        described = broker.shares.describe(group)
    except Exception:  # noqa: BLE001 - the group may not exist yet
        return False
    starts = {(p["topic"], p["partition"]): p["start_offset"] for p in described["partitions"]}
    for partition in range(broker.partition_count(topic)):
        end = broker.list_offsets(topic, partition, LATEST_TIMESTAMP)[0]
        if starts.get((topic, partition), -1) < end:
            return False
    return True


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    deadline = time.monotonic() + args.max_seconds
    rng = random.Random(args.seed)
    broker = Broker.open(args.data_dir)
    if args.produce and args.topic not in broker.list_topics():
        produce(broker, args.topic, args.produce)
    stop = threading.Event()
    workers = [Worker(args, broker, i, rng.randrange(1 << 32), stop) for i in range(args.consumers)]
    for worker in workers:
        worker.thread.start()
    print("ready", flush=True)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if args.until_done and everything_settled(broker, args.topic, args.group):
            stop.set()
            for worker in workers:
                worker.thread.join(timeout=max(0.0, deadline - time.monotonic()))
                if worker.thread.is_alive():
                    return 3
            for worker in workers:
                worker.close()
            broker.close()
            print("done", flush=True)
            return 0
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
