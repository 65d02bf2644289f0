#!/usr/bin/env python
"""Append idempotent batches with a fixed producer id until killed (helper of tests/crash/).

    python tools/crash_idempotent_producer.py DATA_DIR TOPIC PRODUCER_ID FIRST_SEQ [SEED]

Opens (creating if needed) the Broker on DATA_DIR as the writer, creates TOPIC if missing (small
segments, so that rolls, and with them producer-state snapshots, happen while it runs), prints
``ready``, then loops: build one batch of 1-10 records stamped with PRODUCER_ID, epoch 0 and the next
sequence (counting up from FIRST_SEQ; record values ``seq:<n>``), ``broker.produce`` it to partition 0
(returns once fsynced) and print ``<base sequence> <records> <base offset>``, flushing stdout.  A line
on stdout therefore means that batch was durable before the line was written.

Bounded: stops by itself after 100,000 batches or 120 s, so a lost test can never leave it running.
"""

from __future__ import annotations

import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from logbroker import Broker  # noqa: E402
from logbroker.errors import TopicAlreadyExistsError  # noqa: E402
from logbroker.records import encode_batch  # noqa: E402

TOPIC_CONFIG = {"segment.bytes": "8192", "index.interval.bytes": "1024"}
MAX_BATCHES = 100_000
MAX_SECONDS = 120
TIMESTAMP = 1_700_000_000_000


def idempotent_batch(producer_id: int, first_seq: int, count: int, padding: int = 0) -> bytes:
    """The batch this tool sends for sequences ``first_seq`` .. ``first_seq + count - 1``."""
    records = [(None, b"seq:%d" % (first_seq + i) + b"." * padding, None, TIMESTAMP + first_seq + i)
               for i in range(count)]
    return encode_batch(records, producer_id=producer_id, producer_epoch=0, base_sequence=first_seq)


def main(argv: list[str]) -> int:
    data_dir, topic, producer_id, seq = argv[1], argv[2], int(argv[3]), int(argv[4])
    rng = random.Random(int(argv[5]) if len(argv) > 5 else None)
    broker = Broker.open(data_dir, housekeeping=False)
    if topic not in broker.list_topics():
        try:
            broker.create_topic(topic, 1, TOPIC_CONFIG)
        except TopicAlreadyExistsError:
            pass
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    deadline = time.monotonic() + MAX_SECONDS
    for _ in range(MAX_BATCHES):
        if time.monotonic() >= deadline:
            break
        count = rng.randint(1, 10)
        info = broker.produce(topic, 0, idempotent_batch(producer_id, seq, count, rng.randint(0, 100)))
        out.write(f"{seq} {count} {info.base_offset}\n")
        out.flush()
        seq += count
    broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
