"""SIGKILL share consumers (confluent_kafka ShareConsumer) and the ``logbroker serve`` they read from,
again and again: no record is acknowledged twice, each dead letter is copied exactly once, nothing is lost.

The topic (3 partitions, 1,500 records with unique values, every 37th *poison*) is written into the
data directory first, and the share group configured there (auto offset reset earliest, 1 s record
locks, delivery count limit 3, a dead-letter topic); then ``logbroker serve`` runs on it (with
``--share-auto-offset-reset earliest``) and 3 consumer processes (``tools/crash_share_consumer.py``:
explicit acknowledgement mode, 8 records a poll, poison rejected at once with a ``commit_sync`` of its
own, the others, after some "work", released at random or accepted, sometimes only after the locks
expired, then ``commit_sync``).  Each consumer fsyncs ``T`` lines before ``commit_sync`` and ``A``
lines for the partitions it reported no error for (``N`` with the error code, ``U`` when it raised or
did not answer for that partition).  Only INVALID_RECORD_STATE (121) counts as a refusal: a transport
error (-195 and the like, when the server died) leaves the outcome unknown, as does a missing line.

Each round SIGKILLs, after a random delay, one consumer (restarted at once, under a new run number)
or the server.  A killed server is restarted on the same data directory and port; the consumers keep
running and must find it again.  While it is down the test opens the directory (alternately
read-only and as the writer, which finishes pending dead letters) and makes the checks of
test_kill_queue.py's ``check_view``: no record has two ``A`` lines, every ``A`` record is durably
acknowledged and never dead-lettered, each dead letter is copied once and faithfully with a delivery
count of at most 3, ARCHIVED means copied, poison is dead-lettered as rejected.  After a consumer
kill, the side files alone are checked for duplicate acceptances.

Then the consumers run until every share-partition's start offset is the log end offset (a read-only
look at the directory every half second), stop cleanly, and the server is stopped with SIGTERM (exit
status 0).  Final checks: as after each kill, plus nothing acquired, available or being dead-lettered,
lag 0; every record accepted or dead-lettered, except accepts whose outcome a kill made unknown (at
most a batch per consumer per server kill and a batch per consumer kill; the broker finished them); every poison record dead-lettered; at least one record ran out
of deliveries; the data directory verifies clean.  The seed is random and printed with any failure;
set CRASH_SHARE_SEED to replay it.
"""

from __future__ import annotations

import os
import pathlib
import random
import signal
import sys
import time
from collections import Counter

import pytest

from helpers import ChildProcess

from .test_kill_queue import (BrokerView, Layout, check_final, check_view, produce, read_side_files,
                              wait_for_dead_letter)


REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "crash_share_consumer.py"
LAYOUT = Layout("crash-sq", "crash-share-net", "crash-sq-dlq")
LOCK_MS = 1000
KILLS = 12
SERVE_KILLS = 4  # of the KILLS; the others kill a consumer
TIME_BUDGET_S = 45  # hard stop for the kill rounds
START_TIMEOUT_S = 20
FINAL_TIMEOUT_S = 40
CONSUMER_OPTIONS = ["--topic", LAYOUT.topic, "--group", LAYOUT.group, "--max-batch", str(LAYOUT.max_batch),
                    "--release", "0.2", "--late", "0.02", "--late-s", str(LOCK_MS / 1000 * 1.3), "--work-ms", "200",
                    "--max-seconds", "100"]
LISTENING = b"logbroker listening on "


def start_serve(data_dir: str, port: int, n: int, tmp_path) -> tuple[ChildProcess, int]:
    argv = [sys.executable, "-m", "logbroker", "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}",
            "--share-auto-offset-reset", "earliest"]
    serve = ChildProcess(argv, str(tmp_path / f"serve-{n}.stderr"), ready_prefixes=(LISTENING,))
    assert serve.ready.wait(START_TIMEOUT_S), "serve never said it was listening"
    listening = [line for line in serve.lines if line.startswith(LISTENING)]
    assert listening, (serve.proc.poll(), serve.lines, open(serve.stderr_path, "rb").read()[-3000:])
    return serve, int(listening[0].rsplit(b":", 1)[1])


def start_consumer(bootstrap: str, side_file: str, slot: int, run: int, seed: int, stop_file: str) -> ChildProcess:
    argv = [sys.executable, str(SCRIPT), bootstrap, f"{side_file}.c{slot}", str(run), str(seed), *CONSUMER_OPTIONS,
            "--stop-file", stop_file]
    return ChildProcess(argv, f"{side_file}.stderr-{run}")


def configure_group(data_dir: str) -> None:
    from logbroker import Broker

    with Broker.open(data_dir, housekeeping=False) as broker:
        broker.shares.configure(LAYOUT.group, auto_offset_reset="earliest", dead_letter_topic=LAYOUT.dlq,
                                delivery_count_limit=LAYOUT.max_deliveries, lock_duration_ms=LOCK_MS)


def check_no_double_accept(where: str, lines) -> None:
    accepted = Counter((p, o) for kind, _r, _c, p, o, _code in lines if kind == b"A")
    twice = sorted(k for k, n in accepted.items() if n > 1)
    assert not twice, f"{where}: acknowledged twice: {twice[:5]} " + \
        str([line for line in lines if (line[3], line[4]) in twice[:1]])


@pytest.mark.slow
def test_sigkill_share_consumers_and_server_never_acknowledges_twice_and_loses_nothing(tmp_path):
    seed = int(os.environ.get("CRASH_SHARE_SEED") or random.randrange(1 << 32))
    try:
        run_rounds(tmp_path, seed)
    except AssertionError as exc:
        raise AssertionError(f"[seed {seed}; replay with CRASH_SHARE_SEED={seed}] {exc}") from None


def run_rounds(tmp_path, seed: int) -> None:
    from logbroker.inspect import verify_data_dir

    layout = LAYOUT
    rng = random.Random(seed)
    data_dir, side_file, stop_file = str(tmp_path / "data"), str(tmp_path / "side"), str(tmp_path / "stop")
    produced = produce(data_dir, layout)
    configure_group(data_dir)
    serve_starts = 0
    serve, port = start_serve(data_dir, 0, serve_starts, tmp_path)
    bootstrap = f"127.0.0.1:{port}"
    runs = 0
    consumers: list[ChildProcess] = []
    try:
        for slot in range(layout.consumers):
            consumers.append(start_consumer(bootstrap, side_file, slot, runs, rng.randrange(1 << 32), stop_file))
            runs += 1
        victims = ["serve"] * SERVE_KILLS + ["consumer"] * (KILLS - SERVE_KILLS)
        rng.shuffle(victims)
        deadline = time.monotonic() + TIME_BUDGET_S
        kills_mid_work = dead_letter_kills = serve_kills = 0
        for round_no, victim in enumerate(victims):
            assert time.monotonic() < deadline, f"time budget spent after {round_no} rounds"
            if victim == "serve" and serve_kills % 2 == 1:  # right after a dead letter was copied
                time.sleep(rng.uniform(0.1, 0.4))
                dead_letter_kills += wait_for_dead_letter(data_dir, layout.dlq)
            else:
                time.sleep(rng.uniform(0.2, 1.2))
            if victim == "consumer":
                slot = rng.randrange(layout.consumers)
                was_alive = consumers[slot].signal(signal.SIGKILL)
                returncode, stderr = consumers[slot].reap()
                assert was_alive and returncode == -signal.SIGKILL, (slot, returncode, stderr[-3000:])
                check_no_double_accept(f"round {round_no} (consumer {slot} killed)",
                                       read_side_files(side_file, layout.consumers))
                consumers[slot] = start_consumer(bootstrap, side_file, slot, runs, rng.randrange(1 << 32), stop_file)
                runs += 1
                continue
            was_alive = serve.signal(signal.SIGKILL)
            returncode, stderr = serve.reap()
            assert was_alive and returncode == -signal.SIGKILL, (returncode, stderr[-3000:])
            writer = serve_kills % 2 == 1
            serve_kills += 1
            where = f"round {round_no} (serve killed; {'writer' if writer else 'read-only'})"
            view = BrokerView(data_dir, writer, layout)
            check_view(where, view, produced, read_side_files(side_file, layout.consumers), layout, writer=writer)
            kills_mid_work += view.settled() < layout.records
            serve_starts += 1
            serve, _ = start_serve(data_dir, port, serve_starts, tmp_path)

        final_deadline = time.monotonic() + FINAL_TIMEOUT_S
        settled = -1
        while time.monotonic() < final_deadline:
            for slot, consumer in enumerate(consumers):
                assert consumer.proc.poll() is None, (slot, consumer.reap()[1][-3000:])
            time.sleep(0.5)
            try:
                settled = BrokerView(data_dir, False, layout).settled()
            except Exception:  # noqa: BLE001 - a read-only look while serve writes may catch a batch half-written
                continue
            if settled == layout.records:
                break
        assert settled == layout.records, f"only {settled} of {layout.records} records settled in {FINAL_TIMEOUT_S}s"
        with open(stop_file, "wb"):
            pass
        for slot, consumer in enumerate(consumers):
            returncode, stderr = consumer.reap()
            assert returncode == 0 and consumer.finished, f"consumer {slot} did not stop cleanly: {returncode} " \
                                                          f"{stderr[-3000:]}"
        serve.signal(signal.SIGTERM)
        returncode, stderr = serve.reap()
        assert returncode == 0, f"serve did not stop cleanly: {returncode} {stderr[-3000:]}"
    finally:
        for process in [serve, *consumers]:
            if process.proc.poll() is None:
                process.signal(signal.SIGKILL)
                process.reap()

    lines = read_side_files(side_file, layout.consumers)
    view = BrokerView(data_dir, True, layout)
    letters = check_view("final", view, produced, lines, layout, writer=True)
    consumer_kills = KILLS - SERVE_KILLS
    max_lost = (SERVE_KILLS * layout.consumers + consumer_kills) * layout.max_batch
    stats = check_final(view, produced, lines, layout, letters, max_lost)
    assert verify_data_dir(data_dir) == []
    assert kills_mid_work >= SERVE_KILLS // 2, f"only {kills_mid_work} of {SERVE_KILLS} server kills hit mid-work"
    print(f"seed {seed}: {KILLS} kills ({SERVE_KILLS} of serve, {kills_mid_work} before all was settled, "
          f"{dead_letter_kills} right after a dead letter was copied); {runs} consumer runs; {stats}")
