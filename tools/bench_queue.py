#!/usr/bin/env python
"""Queue (share group) benchmark for logbroker: records received and acknowledged per second.

In a fresh scratch directory made with ``tempfile.mkdtemp(prefix="bench_queue-")`` under ``--dir``
(default: the repository root, where git ignores /bench_queue-*/), removed at the end:

  1. produce: ``--records`` values of ``--value-size`` bytes round-robin over ``--partitions``
     partitions (``Producer(acks="all")``, fsync on), not timed as a queue case;
  2. plain Consumer: one group Consumer (enable_auto_commit=False, max_poll_records ``--batch``)
     polls every record and commits synchronously after every poll: the log-reading baseline;
  3. Queue, 1 consumer: ``Queue.receive(--batch)`` then one ``ack(*batch)`` per batch;
  4. Queue, 1 consumer, ``for msg in queue.messages()``: the iteration helper (acks buffered per batch);
  5. Queue, ``--threads`` consumers: that many Queues of one share group, each in its own thread,
     receive + ack(*batch) until every record was acknowledged.

Every Queue case uses a new share group starting at the earliest offset, so each reads all records
once; each case checks that every (partition, offset) was acknowledged exactly once.  With fsync on,
every receive and every acknowledgement is durable in ``__share_group_state`` before it returns (two
fsyncs per batch, shared between concurrent consumers).

Units: records/s, MB/s of record value bytes (MB = 10**6 bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench_storage import machine_info, settle  # noqa: E402  (tools/ is sys.path[0] when run as a script)

from logbroker import Broker, Consumer, Producer, Queue  # noqa: E402
from logbroker.storage.log import LATEST_TIMESTAMP  # noqa: E402

TOPIC = "bench"
IDLE_TIMEOUT_S = 60


def produce(broker: Broker, n: int, value_size: int, partitions: int) -> None:
    values = [os.urandom(value_size) for _ in range(1000)]
    with Producer(broker, acks="all", linger_ms=0) as producer:
        for i in range(n):
            producer.send(TOPIC, values[i % 1000], partition=i % partitions)
        producer.flush()
    ends = [broker.list_offsets(TOPIC, p, LATEST_TIMESTAMP)[0] for p in range(partitions)]
    if sum(ends) != n:
        raise SystemExit(f"produced {n:,} records but the partitions end at {ends}")


def plain_consumer(broker: Broker, n: int, batch: int) -> dict:
    consumer = Consumer(broker, group="bench-plain", topics=[TOPIC], enable_auto_commit=False,
                        max_poll_records=batch)
    got = 0
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    start = time.perf_counter()
    while got < n and time.monotonic() < deadline:
        records = consumer.poll(timeout=0.5)
        if records:
            got += len(records)
            consumer.commit()
            deadline = time.monotonic() + IDLE_TIMEOUT_S
    elapsed = time.perf_counter() - start
    consumer.close()
    if got != n:
        raise SystemExit(f"the plain consumer got {got:,} of {n:,}")
    return {"case": f"plain Consumer, commit per poll ({batch})", "records": n, "seconds": elapsed}


def queue_worker(broker: Broker, group: str, n: int, batch: int, acked: list, done: threading.Event,
                 errors: list) -> None:
    try:
        with Queue(broker, group=group, topics=[TOPIC], auto_offset_reset="earliest", max_records=batch) as queue:
            idle_since = time.monotonic()
            while not done.is_set():
                messages = queue.receive(batch, timeout=0.2)
                if not messages:
                    if time.monotonic() - idle_since > IDLE_TIMEOUT_S:
                        raise RuntimeError("no records for too long")
                    continue
                queue.ack(*messages)
                idle_since = time.monotonic()
                acked.extend((m.partition, m.offset) for m in messages)
                if len(acked) >= n:
                    done.set()
    except Exception as exc:  # reported by the main thread
        errors.append(exc)
        done.set()


def queue_case(broker: Broker, n: int, batch: int, threads: int) -> dict:
    group = f"bench-queue-{threads}"
    acked: list = []
    done = threading.Event()
    errors: list = []
    workers = [threading.Thread(target=queue_worker, args=(broker, group, n, batch, acked, done, errors))
               for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"a queue consumer failed: {errors[0]!r}")
    check_exactly_once(acked, n)
    return {"case": f"Queue x{threads}, receive({batch}) + ack(*batch)", "records": n, "seconds": elapsed}


def queue_iterator_case(broker: Broker, n: int, batch: int) -> dict:
    acked = []
    start = time.perf_counter()
    with Queue(broker, group="bench-queue-iter", topics=[TOPIC], auto_offset_reset="earliest",
               max_records=batch) as queue:
        for message in queue.messages(timeout=IDLE_TIMEOUT_S):
            acked.append((message.partition, message.offset))
            if len(acked) >= n:
                break
    elapsed = time.perf_counter() - start
    check_exactly_once(acked, n)
    return {"case": "Queue x1, for msg in queue.messages()", "records": n, "seconds": elapsed}


def check_exactly_once(acked: list, n: int) -> None:
    if len(acked) != n or len(set(acked)) != n:
        raise SystemExit(f"acknowledged {len(acked):,} deliveries of {len(set(acked)):,} distinct records, "
                         f"expected {n:,} once each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--dir", default=REPO)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="bench_queue-", dir=args.dir)
    results = []
    try:
        for line in machine_info(scratch):
            print(line)
        with Broker.open(os.path.join(scratch, "data")) as broker:
            broker.create_topic(TOPIC, args.partitions)
            produce(broker, args.records, args.value_size, args.partitions)
            cases = [lambda: plain_consumer(broker, args.records, args.batch),
                     lambda: queue_case(broker, args.records, args.batch, 1),
                     lambda: queue_iterator_case(broker, args.records, args.batch),
                     lambda: queue_case(broker, args.records, args.batch, args.threads)]
            for case in cases:
                settle()
                result = case()
                result["records_per_s"] = result["records"] / result["seconds"]
                result["mb_per_s"] = result["records_per_s"] * args.value_size / 1e6
                results.append(result)
                print(f"{result['case']:<45} {result['records']:>9,} records {result['seconds']:7.2f} s "
                      f"{result['records_per_s']:>11,.0f} rec/s {result['mb_per_s']:6.1f} MB/s", flush=True)
        base = results[0]["records_per_s"]
        for result in results[1:]:
            print(f"{result['case']:<45} {100 * result['records_per_s'] / base:6.1f} % of the plain Consumer")
        if args.json:
            print(json.dumps(results))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
