"""Reading acquired offsets back from the log: records for the Queue, whole stored batches for ShareFetch."""

from __future__ import annotations

from logbroker import Broker
from logbroker.broker.share_reads import read_batches, read_records
from logbroker.records.batch import decode_all, encode_batch_columns


def test_records_and_batches_at_scattered_offsets(tmp_path):
    with Broker.open(tmp_path / "d", housekeeping=False) as broker:
        broker.create_topic("t", 1)
        for first in range(0, 30, 10):  # three batches of ten records: 0-9, 10-19, 20-29
            broker.produce("t", 0, encode_batch_columns(None, [b"%d" % i for i in range(first, first + 10)], None,
                                                        [1] * 10))
        assert [r.value for r in read_records(broker, "t", 0, [25, 3, 4, 3, 99])] == [b"3", b"4", b"25"]
        assert read_records(broker, "t", 0, [30, 31]) == []
        data = read_batches(broker, "t", 0, [3, 4, 25])
        assert [r.offset for r in decode_all(data)] == list(range(0, 10)) + list(range(20, 30))
        assert read_batches(broker, "t", 0, [40]) == b""
        broker.delete_records("t", 0, 10)
        assert [r.value for r in read_records(broker, "t", 0, [5, 15])] == [b"15"]


def test_compacted_away_offsets_have_no_record(tmp_path):
    with Broker.open(tmp_path / "d", housekeeping=False) as broker:
        broker.create_topic("c", 1, {"cleanup.policy": "compact", "segment.bytes": "1024"})
        for i in range(40):
            broker.produce("c", 0, encode_batch_columns([b"k%d" % (i % 2)], [b"%d" % i], None, [1]))
        broker.run_housekeeping(force=True)
        kept = {r.offset for r in broker.iter_records("c", 0)}
        assert len(kept) < 40  # the cleaner removed superseded records
        got = read_records(broker, "c", 0, range(40))
        assert {r.offset for r in got} == kept
