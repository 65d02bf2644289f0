"""What the delivery-semantics examples share: their command line, demo data, the crash-window hook.

Each example is ``python examples/<name>.py DATA_DIR [options]``; ``--produce N`` first fills the
topic with N records (values ``record-<i>``) so an example runs on an empty directory, and
``--exit-at-end`` stops once every assigned partition has been read to its end (otherwise the
example runs until interrupted, like a service).

``--crash-window-after N`` is for tests: after batch N the example prints ``crash-window`` and
waits (at most 60 s) at the point where that example's guarantee is decided, so a test can SIGKILL
the process exactly there.
"""

from __future__ import annotations

import argparse
import sys
import time

from logbroker import Producer


def parse_args(description: str, group: str, output: tuple[str, str, str]) -> argparse.Namespace:
    """The shared options, plus ``output`` = (option, default, help) naming where results go."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("--topic", default="events")
    ap.add_argument("--group", default=group)
    ap.add_argument(output[0], default=output[1], help=output[2])
    ap.add_argument("--produce", type=int, default=0, metavar="N", help="first produce N demo records")
    ap.add_argument("--partitions", type=int, default=3, help="partitions of a topic made by --produce")
    ap.add_argument("--max-poll-records", type=int, default=100)
    ap.add_argument("--exit-at-end", action="store_true", help="stop once everything assigned has been read")
    ap.add_argument("--work-ms", type=float, default=0.0, help="effectively_once_sqlite.py: the work per batch")
    ap.add_argument("--crash-window-after", type=int, default=0, metavar="N", help=argparse.SUPPRESS)
    return ap.parse_args()


def produce_demo_records(broker, topic: str, n: int, partitions: int) -> None:
    if topic not in broker.list_topics():
        broker.create_topic(topic, partitions)
    with Producer(broker) as producer:
        for i in range(n):
            producer.send(topic, f"record-{i}".encode())


def batches(consumer, exit_at_end: bool, timeout: float = 60.0):
    """Non-empty poll batches; with ``exit_at_end``, stop once the assigned partitions are read to
    their ends (or after ``timeout`` seconds without any record)."""
    idle_since = time.monotonic()
    while True:
        batch = consumer.poll(timeout=0.2)
        if batch:
            idle_since = time.monotonic()
            yield batch
        elif exit_at_end and ((consumer.assignment() and consumer.at_end())
                              or time.monotonic() - idle_since > timeout):
            return


def crash_window(args, batch_number: int) -> None:
    """Test hook: stop here (announced on stdout) so the test can SIGKILL this process here."""
    if batch_number == args.crash_window_after:
        print("crash-window", flush=True)
        time.sleep(60)
        sys.exit("crash-window: nobody killed this process")
