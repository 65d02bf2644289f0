#!/usr/bin/env python
"""Storage and client throughput benchmark for logbroker, in one run.

Measures (all in a fresh scratch directory made with ``tempfile.mkdtemp`` under ``--dir``, removed
at the end):

  a. raw baseline: the same pre-encoded batch bytes written with plain ``os.write`` (one write per
     batch, O_APPEND like a segment), without fsync and with fsync after every write;
  b. ``PartitionLog.append`` of pre-encoded batches (validation + offset assignment + segment write),
     with ``wait_durable`` after each append (default config, flush.messages=1: one fsync per append)
     and with fsync off (flush.messages=1000000000, flush.ms=LONG_MAX: no fsync while appending);
  c. ``PartitionLog.read`` from offset 0 to the end, max_bytes 1 MiB (raw bytes, CRC checked);
  d. ``Producer.send()`` of N values then ``flush()`` (which returns once all are durable), topic with fsync on
     (default) and off; this includes record encoding;
  e. ``Consumer.poll(max_records=10000)`` until every record of the fsync-on Producer topic is read;
     this includes record decoding.

Units: "value MB/s" counts only record value bytes (records x value size), MB = 10**6 bytes;
"log MB/s" counts the bytes of record batches written to / read from the log (batch headers and
per-record framing included), also 10**6 bytes.  Timings of the "no fsync" cases end when the last
write returns: data may still be in the page cache.

Every case runs ``--repeat`` times (default 3); the table shows the median run and the fastest run.
Dirty pages are written back (``os.sync()``) before each timed run, outside the timing.

``--profile`` additionally runs the Producer (fsync off) and the Consumer once more under cProfile
and prints the top functions by tottime (those runs are not part of the table).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import shutil
import statistics
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from logbroker.broker import Broker  # noqa: E402
from logbroker.client.consumer import Consumer  # noqa: E402
from logbroker.client.producer import Producer  # noqa: E402
from logbroker.config import LONG_MAX, LogConfig  # noqa: E402
from logbroker.records.batch import HEADER_SIZE, encode_batch, read_header  # noqa: E402
from logbroker.storage.log import PartitionLog  # noqa: E402

NO_FSYNC = {"flush.messages": "1000000000", "flush.ms": str(LONG_MAX)}
_LEN = struct.Struct(">qi")


class Row:
    """One case: every repetition's seconds; rates use the median (and the best) of them."""

    def __init__(self, name: str, records: int, value_bytes: int, log_bytes: int):
        self.name, self.records = name, records
        self.value_bytes, self.log_bytes = value_bytes, log_bytes
        self.times: list[float] = []

    @property
    def seconds(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    @staticmethod
    def _rate(amount: float, seconds: float) -> float:
        return amount / seconds if seconds > 0 else float("inf")

    @property
    def rps(self) -> float:
        return self._rate(self.records, self.seconds)

    @property
    def best_rps(self) -> float:
        return self._rate(self.records, self.best)

    @property
    def value_mbs(self) -> float:
        return self._rate(self.value_bytes, self.seconds) / 1e6

    @property
    def log_mbs(self) -> float:
        return self._rate(self.log_bytes, self.seconds) / 1e6


def settle() -> None:
    """Write back dirty pages of earlier cases so they do not slow the next measurement."""
    if hasattr(os, "sync"):
        os.sync()


def machine_info(scratch: str) -> list[str]:
    lines = [
        f"python      : {sys.version.split()[0]} ({platform.python_implementation()}) {sys.executable}",
        f"platform    : {platform.platform()}",
        f"nproc       : {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}"
        f" (os.cpu_count()={os.cpu_count()})",
    ]
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
        lines.append(f"cpu         : {model}")
    except OSError:
        pass
    try:  # file system holding the scratch directory: the longest mount point that prefixes it
        real = os.path.realpath(scratch)
        best = ("?", "?", "?")
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[1]):
                    best = (dev, mnt, fstype)
        lines.append(f"scratch fs  : {best[2]} on {best[0]} (mounted at {best[1]}); dir {real}")
    except OSError:
        pass
    return lines


def make_batch(values: list[bytes], timestamp: int) -> bytes:
    return encode_batch([(None, v, None, timestamp) for v in values])


def bench_raw(path: str, batch: bytes, n_batches: int, fsync: bool) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        write, do_fsync = os.write, os.fsync
        start = time.perf_counter()
        for _ in range(n_batches):
            view = memoryview(batch)
            while view:
                view = view[write(fd, view):]
            if fsync:
                do_fsync(fd)
        return time.perf_counter() - start
    finally:
        os.close(fd)
        os.unlink(path)


def bench_append(directory: str, batch: bytes, n_batches: int, fsync: bool) -> tuple[float, PartitionLog]:
    config = LogConfig.from_overrides({} if fsync else NO_FSYNC)
    assert config.sync_on_append == fsync
    plog, _ = PartitionLog.open(directory, "bench", 0, config)
    append, wait = plog.append, plog.wait_durable
    start = time.perf_counter()
    if fsync:
        for _ in range(n_batches):
            info = append(batch)
            wait(info.last_offset + 1)
    else:
        for _ in range(n_batches):
            append(batch)
    return time.perf_counter() - start, plog


def bench_read(plog: PartitionLog, max_bytes: int) -> tuple[float, int, int]:
    read = plog.read
    end = plog.high_watermark
    offset = records = nbytes = 0
    start = time.perf_counter()
    while offset < end:
        data = read(offset, max_bytes).records
        nbytes += len(data)
        pos, size = 0, len(data)
        while pos < size:  # walk batch headers for the next offset and the record count
            header = read_header(data, pos)
            records += header.records_count
            pos += header.batch_length + 12
        offset = header.base_offset + header.last_offset_delta + 1
    return time.perf_counter() - start, records, nbytes


def run_producer(broker: Broker, topic: str, values: list[bytes], n: int, batch_size: int,
                 linger_ms: float) -> float:
    producer = Producer(broker, linger_ms=linger_ms, batch_size=batch_size)
    send = producer.send
    k = len(values)
    start = time.perf_counter()
    for i in range(n):
        send(topic, values[i % k])
    producer.flush()  # every record durable (by the topic's rule) and visible when it returns
    elapsed = time.perf_counter() - start
    producer.close()
    high_watermark = broker.log(topic, 0).high_watermark
    if high_watermark < n:
        raise SystemExit(f"Producer.flush() returned with the high watermark at {high_watermark:,} of {n:,}")
    return elapsed


def run_consumer(broker: Broker, topic: str, n: int, max_records: int) -> tuple[float, int, list]:
    consumer = Consumer(broker, topics=[topic])
    got = 0
    first = last = None
    start = time.perf_counter()
    while got < n:
        records = consumer.poll(max_records=max_records)
        if not records:
            break
        if first is None:
            first = records[0]
        got += len(records)
        last = records[-1]
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed, got, [first, last]


def profile(label: str, fn, top: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    print(f"\n===== cProfile: {label} (sorted by tottime, top {top}) =====")
    text = out.getvalue()
    # drop pstats' preamble up to the total line for brevity
    print(text[text.find("function calls"):].rstrip() if "function calls" in text else text.rstrip())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="records per case (default 1,000,000)")
    ap.add_argument("--value-size", type=int, default=100, help="bytes per record value (default 100)")
    ap.add_argument("--batch", type=int, default=1000, help="records per pre-encoded batch (default 1000)")
    ap.add_argument("--dir", default=".", help="parent of the scratch directory (default: current directory)")
    ap.add_argument("--producer-batch-size", type=int, default=None,
                    help="Producer batch_size in bytes (default: sized so a batch closes at --batch records)")
    ap.add_argument("--linger-ms", type=float, default=0.0,
                    help="Producer linger_ms (default 0: no linger thread; the Producer's own default is 5, whose "
                         "thread's fsync can race with appends, see the report)")
    ap.add_argument("--poll-records", type=int, default=10_000, help="Consumer poll max_records (default 10000)")
    ap.add_argument("--read-max-bytes", type=int, default=1 << 20, help="PartitionLog.read max_bytes (default 1 MiB)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the Producer (fsync off) and Consumer paths with cProfile")
    ap.add_argument("--profile-top", type=int, default=30, help="functions to list per profile (default 30)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the table shows the median (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args(argv)

    n, vsize, per_batch = args.records, args.value_size, args.batch
    if n <= 0 or per_batch <= 0 or vsize < 0 or args.repeat <= 0:
        ap.error("--records, --batch and --repeat must be positive, --value-size non-negative")
    n_batches = -(-n // per_batch)
    n_eff = n_batches * per_batch  # pre-encoded cases write whole batches
    # Producer: batch closes when its estimated size (61 + sum(24 + len(value))) reaches batch_size
    producer_batch_size = args.producer_batch_size or (61 + per_batch * (24 + vsize))

    os.makedirs(args.dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="bench_storage-", dir=args.dir)
    rows: list[Row] = []
    try:
        print("== machine ==")
        for line in machine_info(scratch):
            print(line)
        print(f"\n== workload == {n_eff:,} records x {vsize} B values, pre-encoded batches of {per_batch} records "
              f"({n_batches} batches); Producer batch_size={producer_batch_size} B, linger_ms={args.linger_ms}; "
              f"Consumer poll max_records={args.poll_records}; read max_bytes={args.read_max_bytes}")
        sys.stdout.flush()

        values = [os.urandom(vsize) for _ in range(per_batch)]
        batch = make_batch(values, int(time.time() * 1000))
        log_total = len(batch) * n_batches
        value_total = n_eff * vsize
        print(f"one batch = {len(batch)} bytes on the log ({len(batch) / per_batch:.1f} B/record, "
              f"header {HEADER_SIZE} B); log bytes per pre-encoded case = {log_total / 1e6:.1f} MB")
        sys.stdout.flush()

        R = args.repeat
        raw = Row("a. raw os.write, no fsync", n_eff, value_total, log_total)
        raw_fs = Row("a. raw os.write + fsync each", n_eff, value_total, log_total)
        app_fs = Row("b. PartitionLog.append + wait_durable", n_eff, value_total, log_total)
        app = Row("b. PartitionLog.append, fsync off", n_eff, value_total, log_total)
        rd = Row(f"c. PartitionLog.read ({args.read_max_bytes >> 10} KiB, CRC)", n_eff, value_total, log_total)
        rows += [raw, raw_fs, app_fs, app, rd]
        plog_sync = None
        for rep in range(R):
            # a. raw baseline
            settle()
            raw.times.append(bench_raw(os.path.join(scratch, "raw.bin"), batch, n_batches, fsync=False))
            settle()
            raw_fs.times.append(bench_raw(os.path.join(scratch, "raw-fsync.bin"), batch, n_batches, fsync=True))
            # b. PartitionLog.append
            for fsync, row in ((True, app_fs), (False, app)):
                settle()
                d = os.path.join(scratch, f"log-{'fsync' if fsync else 'nofsync'}-{rep}", "bench-0")
                t, plog = bench_append(d, batch, n_batches, fsync=fsync)
                assert plog.log_end_offset == n_eff and plog.size_bytes == log_total
                row.times.append(t)
                if fsync:
                    if plog_sync is not None:
                        plog_sync.close()
                        shutil.rmtree(os.path.dirname(plog_sync.directory))
                    plog_sync = plog
                else:
                    plog.close()
                    shutil.rmtree(os.path.dirname(d))
        # c. PartitionLog.read (the last fsynced log; page cache warm, as for a tailing consumer)
        for rep in range(R):
            t, got, nbytes = bench_read(plog_sync, args.read_max_bytes)
            assert got == n_eff and nbytes == log_total, (got, nbytes)
            rd.times.append(t)
        plog_sync.close()
        shutil.rmtree(os.path.dirname(plog_sync.directory))
        sys.stdout.flush()

        # d./e. Producer and Consumer over an embedded Broker
        broker = Broker.open(os.path.join(scratch, "broker"), housekeeping=False)
        try:
            prod_fs = Row("d. Producer send+flush, fsync on", n, n * vsize, 0)
            prod = Row("d. Producer send+flush, fsync off", n, n * vsize, 0)
            cons = Row(f"e. Consumer poll({args.poll_records})", n, n * vsize, 0)
            rows += [prod_fs, prod, cons]
            last_fsync_topic = None
            for rep in range(R):
                for fsync, row in ((True, prod_fs), (False, prod)):
                    topic = f"p-{'fsync' if fsync else 'nofsync'}-{rep}"
                    broker.create_topic(topic, 1, None if fsync else NO_FSYNC)
                    settle()
                    row.times.append(run_producer(broker, topic, values, n, producer_batch_size, args.linger_ms))
                    plog = broker.log(topic, 0)
                    assert plog.log_end_offset == n, (topic, plog.log_end_offset)
                    row.log_bytes = plog.size_bytes
                    if fsync:
                        if last_fsync_topic is not None:
                            broker.delete_topic(last_fsync_topic)
                        last_fsync_topic = topic
                    else:
                        broker.delete_topic(topic)
            cons.log_bytes = broker.log(last_fsync_topic, 0).size_bytes
            settle()
            for rep in range(R):
                t, got, (first, last) = run_consumer(broker, last_fsync_topic, n, args.poll_records)
                assert got == n and first.offset == 0 and last.offset == n - 1, (got, first, last)
                assert first.value == values[0] and last.value == values[(n - 1) % per_batch]
                cons.times.append(t)

            # ---- table ----
            print(f"\n== results == median of {R} run(s) per case; records/s (best) is the fastest run.  "
                  f"value MB/s: record value bytes only ({vsize} B x records); log MB/s: record-batch bytes written "
                  f"to / read from the log (headers and record framing included); MB = 10^6 B")
            head = (f"{'case':<40} {'records':>10} {'seconds':>9} {'records/s':>12} {'(best)':>12} {'value MB/s':>11} "
                    f"{'log MB/s':>9}")
            print(head)
            print("-" * len(head))
            for r in rows:
                print(f"{r.name:<40} {r.records:>10,} {r.seconds:>9.3f} {r.rps:>12,.0f} {r.best_rps:>12,.0f} "
                      f"{r.value_mbs:>11.1f} {r.log_mbs:>9.1f}")

            def verdict(ok: bool) -> str:
                return "PASS" if ok else "FAIL"

            print("\n== ratios and targets ==")
            r1 = app.rps / raw.rps
            print(f"pre-encoded append, fsync off / raw os.write, no fsync : {r1:6.1%}  (target >= 70%)  {verdict(r1 >= 0.70)}"
                  f"  [best run vs best run: {app.best_rps / raw.best_rps:.1%}]")
            r2 = app_fs.rps / raw_fs.rps
            print(f"append + wait_durable / raw os.write + fsync           : {r2:6.1%}  (info)")
            print(f"Producer records/s, fsync off                         : {prod.rps:>12,.0f}  (target >= 500,000)  "
                  f"{verdict(prod.rps >= 500_000)}")
            print(f"Producer records/s, fsync on                          : {prod_fs.rps:>12,.0f}  (target >= 500,000)  "
                  f"{verdict(prod_fs.rps >= 500_000)}")
            print(f"Consumer records/s                                    : {cons.rps:>12,.0f}  (target >= 1,000,000)  "
                  f"{verdict(cons.rps >= 1_000_000)}")
            sys.stdout.flush()

            if args.profile:
                broker.create_topic("p-profile", 1, NO_FSYNC)
                settle()
                profile("Producer send+flush, fsync off",
                        lambda: run_producer(broker, "p-profile", values, n, producer_batch_size, args.linger_ms),
                        args.profile_top)
                profile("Consumer poll until all read",
                        lambda: run_consumer(broker, last_fsync_topic, n, args.poll_records), args.profile_top)
        finally:
            broker.close()
    finally:
        if args.keep:
            print(f"\nscratch directory kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
