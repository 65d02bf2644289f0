#!/usr/bin/env python
"""Wire-protocol benchmark: confluent-kafka against ``logbroker serve``, and against librdkafka's
in-memory mock cluster as the ceiling, with the same client code, in one run.

For each target:

  1. produce: one confluent-kafka ``Producer`` (acks=all, linger.ms ``--linger-ms``, batch.size
     ``--batch-size``, compression none, idempotence off) sends ``--records`` values of
     ``--value-size`` bytes round-robin over ``--partitions`` partitions, then ``flush()``; the time runs
     from the first ``produce()`` to ``flush()`` returning, i.e. until every record was acknowledged.
     A delivery callback counts failures; any failure fails the run.
  2. consume: one ``Consumer`` (no group: ``assign()`` at each partition's low watermark) reads with
     ``consume(num_messages=10000)`` up to the high watermarks; the time runs from ``assign()`` to the
     ``--records``-th record.  The mock keeps only the last ~5 MB of each partition (about 47,000
     records of 100 B), so against it the reader re-assigns itself to the low watermarks and reads that
     window again and again until it has seen ``--records`` records ("passes" in the output); the
     gaps between passes (re-assigning, restarting the fetcher) are not counted, one start-up is.
     Both targets' consumer sets fetch.wait.max.ms=10 (a pass's last fetch does not sit in a long
     poll) and fetch.queue.backoff.ms=10: with librdkafka's default of 1000, a broker that fills the
     client's fetch queue (queued.min.messages, 100,000) faster than Python drains it makes the
     fetcher pause a whole second, which measures the client, not the broker.

Targets:

  * logbroker: ``python -m logbroker serve --listen 127.0.0.1:0`` on a fresh data directory made with
    ``tempfile.mkdtemp(prefix="bench_server-")`` under ``--dir`` (default: the repository root),
    removed at the end; the topic is made with the AdminClient and no config overrides, so every
    append is fsynced (the default ``flush.messages=1``).  The server's CPU seconds per phase are
    read from /proc.
  * mock: a librdkafka mock cluster (``test.mock.num.brokers=1``) held by an AdminClient in this
    process; its broker's address is taken from Metadata and the very same produce/consume code
    connects to it over TCP.  It keeps everything in memory and fsyncs nothing: the ceiling.

Units: records/s; MB/s counts record value bytes only (records x value size), MB = 10**6 bytes.
The ratios are logbroker / mock; the targets are produce >= 50 % and consume >= 70 %.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import confluent_kafka
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka import libversion as librdkafka_version
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPIC = "bench"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
TARGETS = {"produce": 0.50, "consume": 0.70}
MOCK_PARTITIONS = 4  # a mock cluster auto-creates topics with four partitions


# ---- the server --------------------------------------------------------------------------------------


class Server:
    """``logbroker serve`` on ``data_dir``; only this child's pid is ever signalled."""

    def __init__(self, data_dir: str):
        env = dict(os.environ)
        env.pop("LOGBROKER_DATA_DIR", None)
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        self.log_path = os.path.join(os.path.dirname(data_dir), "serve.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "logbroker", "serve", "--data-dir", data_dir,
                                      "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=self._log,
                                     stdin=subprocess.DEVNULL, env=env)
        self.bootstrap = self._wait_listening()

    def _wait_listening(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stdout.readline().decode(errors="replace").strip()
            if not line:
                break
            if line.startswith("logbroker listening on "):
                return line.rsplit(" ", 1)[1]
        self.stop(signal.SIGKILL)
        raise SystemExit(f"logbroker serve did not start; log:\n{self.log()}")

    def cpu_seconds(self) -> float:
        """user + system CPU time of the server process so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)
        try:
            code = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(10)
        self.proc.stdout.close()
        self._log.close()
        return code


# ---- the client code, identical for both targets ----------------------------------------------------


def produce(bootstrap: str, records: int, value_size: int, partitions: int, linger_ms: float,
            batch_size: int) -> dict:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": linger_ms,
                         "batch.size": batch_size, "compression.type": "none", "enable.idempotence": False,
                         "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576})
    producer.list_topics(TOPIC, timeout=30)  # connected, metadata known: not part of the timing
    failures: list = []

    def on_delivery(err, msg, _failures=failures):
        if err is not None:
            _failures.append(err)

    value = os.urandom(value_size)
    send, poll = producer.produce, producer.poll
    start = time.perf_counter()
    for i in range(records):
        while True:
            try:
                send(TOPIC, value, partition=i % partitions, on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.001)
        if i % 10_000 == 0:
            poll(0)
    left = producer.flush(300)
    elapsed = time.perf_counter() - start
    if left or failures:
        raise SystemExit(f"produce: {left} records unacknowledged, {len(failures)} failed, e.g. {failures[:3]}")
    return {"seconds": elapsed}


def consume(bootstrap: str, records: int, partitions: int) -> dict:
    """Read ``records`` records.  A partition is read from its low to its high watermark; if the log
    holds fewer than ``records`` (the mock keeps only about 5 MB per partition) the reader assigns
    itself back to the low watermarks and reads the window again, until it has seen ``records``.

    The time counted is one start-up (``assign()`` to the first record) plus, for each pass, its
    first record to its last: the idle gap while a re-assignment restarts fetching is not the
    broker's throughput, and a single pass (logbroker's) has no such gap."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-reader", "enable.auto.commit": False,
                         "enable.partition.eof": False, "fetch.wait.max.ms": 10, "fetch.queue.backoff.ms": 10})
    try:
        consumer.list_topics(TOPIC, timeout=30)
        marks = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30) for p in range(partitions)}
        if sum(high - low for low, high in marks.values()) <= 0:
            raise SystemExit(f"consume: nothing to read ({marks})")
        seen = passes = value_bytes = 0
        elapsed = 0.0
        clock = time.perf_counter
        deadline = time.monotonic() + 600
        while seen < records and time.monotonic() < deadline:
            assigned = clock()
            consumer.assign([TopicPartition(TOPIC, p, low) for p, (low, high) in marks.items() if high > low])
            passes += 1
            first = last = None
            left = {p: high - low for p, (low, high) in marks.items()}  # records of this pass still to come
            while sum(left.values()) and seen < records and time.monotonic() < deadline:
                # never ask for more than can come, or consume() would sit out its whole timeout
                wanted = min(10_000, records - seen, sum(left.values()))
                batch = consumer.consume(num_messages=wanted, timeout=1.0)
                if not batch:
                    continue
                if first is None:
                    first = clock()
                for msg in batch:
                    if msg.error() is not None:
                        raise KafkaException(msg.error())
                    seen += 1
                    value_bytes += len(msg.value())
                    left[msg.partition()] = marks[msg.partition()][1] - 1 - msg.offset()
                last = clock()
            if first is not None:
                elapsed += (last - first) + (first - assigned if passes == 1 else 0.0)
    finally:
        consumer.close()
    if seen != records:
        raise SystemExit(f"consume: read {seen} of {records} records")
    return {"seconds": elapsed, "value_bytes": value_bytes, "passes": passes,
            "window_records": sum(high - low for low, high in marks.values())}


def rates(row: dict, records: int, value_size: int) -> dict:
    seconds = row["seconds"]
    row["records_per_s"] = records / seconds
    row["mb_per_s"] = records * value_size / 1e6 / seconds
    return row


# ---- targets -----------------------------------------------------------------------------------------


def bench_logbroker(scratch: str, args) -> dict:
    server = Server(os.path.join(scratch, "data"))
    try:
        admin = AdminClient({"bootstrap.servers": server.bootstrap})
        admin.create_topics([NewTopic(TOPIC, num_partitions=args.partitions,
                                      replication_factor=1)])[TOPIC].result(30)
        configs = admin.describe_configs([ConfigResource("topic", TOPIC)])
        flush_messages = next(iter(configs.values())).result(30)["flush.messages"].value
        del admin
        cpu0 = server.cpu_seconds()
        out = {"produce": produce(server.bootstrap, args.records, args.value_size, args.partitions,
                                  args.linger_ms, args.batch_size)}
        cpu1 = server.cpu_seconds()
        out["consume"] = consume(server.bootstrap, args.records, args.partitions)
        cpu2 = server.cpu_seconds()
        out["produce"]["server_cpu_s"] = cpu1 - cpu0
        out["consume"]["server_cpu_s"] = cpu2 - cpu1
        out["topic_flush_messages"] = flush_messages
    finally:
        code = server.stop()
    if code != 0:
        raise SystemExit(f"logbroker serve exited {code} on SIGTERM; log:\n{server.log()[-3000:]}")
    out["exit_code"] = code
    return out


def bench_mock(args) -> dict:
    holder = AdminClient({"test.mock.num.brokers": 1, "log_level": 3})  # owns the mock cluster
    brokers = holder.list_topics(timeout=30).brokers
    broker = next(iter(brokers.values()))
    bootstrap = f"{broker.host}:{broker.port}"
    out = {"produce": produce(bootstrap, args.records, args.value_size, args.partitions, args.linger_ms,
                              args.batch_size)}
    out["consume"] = consume(bootstrap, args.records, args.partitions)
    del holder
    return out


# ---- report ------------------------------------------------------------------------------------------


def machine_info() -> list[str]:
    lines = [f"python      : {sys.version.split()[0]} {sys.executable}",
             f"platform    : {platform.platform()}",
             f"nproc       : {len(os.sched_getaffinity(0))}",
             f"clients     : confluent-kafka {confluent_kafka.__version__}, librdkafka {librdkafka_version()[0]}"]
    try:
        with open("/proc/cpuinfo") as f:
            lines.append("cpu         : " + next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")),
                                                 "?"))
    except OSError:
        pass
    return lines


def summarize(results: dict, args) -> dict:
    for target in ("logbroker", "mock"):
        for phase in ("produce", "consume"):
            rates(results[target][phase], args.records, args.value_size)
    ratios = {phase: results["logbroker"][phase]["records_per_s"] / results["mock"][phase]["records_per_s"]
              for phase in ("produce", "consume")}
    return {"ratios": ratios, "targets": TARGETS,
            "meets_targets": {phase: ratios[phase] >= TARGETS[phase] for phase in ratios}}


def print_table(results: dict, summary: dict) -> None:
    print(f"{'target':<10} {'phase':<8} {'seconds':>8} {'records/s':>11} {'MB/s':>7} {'server CPU s':>13} "
          f"{'passes':>7}")
    for target in ("logbroker", "mock"):
        for phase in ("produce", "consume"):
            row = results[target][phase]
            cpu = row.get("server_cpu_s")
            print(f"{target:<10} {phase:<8} {row['seconds']:>8.2f} {row['records_per_s']:>11,.0f} "
                  f"{row['mb_per_s']:>7.2f} {'-' if cpu is None else f'{cpu:.2f}':>13} {row.get('passes', ''):>7}")
    print()
    for phase, ratio in summary["ratios"].items():
        verdict = "meets" if summary["meets_targets"][phase] else "MISSES"
        print(f"{phase:<8} logbroker / mock = {ratio:6.1%}   (target >= {TARGETS[phase]:.0%}: {verdict})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="records to produce and consume (default 1,000,000)")
    ap.add_argument("--value-size", type=int, default=100, help="bytes per record value (default 100)")
    ap.add_argument("--partitions", type=int, default=1, help=f"partitions, 1-{MOCK_PARTITIONS} (default 1)")
    ap.add_argument("--linger-ms", type=float, default=5.0, help="producer linger.ms (default 5)")
    ap.add_argument("--batch-size", type=int, default=1_000_000, help="producer batch.size in bytes (default 1000000)")
    ap.add_argument("--dir", default=REPO, help="parent of the scratch directory (default: the repository root)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object instead of a table")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args(argv)
    if args.records <= 0 or args.value_size <= 0 or not 1 <= args.partitions <= MOCK_PARTITIONS:
        ap.error(f"--records and --value-size must be positive, --partitions within 1-{MOCK_PARTITIONS}")

    os.makedirs(args.dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="bench_server-", dir=args.dir)
    try:
        if not args.json:
            print("== machine ==\n" + "\n".join(machine_info()))
            print(f"\n== workload == {args.records:,} records x {args.value_size} B values, {args.partitions} "
                  f"partition(s), acks=all, linger.ms={args.linger_ms:g}, batch.size={args.batch_size:,}, "
                  f"compression none\n", flush=True)
        results = {"logbroker": bench_logbroker(scratch, args), "mock": bench_mock(args)}
        summary = summarize(results, args)
        if args.json:
            print(json.dumps({"records": args.records, "value_size": args.value_size, "partitions": args.partitions,
                              "linger_ms": args.linger_ms, "batch_size": args.batch_size,
                              "confluent_kafka": confluent_kafka.__version__, "librdkafka": librdkafka_version()[0],
                              "results": results, **summary}, indent=2))
        else:
            print_table(results, summary)
            print(f"\nlogbroker topic flush.messages={results['logbroker']['topic_flush_messages']} "
                  f"(fsync every append); MB = 10^6 B of record values")
    finally:
        if args.keep:
            print(f"\nscratch directory kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
