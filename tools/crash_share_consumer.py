#!/usr/bin/env python
"""One confluent_kafka ShareConsumer of a share group, until killed or told to stop (helper of tests/crash/).

    python tools/crash_share_consumer.py BOOTSTRAP SIDE_FILE RUN SEED [options]

By hand, e.g.: ``logbroker serve --data-dir /tmp/d --listen 127.0.0.1:9092 --share-auto-offset-reset
earliest &`` and a topic with records, then a few of ``... 127.0.0.1:9092 /tmp/side.c0 0 1 & sleep 2;
kill -9 $!`` (RUN counting up) and compare /tmp/side.c0 with the topic.

The consumer (``share.acknowledgement.mode`` explicit, ``max.poll.records`` ``--max-batch``) polls
``--topic`` as a member of ``--group`` and settles every record of each poll: *poison* records (value
starting with ``p``) are rejected at once, with a ``commit_sync`` of their own; then, after up to
``--work-ms`` of "work" (or, with probability ``--late`` per poll, ``--late-s`` seconds: past the lock
duration, so those acknowledgements are refused), the others are released with probability
``--release`` and accepted otherwise, and committed with ``commit_sync``.  Nothing is verified here: lines
``<kind> <run> <partition> <offset> <code> .`` are appended to SIDE_FILE (one ``os.write`` then
``fsync`` per poll), with kind

  ``T``  an accept of this record is about to be committed (written before ``commit_sync``);
  ``A``  ``commit_sync`` returned no error for its partition: accepted (code 0);
  ``N``  ``commit_sync`` returned an error for its partition (its Kafka error code);
  ``U``  ``commit_sync`` raised, or did not answer for its partition (code -1): outcome unknown;
  ``J``  a reject of this (poison) record was in a partition that returned an error.

``ready`` is printed once subscribed.  With ``--stop-file F`` the consumer closes cleanly (committing
nothing more: everything was committed) once F exists, prints ``done`` and exits 0.  Bounded: exits 3
after ``--max-seconds`` (default 90 s) either way, so a lost test can never leave it running.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

from crash_queue import SideFile  # noqa: E402  (tools/ is sys.path[0] when run as a script)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bootstrap")
    ap.add_argument("side_file")
    ap.add_argument("run", type=int)
    ap.add_argument("seed", type=int)
    ap.add_argument("--topic", default="crash-sq")
    ap.add_argument("--group", default="crash-share-net")
    ap.add_argument("--max-batch", type=int, default=8, help="max.poll.records")
    ap.add_argument("--release", type=float, default=0.2, help="chance to release a (non-poison) record")
    ap.add_argument("--late", type=float, default=0.02, help="chance per poll to settle after --late-s")
    ap.add_argument("--late-s", type=float, default=1.3)
    ap.add_argument("--work-ms", type=float, default=0.0, help="sleep up to this long per poll")
    ap.add_argument("--stop-file")
    ap.add_argument("--max-seconds", type=float, default=90.0)
    return ap.parse_args(argv[1:])


def main(argv: list[str]) -> int:
    from confluent_kafka import AcknowledgeType, KafkaException, ShareConsumer

    args = parse_args(argv)
    deadline = time.monotonic() + args.max_seconds
    rng = random.Random(args.seed)
    side = SideFile(args.side_file)
    consumer = ShareConsumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group, "client.id": f"crash-{args.run}",
        "share.acknowledgement.mode": "explicit", "max.poll.records": args.max_batch,
        "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500, "log_level": 4,
    })
    consumer.subscribe([args.topic])
    print("ready", flush=True)
    run = args.run

    def lines(kind: bytes, items, code: int = 0) -> bytes:
        return b"".join(b"%s %d %d %d %d .\n" % (kind, run, p, o, code) for p, o in items)

    while time.monotonic() < deadline:
        if args.stop_file and os.path.exists(args.stop_file):
            consumer.close()
            print("done", flush=True)
            return 0
        try:
            polled = consumer.poll(0.2)
        except KafkaException as exc:
            sys.stderr.write(f"poll: {exc}\n")
            time.sleep(0.05)
            continue
        messages = []
        for m in polled:
            if m.error() is None:
                messages.append(m)
            else:
                sys.stderr.write(f"poll error: {m.error()}\n")
        if not messages:
            continue
        poison = [m for m in messages if m.value().startswith(b"p")]
        if poison:  # rejected at once, in a commit of their own: a kill seldom finds poison in hand
            for m in poison:
                consumer.acknowledge(m, AcknowledgeType.REJECT)
            result = commit(consumer, args.topic)
            refused = [(m.partition(), m.offset()) for m in poison if result.get(m.partition(), -1) is not None]
            if refused:
                side.write(b"".join(lines(b"J", [(p, o)], _code(result.get(p))) for p, o in refused))
        rest = [m for m in messages if not m.value().startswith(b"p")]
        if not rest:
            continue
        if rng.random() < args.late:
            time.sleep(args.late_s)
        elif args.work_ms:
            time.sleep(rng.uniform(0, args.work_ms) / 1000.0)
        accepted = []
        for m in rest:
            if rng.random() < args.release:
                consumer.acknowledge(m, AcknowledgeType.RELEASE)
            else:
                consumer.acknowledge(m, AcknowledgeType.ACCEPT)
                accepted.append((m.partition(), m.offset()))
        if accepted:
            side.write(lines(b"T", accepted))
        result = commit(consumer, args.topic)
        out = []
        for p, o in accepted:
            if p not in result:
                out.append(lines(b"U", [(p, o)], -1))
            elif result[p] is None:
                out.append(lines(b"A", [(p, o)]))
            else:
                out.append(lines(b"N", [(p, o)], _code(result[p])))
        if out:
            side.write(b"".join(out))
    return 3


def commit(consumer, topic: str) -> dict:
    """``commit_sync``: {partition: None or the error}; {} when it raised (outcome unknown)."""
    from confluent_kafka import KafkaException

    try:
        return {tp.partition: err for tp, err in consumer.commit_sync(10).items() if tp.topic == topic}
    except KafkaException as exc:
        sys.stderr.write(f"commit_sync: {exc}\n")
        return {}


def _code(err) -> int:
    """The Kafka error code of a commit_sync partition result (a KafkaException or KafkaError)."""
    if err is None:
        return -1
    inner = err.args[0] if getattr(err, "args", None) else err
    try:
        return int(inner.code())
    except Exception:  # noqa: BLE001
        return -1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
