"""Cross-checks against kafka-python's independent RecordBatch v2 code (module ``kafka.record``).

Both directions: batches built by kafka-python's ``DefaultRecordBatchBuilder`` are checked and
decoded by logbroker, and batches built by ``encode_batch`` are read by kafka-python's
``MemoryRecords`` / ``DefaultRecordBatch`` with a valid CRC and the same contents.

Codec availability: kafka-python does gzip with the standard library, but needs python-snappy,
lz4 and zstandard for the other codecs, and none of them is installed in this environment (only
cramjam is).  So, with no kafka-python backend for snappy/lz4/zstd, neither direction would work
for those codecs as shipped.  Rather than skip them, ``kafka_codec_backends`` below plugs
cramjam's primitive (de)compressors into kafka-python for any codec it lacks, for the duration of
this module only.  For those three codecs the tests therefore check kafka-python's *framing*
around the codec (notably its xerial snappy-java block framing, which logbroker never writes but
must read, and its fallback to an uncompressed batch), its batch header, CRC and record layout
against ours, while the compression primitive itself is cramjam on both sides.  gzip and
uncompressed batches are cross-checked with kafka-python's own code end to end.  If the real
backends are installed, they are used instead of the stand-ins.
"""

import warnings
from types import SimpleNamespace

import cramjam
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():  # kafka-python's protocol schemas use deprecated importlib calls
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.codec
    import kafka.record.default_records as kdr
    from kafka.record.default_records import ControlRecord, DefaultRecordBatch, DefaultRecordBatchBuilder
    from kafka.record.memory_records import MemoryRecords
    from kafka.record.util import decode_varint as k_decode_varint
    from kafka.record.util import encode_varint as k_encode_varint

from logbroker.errors import CorruptRecordError
from logbroker.records import (
    CODEC_NAMES,
    CREATE_TIME,
    GZIP,
    HEADER_SIZE,
    LOG_APPEND_TIME,
    LZ4,
    NONE,
    SNAPPY,
    ZSTD,
    Record,
    check_batch,
    decode_all,
    decode_records,
    encode_batch,
    encode_control_batch,
    validate_produced,
)
from logbroker.records.varint import decode_varint, encode_varint

from .test_batch import TS, V41, V42, V43, V44

ALL_CODECS = [NONE, GZIP, SNAPPY, LZ4, ZSTD]
NATIVE = {
    NONE: True,
    GZIP: kafka.codec.has_gzip(),
    SNAPPY: kafka.codec.has_snappy(),
    LZ4: kafka.codec.has_lz4(),
    ZSTD: kafka.codec.has_zstd(),
}


@pytest.fixture(scope="module", autouse=True)
def kafka_codec_backends():
    """Give kafka-python a cramjam stand-in for each codec library it lacks (see module doc)."""
    with pytest.MonkeyPatch.context() as mp:
        if not NATIVE[SNAPPY]:
            # kafka.codec.snappy_encode still does its own xerial framing around these raw blocks.
            mp.setattr(kafka.codec, "snappy", SimpleNamespace(
                compress=lambda data: bytes(cramjam.snappy.compress_raw(bytes(data))),
                decompress=lambda data: bytes(cramjam.snappy.decompress_raw(bytes(data)))))
        if not NATIVE[LZ4]:
            mp.setattr(kafka.codec, "lz4", SimpleNamespace())  # makes has_lz4() true
            mp.setattr(kdr, "lz4_encode", lambda data: bytes(cramjam.lz4.compress(bytes(data))))
            mp.setattr(kdr, "lz4_decode", lambda data: bytes(cramjam.lz4.decompress(bytes(data))))
        if not NATIVE[ZSTD]:
            mp.setattr(kafka.codec, "zstd", SimpleNamespace())  # makes has_zstd() true
            mp.setattr(kdr, "zstd_encode", lambda data: bytes(cramjam.zstd.compress(bytes(data))))
            mp.setattr(kdr, "zstd_decode", lambda data: bytes(cramjam.zstd.decompress(bytes(data))))
        assert kafka.codec.has_snappy() and kafka.codec.has_lz4() and kafka.codec.has_zstd()
        yield


def k_build(records, *, codec=NONE, producer=(-1, -1, -1), transactional=False) -> bytes:
    pid, epoch, seq = producer
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=transactional,
                                        producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                                        batch_size=1 << 30)
    for i, (key, value, headers, ts) in enumerate(records):
        assert builder.append(i, timestamp=ts, key=key, value=value, headers=list(headers or [])) is not None
    return bytes(builder.build())


def k_batches(buf: bytes) -> list[DefaultRecordBatch]:
    records = MemoryRecords(buf)
    out = []
    while records.has_next():
        out.append(records.next_batch())
    return out


def k_view(batch: DefaultRecordBatch):
    return [(r.offset, r.timestamp, r.timestamp_type, r.key, r.value, r.headers) for r in batch]


# ---- golden vectors ---------------------------------------------------------------------------

def test_kafka_python_builds_the_golden_data_batches_byte_for_byte():
    assert k_build([(b"k", b"v", None, TS)]) == V41
    assert k_build([(None, b"a", None, TS), (b"k2", b"bb", [("h", b"x")], TS + 5)],
                   producer=(1000, 0, 0)) == V42
    assert k_build([(b"k", None, None, TS)]) == V44


def test_kafka_python_reads_the_golden_vectors():
    batches = k_batches(V41 + V42 + V43 + V44)
    assert [b.base_offset for b in batches] == [0, 0, 2, 0]
    assert all(b.validate_crc() for b in batches)
    b41, b42, b43, b44 = batches
    assert k_view(b41) == [(0, TS, CREATE_TIME, b"k", b"v", [])]
    assert k_view(b42) == [(0, TS, CREATE_TIME, None, b"a", []), (1, TS + 5, CREATE_TIME, b"k2", b"bb", [("h", b"x")])]
    assert (b42.producer_id, b42.producer_epoch, b42.base_sequence, b42.last_sequence) == (1000, 0, 0, 1)
    assert b43.is_control_batch and b43.is_transactional
    [marker] = list(b43)
    assert isinstance(marker, ControlRecord) and marker.commit and marker.version == 0
    assert (marker.offset, marker.timestamp) == (2, TS + 10)
    assert k_view(b44) == [(0, TS, CREATE_TIME, b"k", None, [])]


@pytest.mark.parametrize("control_type,coordinator_epoch", [(0, 5), (1, 2**31 - 1)])
def test_kafka_python_reads_our_control_batches(control_type, coordinator_epoch):
    buf = encode_control_batch(control_type, producer_id=77, producer_epoch=3, timestamp=TS,
                               coordinator_epoch=coordinator_epoch, base_offset=10)
    [batch] = k_batches(buf)
    assert batch.validate_crc()
    assert batch.is_control_batch and batch.is_transactional
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (77, 3, -1)
    [marker] = list(batch)
    assert isinstance(marker, ControlRecord)
    assert (marker.abort, marker.commit, marker.offset) == (control_type == 0, control_type == 1, 10)
    assert marker.value == b"\x00\x00" + coordinator_epoch.to_bytes(4, "big")


# ---- varints ----------------------------------------------------------------------------------

@settings(max_examples=200)
@given(st.integers(-(2**63), 2**63 - 1))
def test_varints_agree_with_kafka_python(value):
    theirs = bytearray()
    k_encode_varint(value, theirs.append)
    ours = encode_varint(value)
    assert ours == bytes(theirs)
    assert k_decode_varint(bytearray(ours), 0) == (value, len(ours))
    assert decode_varint(bytes(theirs), 0) == (value, len(theirs))


# ---- property tests, both directions ------------------------------------------------------------

maybe_bytes = st.none() | st.binary(max_size=30)
headers_st = st.lists(st.tuples(st.text(max_size=6), st.none() | st.binary(max_size=12)), max_size=3)
timestamp_st = st.one_of(st.integers(TS - 5000, TS + 5000), st.integers(0, 2**62))
records_st = st.lists(st.tuples(maybe_bytes, maybe_bytes, headers_st, timestamp_st), min_size=1, max_size=12)
producer_st = st.one_of(
    st.just((-1, -1, -1)),
    st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**15 - 1), st.integers(0, 2**31 - 1)),
)
# Makes every batch worth compressing: kafka-python silently sends a batch uncompressed when the
# codec does not shrink it, and we want the codec path exercised.
PADDING = (b"pad", b"0123456789" * 60, [("pad", b"abc" * 20)], TS)


@settings(max_examples=50, deadline=None)
@given(records=records_st, codec=st.sampled_from(ALL_CODECS), producer=producer_st, transactional=st.booleans())
def test_kafka_python_batches_decode_here(records, codec, producer, transactional):
    assume(not transactional or producer[0] >= 0)
    if codec != NONE:
        records = records + [PADDING]
    buf = k_build(records, codec=codec, producer=producer, transactional=transactional)
    h = check_batch(buf)
    assert validate_produced(buf) == [(0, h)]
    assert h.size == len(buf)
    assert h.compression == codec
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == producer
    assert h.is_transactional == transactional and not h.is_control
    assert (h.records_count, h.last_offset_delta) == (len(records), len(records) - 1)
    assert h.base_timestamp == records[0][3]
    assert h.max_timestamp == max(r[3] for r in records)
    want = [Record("t", 1, i, ts, CREATE_TIME, key, value, tuple(headers))
            for i, (key, value, headers, ts) in enumerate(records)]
    assert decode_records(buf, topic="t", partition=1) == want
    # And kafka-python agrees with itself on what it built.
    [kb] = k_batches(buf)
    assert kb.validate_crc()
    assert [(r.key, r.value, r.headers, r.timestamp) for r in kb] == [(k, v, list(hd), ts) for k, v, hd, ts in records]


@settings(max_examples=50, deadline=None)
@given(
    first=records_st,
    second=records_st,
    codecs=st.tuples(st.sampled_from(ALL_CODECS), st.sampled_from(ALL_CODECS)),
    timestamp_type=st.sampled_from([CREATE_TIME, LOG_APPEND_TIME]),
    append_time=st.integers(0, 2**62),
    base_offset=st.integers(0, 2**60),
    leader_epoch=st.integers(-1, 2**31 - 1),
    producer=producer_st,
    transactional=st.booleans(),
)
def test_our_batches_read_by_kafka_python(first, second, codecs, timestamp_type, append_time, base_offset,
                                          leader_epoch, producer, transactional):
    assume(not transactional or producer[0] >= 0)
    pid, epoch, seq = producer
    max_ts = append_time if timestamp_type == LOG_APPEND_TIME else None
    batches, offsets = [], [base_offset, base_offset + len(first)]
    for records, codec, offset in zip((first, second), codecs, offsets):
        batches.append(encode_batch(records, base_offset=offset, compression_type=codec,
                                    timestamp_type=timestamp_type, producer_id=pid, producer_epoch=epoch,
                                    base_sequence=seq, partition_leader_epoch=leader_epoch,
                                    transactional=transactional, max_timestamp=max_ts))
    buf = b"".join(batches)
    theirs = k_batches(buf)
    assert len(theirs) == 2
    for kb, records, codec, offset in zip(theirs, (first, second), codecs, offsets):
        assert kb.validate_crc()  # must be asked before iterating
        assert (kb.magic, kb.base_offset, kb.leader_epoch) == (2, offset, leader_epoch)
        assert (kb.compression_type, kb.timestamp_type) == (codec, timestamp_type)
        assert (kb.is_transactional, kb.is_control_batch) == (transactional, False)
        assert (kb.producer_id, kb.producer_epoch, kb.base_sequence) == producer
        assert (kb.records_count, kb.last_offset_delta, kb.next_offset) == (
            len(records), len(records) - 1, offset + len(records))
        assert kb.first_timestamp == records[0][3]
        assert kb.max_timestamp == (append_time if max_ts is not None else max(r[3] for r in records))
        assert k_view(kb) == [
            (offset + i, append_time if max_ts is not None else ts, timestamp_type, key, value, list(headers))
            for i, (key, value, headers, ts) in enumerate(records)]
    # Same view from our side of the same bytes.
    ours = decode_all(buf)
    assert [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in ours] == [
        (r.offset, r.timestamp, r.key, r.value, r.headers) for kb in k_batches(buf) for r in kb]


@pytest.mark.parametrize("codec", ALL_CODECS, ids=[CODEC_NAMES[c] for c in ALL_CODECS])
def test_large_kafka_python_batch_decodes_here(codec):
    # > 32 KiB of records: kafka-python's xerial snappy writer splits it into several blocks.
    records = [(b"key-%d" % i, b"value %d " % i * 20, [("i", b"%d" % i)], TS + i) for i in range(600)]
    buf = k_build(records, codec=codec, producer=(9, 0, 100))
    h = check_batch(buf)
    assert h.compression == codec
    if codec == SNAPPY:
        body = buf[HEADER_SIZE:]
        assert body[:8] == b"\x82SNAPPY\x00"  # kafka-python writes xerial framing
        blocks, pos = 0, 16
        while pos < len(body):
            pos += 4 + int.from_bytes(body[pos : pos + 4], "big")
            blocks += 1
        assert pos == len(body) and blocks >= 3  # 32 KiB blocks
    out = decode_records(buf)
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in out] == [
        (i, k, v, tuple(hd), ts) for i, (k, v, hd, ts) in enumerate(records)]
    ours = encode_batch(records, compression_type=codec, producer_id=9, producer_epoch=0, base_sequence=100)
    if codec == NONE:
        assert ours == buf
    [kb] = k_batches(ours)
    assert kb.validate_crc()
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in kb] == [
        (r.offset, r.key, r.value, list(r.headers), r.timestamp) for r in out]


def test_kafka_python_sees_our_damage_too():
    # A flipped byte that our check_batch refuses also fails kafka-python's CRC check.
    for vector in (V41, V42, V44):
        for index in range(21, len(vector)):
            bad = bytearray(vector)
            bad[index] ^= 0x01
            with pytest.raises(CorruptRecordError, match="CRC"):
                check_batch(bytes(bad))
            assert not DefaultRecordBatch(bytes(bad)).validate_crc()
