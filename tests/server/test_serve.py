"""``logbroker serve`` as a process: listening line, lock file, clean SIGTERM, restart, SIGKILL while
producing with acks=all, a second owner refused, a non-loopback address warned about."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from logbroker.records.batch import decode_all, encode_batch
from logbroker.storage.lock import read_lock_owner
from logbroker.storage.log_manager import CLEAN_SHUTDOWN_MARKER

from .support import ServeProcess, WireClient, subprocess_env
from .test_wire import FETCH, METADATA, PRODUCE, fetch_body, produce_body

OFFSET_COMMIT, OFFSET_FETCH = 8, 9


def values_at(client: WireClient, topic: str, partition: int = 0) -> list[tuple[int, bytes]]:
    """Every (offset, value) of a partition, read over the wire."""
    out = []
    offset = 0
    while True:
        body = client.call(FETCH, 11, fetch_body(topic, offset, partition=partition))
        part = body["responses"][0]["partitions"][0]
        assert part["error_code"] == 0, part
        records = decode_all(bytes(part["records"]))
        if not records:
            return out
        out += [(r.offset, r.value) for r in records if r.offset >= offset]
        offset = records[-1].offset + 1


def test_sigterm_shuts_down_cleanly_and_a_restart_serves_the_same_data(tmp_path):
    data = tmp_path / "data"
    server = ServeProcess(data).start()
    try:
        owner = read_lock_owner(str(data))
        assert owner == {"pid": str(server.proc.pid), "listen": server.bootstrap}
        assert f"listening on {server.bootstrap}" in server.stderr()
        with WireClient(server.port) as client:
            for i in range(5):
                part = client.call(PRODUCE, 7, produce_body("kept", encode_batch([(None, b"%d" % i, [], 1)])))
                assert part["responses"][0]["partition_responses"][0]["error_code"] == 0
            commit = client.call(OFFSET_COMMIT, 3, {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "",
                                                    "retention_time_ms": -1, "topics": [{"name": "kept", "partitions": [
                                                        {"partition_index": 0, "committed_offset": 3,
                                                         "committed_metadata": "m"}]}]})
            assert commit["topics"][0]["partitions"][0]["error_code"] == 0
            cluster_id = client.call(METADATA, 4, {"topics": None})["cluster_id"]
            # a long poll in flight when SIGTERM arrives is answered (with what there is), not dropped
            client.send(FETCH, 11, fetch_body("kept", 5, max_wait_ms=30_000))
            time.sleep(0.2)
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            _, body = client.recv(timeout=10)
            assert bytes(body["responses"][0]["partitions"][0]["records"]) == b""
            assert client.closed_by_server(10)
        assert server.wait(20) == 0
        assert time.monotonic() - started < 10
    finally:
        if server.proc.poll() is None:
            server.kill()
    assert (data / CLEAN_SHUTDOWN_MARKER).exists()
    assert "Traceback" not in server.stderr()

    with ServeProcess(data) as again:
        assert "recovered" not in again.stderr()
        with WireClient(again.port) as client:
            assert values_at(client, "kept") == [(i, b"%d" % i) for i in range(5)]
            fetched = client.call(OFFSET_FETCH, 3, {"group_id": "g", "topics": None})
            assert [(t["name"], p["committed_offset"], p["metadata"]) for t in fetched["topics"]
                    for p in t["partitions"]] == [("kept", 3, "m")]
            assert client.call(METADATA, 4, {"topics": None})["cluster_id"] == cluster_id
        assert again.terminate() == 0


def test_sigkill_during_acks_all_produce_loses_nothing_acknowledged(tmp_path):
    data = tmp_path / "data"
    server = ServeProcess(data, "--no-auto-create").start()
    acknowledged: dict[bytes, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    with WireClient(server.port) as admin:
        created = admin.call(19, 4, {"topics": [{"name": "crash", "num_partitions": 1, "replication_factor": 1,
                                                 "assignments": [], "configs": []}], "timeout_ms": 1000,
                                     "validate_only": False})
        assert created["topics"][0]["error_code"] == 0

    def produce(worker: int) -> None:
        try:
            client = WireClient(server.port, timeout=5)
        except OSError:
            return
        n = 0
        try:
            while not stop.is_set():
                # pipeline 4 requests, then read their answers (acks=all)
                sent = []
                for _ in range(4):
                    value = b"w%d-%d" % (worker, n)
                    n += 1
                    client.send(PRODUCE, 7, produce_body("crash", encode_batch([(None, value, [], 1)])))
                    sent.append(value)
                for value in sent:
                    _, body = client.recv(timeout=5)
                    part = body["responses"][0]["partition_responses"][0]
                    if part["error_code"] == 0:
                        with lock:
                            acknowledged[value] = part["base_offset"]
        except (OSError, AssertionError, TimeoutError):
            return  # the server died under us: whatever was acknowledged is what counts
        finally:
            client.close()

    workers = [threading.Thread(target=produce, args=(w,), daemon=True) for w in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill()
    stop.set()
    for worker in workers:
        worker.join(10)
    with lock:
        acked = dict(acknowledged)
    assert len(acked) >= 200

    with ServeProcess(data) as again:
        with WireClient(again.port) as client:
            stored = dict((value, offset) for offset, value in values_at(client, "crash"))
        assert again.terminate() == 0
    missing = {v: o for v, o in acked.items() if stored.get(v) != o}
    assert not missing, f"{len(missing)} acknowledged records lost or moved, e.g. {list(missing.items())[:5]}"


def test_a_second_server_on_the_same_directory_is_refused(tmp_path):
    data = tmp_path / "data"
    with ServeProcess(data) as first:
        proc = subprocess.run([sys.executable, "-m", "logbroker", "serve", "--data-dir", str(data), "--listen",
                               "127.0.0.1:0"], capture_output=True, text=True, timeout=30, env=subprocess_env())
        assert proc.returncode == 1
        assert f"in use by process {first.proc.pid}" in proc.stderr
        assert f"serving on {first.bootstrap}" in proc.stderr
        assert "listening" not in proc.stdout
        assert first.terminate() == 0


def test_a_bad_listen_address_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "logbroker", "serve", "--data-dir", str(tmp_path / "d"),
                           "--listen", "127.0.0.1:99999"], capture_output=True, text=True, timeout=30,
                          env=subprocess_env())
    assert proc.returncode == 2 and "--listen" in proc.stderr


def test_a_non_loopback_address_is_served_with_a_warning(tmp_path):
    with ServeProcess(tmp_path / "data", listen="0.0.0.0:0") as server:
        assert "non-loopback" in server.stderr() and "explicitly" in server.stderr()
        assert server.stdout.decode().startswith("logbroker listening on 0.0.0.0:")
        with WireClient(server.port) as client:
            brokers = client.call(METADATA, 4, {"topics": None})["brokers"]
        # clients are sent back to the address they reached, not to 0.0.0.0
        assert brokers == [{"node_id": 0, "host": "127.0.0.1", "port": server.port, "rack": None}]
        assert server.terminate() == 0


def test_sigint_also_stops_cleanly(tmp_path):
    data = tmp_path / "data"
    server = ServeProcess(data).start()
    server.signal(signal.SIGINT)
    assert server.wait(20) == 0
    assert (data / CLEAN_SHUTDOWN_MARKER).exists()
