#!/usr/bin/env python
"""Effectively-once: results and offsets commit together, in one transaction of your own database.

    python examples/effectively_once_sqlite.py DATA_DIR [--db results.sqlite] [--produce 1000 --exit-at-end]

The consumer does not rely on the group's committed offsets.  For each poll batch it writes the
results AND, per partition, the offset of the next record to read into ONE sqlite transaction.
Either both are stored or neither is, so after a crash at any moment the database's offsets say
exactly which records its results include.  Whenever partitions are assigned (at start and after a
rebalance) each is sought to the offset stored in sqlite; records before it are never read again.

The transaction also checks that a batch continues where the stored offset of its partition left
off and drops any record below it: a consumer that lost a partition in a rebalance but still holds
a fetched batch (a "zombie") cannot store it twice.  The commit to the group after the transaction
is only for monitoring (lag in ``logbroker group describe``); a crash before it is harmless.
"""

from __future__ import annotations

import argparse
import sqlite3
import time

from _demo import batches, crash_window, parse_args, produce_demo_records

from logbroker import Broker, Consumer
from logbroker.client.consumer import CommitFailedError

# results has no UNIQUE constraint on purpose: a record stored twice would show, not be refused
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (topic TEXT, partition INTEGER, "offset" INTEGER, value BLOB, length INTEGER);
CREATE TABLE IF NOT EXISTS offsets (topic TEXT, partition INTEGER, next_offset INTEGER,
                                    PRIMARY KEY (topic, partition));
"""


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)  # transactions are begun and committed explicitly
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # a committed transaction survives a power loss, too
    db.executescript(SCHEMA)
    return db


def stored_offset(db: sqlite3.Connection, topic: str, partition: int) -> int | None:
    row = db.execute("SELECT next_offset FROM offsets WHERE topic = ? AND partition = ?", (topic, partition)).fetchone()
    return row[0] if row else None


def seek_to_stored_offsets(db: sqlite3.Connection):
    """An on_assign callback: start each assigned partition where the database says."""
    def on_assign(consumer, partitions) -> None:
        for topic, partition in partitions:
            offset = stored_offset(db, topic, partition)
            if offset is None:
                consumer.seek_to_beginning((topic, partition))
            else:
                consumer.seek(topic, partition, offset)
    return on_assign


def store(db: sqlite3.Connection, batch, work_s: float) -> tuple[dict, int]:
    """Results and next offsets of ``batch`` in one transaction; returns (next offsets, records dropped)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        starts: dict[tuple[str, int], int] = {}
        rows, next_offsets = [], {}
        for r in batch:
            key = (r.topic, r.partition)
            if key not in starts:
                starts[key] = stored_offset(db, *key) or 0
            if r.offset >= max(starts[key], next_offsets.get(key, 0)):  # not stored before
                rows.append((r.topic, r.partition, r.offset, r.value, len(r.value)))
                next_offsets[key] = r.offset + 1
        db.executemany('INSERT INTO results (topic, partition, "offset", value, length) VALUES (?, ?, ?, ?, ?)', rows)
        time.sleep(work_s)  # the "work"; a crash anywhere before COMMIT rolls back results and offsets alike
        db.executemany("INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
                       "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                       [(t, p, o) for (t, p), o in next_offsets.items()])
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return next_offsets, len(batch) - len(rows)


def main(args: argparse.Namespace) -> None:
    db = open_db(args.db)
    with Broker.open(args.data_dir) as broker:
        if args.produce:
            produce_demo_records(broker, args.topic, args.produce, args.partitions)
        with Consumer(broker, group=args.group, topics=[args.topic], enable_auto_commit=False,
                      max_poll_records=args.max_poll_records, on_assign=seek_to_stored_offsets(db)) as consumer:
            for number, batch in enumerate(batches(consumer, args.exit_at_end), 1):
                next_offsets, dropped = store(db, batch, args.work_ms / 1000.0)
                if dropped:
                    print(f"dropped {dropped} records stored before", flush=True)
                crash_window(args, number)  # a crash here: the group's offsets lag behind, nothing else
                try:
                    consumer.commit(next_offsets)  # for monitoring only
                except CommitFailedError:
                    pass  # a rebalance is under way; the database has the offsets that matter
    db.close()


if __name__ == "__main__":
    main(parse_args(__doc__, "effectively-once", ("--db", "results.sqlite", "sqlite database of results and offsets")))
