#!/usr/bin/env python
"""Consumer-group benchmark for logbroker, end to end through the public API, in one run.

Measures, in a fresh scratch directory made with ``tempfile.mkdtemp(prefix="bench_groups-")``
under ``--dir`` (default: the repository root, where git ignores /bench_groups-*/), removed at the end:

  1. produce: ``Producer(acks="all", linger_ms=0)`` sends ``--records`` values of ``--value-size``
     bytes round-robin over ``--partitions`` partitions of a topic with fsync on (the default), then
     ``flush()``, which returns once every record is durable;
  2. consume with commit: one group Consumer (enable_auto_commit=False, max_poll_records
     ``--max-poll-records``) polls until every record was returned and commits synchronously after
     every non-empty poll; the time includes joining the group, the commit count is reported;
  3. commit, 1 consumer: ``--commits`` synchronous commits by one member owning every partition
     (each commit moves every partition's offset and is fsynced before it returns);
  4. commit, T threads: ``--threads`` members of one group, one partition each, each committing
     ``--commits`` times from its own thread, concurrently: concurrent commits may share an fsync.

Before the cases one commit of an unrelated group creates ``__consumer_offsets`` (50 partitions),
which no case should pay for.

Units: records/s; MB/s counts record value bytes only (records x value size), MB = 10**6 bytes;
commits/s with the median and 99th percentile latency of one commit() call; fsyncs: calls of
``os.fsync`` during the case (counted by wrapping it), so fsyncs/commit < 1 shows commits sharing one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench_storage import machine_info, settle  # noqa: E402  (tools/ is sys.path[0] when run as a script)

from logbroker import Broker, Consumer, Producer  # noqa: E402
from logbroker.client.consumer import CommitFailedError  # noqa: E402
from logbroker.storage.log import LATEST_TIMESTAMP  # noqa: E402

TOPIC = "bench"
JOIN_TIMEOUT_S = 60


class FsyncCounter:
    """Counts ``os.fsync`` calls (the storage layer calls it through the module) while installed."""

    def __init__(self):
        self._real = os.fsync
        self._count = itertools.count()
        self._taken = 0

        def counting_fsync(fd, _next=next, _count=self._count, _real=self._real):
            _next(_count)
            return _real(fd)

        os.fsync = counting_fsync

    def take(self) -> int:
        """fsyncs since the last take()."""
        value = next(self._count)  # this call advances the counter too
        total, self._taken = value - self._taken, value + 1
        return total

    def uninstall(self) -> None:
        os.fsync = self._real


def bench_produce(broker: Broker, n: int, value_size: int, partitions: int) -> dict:
    values = [os.urandom(value_size) for _ in range(1000)]
    producer = Producer(broker, acks="all", linger_ms=0)
    send = producer.send
    start = time.perf_counter()
    for i in range(n):
        send(TOPIC, values[i % 1000], partition=i % partitions)
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.close()
    ends = [broker.list_offsets(TOPIC, p, LATEST_TIMESTAMP)[0] for p in range(partitions)]
    if sum(ends) != n:
        raise SystemExit(f"produced {n:,} records but the partitions end at {ends}")
    return {"case": "produce (acks=all, fsync on)", "records": n, "seconds": elapsed, "commits": None}


def bench_consume_with_commit(broker: Broker, n: int, max_poll_records: int) -> dict:
    consumer = Consumer(broker, group="bench-consume", topics=[TOPIC], enable_auto_commit=False,
                        max_poll_records=max_poll_records)
    got = commits = 0
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    start = time.perf_counter()
    while got < n:
        records = consumer.poll(timeout=0.5)
        if records:
            got += len(records)
            consumer.commit()
            commits += 1
            deadline = time.monotonic() + JOIN_TIMEOUT_S
        elif time.monotonic() > deadline:
            raise SystemExit(f"no records for {JOIN_TIMEOUT_S}s after {got:,} of {n:,}")
    elapsed = time.perf_counter() - start
    consumer.close()
    committed = sum(o for o, _e, _m in broker.groups.fetch_offsets("bench-consume").values())
    if got != n or committed != n:
        raise SystemExit(f"consumed {got:,} and committed {committed:,} of {n:,} records")
    return {"case": f"consume + commit per poll ({max_poll_records})", "records": n, "seconds": elapsed,
            "commits": commits}


def warm_up(broker: Broker) -> None:
    """Make the group coordinator's log exist (its first use creates __consumer_offsets' 50
    partitions), so that no case pays for it."""
    with Consumer(broker, group="bench-warm-up", enable_auto_commit=False) as consumer:
        consumer.assign([(TOPIC, 0)])
        consumer.commit({(TOPIC, 0): 0})


def joined(consumers: list[Consumer], partitions: int) -> None:
    """Poll every member (one thread) until the group's partitions are split evenly among them."""
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    share = partitions // len(consumers)
    while time.monotonic() < deadline:
        for consumer in consumers:
            consumer.poll(timeout=0.01, max_records=1)
        if all(len(c.assignment()) == share and c._member.stable for c in consumers):
            return
    raise SystemExit(f"the group did not settle: {[sorted(c.assignment()) for c in consumers]}")


def commit_loop(consumer: Consumer, count: int, latencies: list[float], failures: list[int]) -> None:
    partitions = sorted(consumer.assignment())
    clock = time.perf_counter
    for i in range(count):
        offsets = {tp: i + 1 for tp in partitions}
        t0 = clock()
        try:
            consumer.commit(offsets)
        except CommitFailedError:
            failures.append(i)
        latencies.append(clock() - t0)


def bench_commits(broker: Broker, threads: int, count: int, partitions: int) -> dict:
    group = f"bench-commit-{threads}"
    consumers = [Consumer(broker, group=group, topics=[TOPIC], enable_auto_commit=False, auto_offset_reset="latest")
                 for _ in range(threads)]
    joined(consumers, partitions)
    latencies: list[list[float]] = [[] for _ in consumers]
    failures: list[int] = []
    workers = [threading.Thread(target=commit_loop, args=(c, count, latencies[i], failures))
               for i, c in enumerate(consumers)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    for consumer in consumers:
        consumer.close()
    if failures:
        raise SystemExit(f"{len(failures)} commits of group {group} were refused (a rebalance during the run?)")
    every = sorted(x for per in latencies for x in per)
    each = partitions // threads
    label = (f"commit: 1 member, {each} partitions" if threads == 1
             else f"commit: {threads} members/threads, {each} partition{'s' if each > 1 else ''} each")
    return {"case": label, "records": None, "seconds": elapsed,
            "commits": threads * count, "p50_ms": statistics.median(every) * 1000,
            "p99_ms": every[min(len(every) - 1, int(len(every) * 0.99))] * 1000}


def add_rates(row: dict, value_size: int) -> dict:
    seconds = row["seconds"]
    if row["records"]:
        row["records_per_s"] = row["records"] / seconds
        row["value_mb_per_s"] = row["records"] * value_size / seconds / 1e6
    if row["commits"]:
        row["commits_per_s"] = row["commits"] / seconds
        row["fsyncs_per_commit"] = row["fsyncs"] / row["commits"]
    return row


def print_table(rows: list[dict]) -> None:
    head = (f"{'case':<44} {'records':>10} {'seconds':>8} {'records/s':>10} {'MB/s':>6} {'commits':>8} "
            f"{'commits/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'fsyncs':>8} {'/commit':>7}")
    print(head)
    print("-" * len(head))

    def cell(value, fmt: str, width: int) -> str:
        return f"{value:>{width}{fmt}}" if value is not None else f"{'-':>{width}}"

    for r in rows:
        print(f"{r['case']:<44} {cell(r['records'], ',', 10)} {r['seconds']:>8.2f} "
              f"{cell(r.get('records_per_s'), ',.0f', 10)} {cell(r.get('value_mb_per_s'), '.1f', 6)} "
              f"{cell(r['commits'], ',', 8)} {cell(r.get('commits_per_s'), ',.0f', 10)} "
              f"{cell(r.get('p50_ms'), '.2f', 7)} {cell(r.get('p99_ms'), '.2f', 7)} {r['fsyncs']:>8,} "
              f"{cell(r.get('fsyncs_per_commit'), '.2f', 7)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="records to produce and consume (default 1,000,000)")
    ap.add_argument("--value-size", type=int, default=100, help="bytes per record value (default 100)")
    ap.add_argument("--partitions", type=int, default=4, help="partitions of the topic (default 4)")
    ap.add_argument("--max-poll-records", type=int, default=500, help="Consumer max_poll_records (default 500)")
    ap.add_argument("--commits", type=int, default=2000, help="commits per committing member (default 2000)")
    ap.add_argument("--threads", type=int, default=4, help="concurrent committing members (default 4)")
    ap.add_argument("--dir", default=REPO, help="parent of the scratch directory (default: the repository root)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object instead of a table")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args(argv)
    if args.records <= 0 or args.commits <= 0 or args.threads <= 0 or args.partitions % args.threads:
        ap.error("--records, --commits and --threads must be positive, --partitions a multiple of --threads")

    os.makedirs(args.dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="bench_groups-", dir=args.dir)
    rows: list[dict] = []
    try:
        if not args.json:
            print("== machine ==\n" + "\n".join(machine_info(scratch)))
            print(f"\n== workload == {args.records:,} records x {args.value_size} B values over {args.partitions} "
                  f"partitions; commits: {args.commits:,} per member\n", flush=True)
        fsyncs = FsyncCounter()
        cases = [lambda broker: bench_produce(broker, args.records, args.value_size, args.partitions),
                 lambda broker: bench_consume_with_commit(broker, args.records, args.max_poll_records),
                 lambda broker: bench_commits(broker, 1, args.commits, args.partitions),
                 lambda broker: bench_commits(broker, args.threads, args.commits, args.partitions)]
        try:
            with Broker.open(os.path.join(scratch, "broker"), housekeeping=False) as broker:
                broker.create_topic(TOPIC, args.partitions)
                warm_up(broker)
                for case in cases:
                    settle()
                    fsyncs.take()
                    row = case(broker)
                    row["fsyncs"] = fsyncs.take()
                    rows.append(row)
                offsets_fsync = broker.topic("__consumer_offsets").log_config.sync_on_append
        finally:
            fsyncs.uninstall()
        rows = [add_rates(r, args.value_size) for r in rows]
        if args.json:
            print(json.dumps({"records": args.records, "value_size": args.value_size, "partitions": args.partitions,
                              "offsets_topic_fsync_per_append": offsets_fsync, "results": rows}, indent=2))
        else:
            print_table(rows)
            print(f"\n__consumer_offsets fsyncs every append: {offsets_fsync}; MB = 10^6 B of record values")
    finally:
        if args.keep:
            print(f"\nscratch directory kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
