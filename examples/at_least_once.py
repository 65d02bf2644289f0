#!/usr/bin/env python
"""At-least-once: process a batch, then commit it.

    python examples/at_least_once.py DATA_DIR [--out processed.txt] [--produce 1000 --exit-at-end]

Each poll batch is processed first (here: appended to ``--out`` and fsynced) and committed after.
A crash between the two loses nothing: the group's committed offset still points at the batch, so
the next consumer of the partition gets it again.  The price is duplicates: whatever was processed
after the last commit is processed twice.  Make the processing idempotent, or tolerate them.
"""

from __future__ import annotations

import os

from _demo import batches, crash_window, parse_args, produce_demo_records

from logbroker import Broker, Consumer

OUTPUT = ("--out", "processed.txt", "file the processed records are appended to")


def main() -> None:
    args = parse_args(__doc__, "at-least-once", OUTPUT)
    with Broker.open(args.data_dir) as broker:
        if args.produce:
            produce_demo_records(broker, args.topic, args.produce, args.partitions)
        with Consumer(broker, group=args.group, topics=[args.topic], enable_auto_commit=False,
                      max_poll_records=args.max_poll_records) as consumer, open(args.out, "ab") as out:
            for number, batch in enumerate(batches(consumer, args.exit_at_end), 1):
                for record in batch:  # 1. process
                    out.write(b"%d %d %s\n" % (record.partition, record.offset, record.value))
                out.flush()
                os.fsync(out.fileno())
                crash_window(args, number)  # a crash here: the batch is delivered again
                consumer.commit()  # 2. commit (synchronous: durable when it returns)


if __name__ == "__main__":
    main()
