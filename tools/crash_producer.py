#!/usr/bin/env python
"""Produce numbered records into a data directory until killed (helper of tests/crash/).

    python tools/crash_producer.py DATA_DIR TOPIC FIRST_SEQ [SEED]

Opens (creating if needed) the Broker on DATA_DIR as the writer, creates TOPIC if missing (small
segments, so that rolls happen while it runs), prints ``ready``, then loops: send a burst of 1-20
records whose values are ``seq:<n>`` (n counting up from FIRST_SEQ, keys ``k<n % 7>``), wait for
each send's future, and after each acknowledged record print ``<n> <offset>`` and flush stdout.
A line on stdout therefore means that record was durable (fsynced) before the line was written.

Bounded: stops by itself after 200,000 records or 120 s, so a lost test can never leave it running.
"""

from __future__ import annotations

import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from logbroker import Broker, Producer  # noqa: E402
from logbroker.errors import TopicAlreadyExistsError  # noqa: E402

TOPIC_CONFIG = {"segment.bytes": "65536", "index.interval.bytes": "1024"}
MAX_RECORDS = 200_000
MAX_SECONDS = 120


def main(argv: list[str]) -> int:
    data_dir, topic, first = argv[1], argv[2], int(argv[3])
    rng = random.Random(int(argv[4]) if len(argv) > 4 else None)
    broker = Broker.open(data_dir)
    if topic not in broker.list_topics():
        try:
            broker.create_topic(topic, 1, TOPIC_CONFIG)
        except TopicAlreadyExistsError:
            pass
    producer = Producer(broker, linger_ms=0, batch_size=1 << 20)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    seq = first
    deadline = time.monotonic() + MAX_SECONDS
    while seq < first + MAX_RECORDS and time.monotonic() < deadline:
        burst = []
        for _ in range(rng.randint(1, 20)):
            value = b"seq:%d" % seq + b"." * rng.randint(0, 100)
            burst.append((seq, producer.send(topic, value, key=b"k%d" % (seq % 7), partition=0)))
            seq += 1
        for n, future in burst:
            metadata = future.result()
            out.write(f"{n} {metadata.offset}\n")
            out.flush()
    producer.close()
    broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
