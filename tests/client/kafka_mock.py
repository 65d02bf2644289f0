"""librdkafka's built-in mock Kafka cluster, for tests of the network clients without a server.

confluent-kafka does not wrap librdkafka's mock-cluster API, so this calls it through ctypes in the
librdkafka that confluent-kafka ships: ``rd_kafka_mock_cluster_new`` on a bare client handle gives
brokers listening on 127.0.0.1 (``bootstrap``) that any client can use while the cluster lives.
The mock serves Produce, Fetch, ListOffsets (earliest / latest only: it answers -1 to a
timestamp), Metadata (creating unknown topics a producer asks about), the group protocol
(FindCoordinator, Join/Sync/Heartbeat/LeaveGroup, OffsetCommit/OffsetFetch), InitProducerId; it
does not serve CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, IncrementalAlterConfigs,
ListGroups, DescribeGroups or DeleteGroups (librdkafka answers _UNSUPPORTED_FEATURE, -165): topics
are made with ``create_topic`` here, and those APIs are tested against ``logbroker serve``
(tests/cli/test_bootstrap_serve.py).  Its Produce answers carry a LogAppendTime of 1234, so a
producer's RecordMetadata.timestamp is 1234 against the mock.
"""

from __future__ import annotations

import ctypes
import glob
import os

_LIB = None


def _lib():
    global _LIB
    if _LIB is None:
        import confluent_kafka

        here = os.path.dirname(confluent_kafka.__file__)
        candidates = glob.glob(os.path.join(here + ".libs", "librdkafka*.so*")) or \
            glob.glob(os.path.join(here, ".dylibs", "librdkafka*.dylib"))
        lib = ctypes.CDLL(candidates[0]) if candidates else ctypes.CDLL("librdkafka.so.1")
        p, i, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
        for name, restype, argtypes in [
            ("rd_kafka_conf_new", p, []),
            ("rd_kafka_conf_set", i, [p, s, s, s, ctypes.c_size_t]),
            ("rd_kafka_new", p, [i, p, s, ctypes.c_size_t]),
            ("rd_kafka_destroy", None, [p]),
            ("rd_kafka_mock_cluster_new", p, [p, i]),
            ("rd_kafka_mock_cluster_destroy", None, [p]),
            ("rd_kafka_mock_cluster_bootstraps", s, [p]),
            ("rd_kafka_mock_topic_create", i, [p, s, i, i]),
            ("rd_kafka_mock_group_initial_rebalance_delay_ms", i, [p, ctypes.c_int32]),
            ("rd_kafka_mock_set_controller_id", i, [p, ctypes.c_int32]),
        ]:
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        _LIB = lib
    return _LIB


class MockCluster:
    """A mock Kafka cluster of ``brokers`` brokers on 127.0.0.1; ``close()`` when done (after the
    clients using it are closed)."""

    def __init__(self, brokers: int = 1):
        lib = _lib()
        conf = lib.rd_kafka_conf_new()
        errstr = ctypes.create_string_buffer(512)
        lib.rd_kafka_conf_set(conf, b"log_level", b"0", errstr, len(errstr))  # the mock's own log lines
        self._rk = lib.rd_kafka_new(0, conf, errstr, len(errstr))  # RD_KAFKA_PRODUCER
        if not self._rk:
            raise RuntimeError(f"rd_kafka_new failed: {errstr.value.decode()}")
        self._cluster = lib.rd_kafka_mock_cluster_new(self._rk, brokers)
        if not self._cluster:
            lib.rd_kafka_destroy(self._rk)
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._cluster, 0)
        lib.rd_kafka_mock_set_controller_id(self._cluster, 1)  # else admin requests wait for one
        self.bootstrap = lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()

    def create_topic(self, name: str, partitions: int = 1) -> None:
        code = _lib().rd_kafka_mock_topic_create(self._cluster, name.encode(), partitions, 1)
        if code:
            raise RuntimeError(f"rd_kafka_mock_topic_create({name!r}) failed with error {code}")

    def close(self) -> None:
        if self._cluster:
            lib = _lib()
            lib.rd_kafka_mock_cluster_destroy(self._cluster)
            lib.rd_kafka_destroy(self._rk)
            self._cluster = self._rk = None

    def __enter__(self) -> "MockCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
