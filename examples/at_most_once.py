#!/usr/bin/env python
"""At-most-once: commit a batch, then process it.

    python examples/at_most_once.py DATA_DIR [--out processed.txt] [--produce 1000 --exit-at-end]

Each poll batch is committed first and processed (here: appended to ``--out``) after.  A crash
between the two never processes anything twice, but loses the batch: the group has already moved
past it.  Fit for data where a gap is cheaper than a duplicate (metrics samples, say).
"""

from __future__ import annotations

import os

from _demo import batches, crash_window, parse_args, produce_demo_records

from logbroker import Broker, Consumer

OUTPUT = ("--out", "processed.txt", "file the processed records are appended to")


def main() -> None:
    args = parse_args(__doc__, "at-most-once", OUTPUT)
    with Broker.open(args.data_dir) as broker:
        if args.produce:
            produce_demo_records(broker, args.topic, args.produce, args.partitions)
        with Consumer(broker, group=args.group, topics=[args.topic], enable_auto_commit=False,
                      max_poll_records=args.max_poll_records) as consumer, open(args.out, "ab") as out:
            for number, batch in enumerate(batches(consumer, args.exit_at_end), 1):
                consumer.commit()  # 1. commit what this poll returned (durable when it returns)
                crash_window(args, number)  # a crash here: the batch is never processed
                for record in batch:  # 2. process
                    out.write(b"%d %d %s\n" % (record.partition, record.offset, record.value))
                out.flush()
                os.fsync(out.fileno())


if __name__ == "__main__":
    main()
