"""RecordBatch v2 encode / decode / check / validate (FORMAT.md §1-4)."""

import struct

import cramjam
import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from logbroker.errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError
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
    IncompleteBatchError,
    Record,
    check_batch,
    decode_all,
    decode_records,
    encode_batch,
    encode_control_batch,
    iter_batches,
    read_header,
    validate_produced,
)
from logbroker.records.batch import (
    describe_control_record,
    encode_batch_columns,
    set_base_offset,
    set_log_append_time,
)

TS = 1700000000000
ALL_CODECS = [NONE, GZIP, SNAPPY, LZ4, ZSTD]


def hexdump(text: str) -> bytes:
    """Bytes from FORMAT.md's 'OFFSET: xx xx ...' dump lines."""
    return bytes.fromhex("".join(line.split(":", 1)[1] for line in text.strip().splitlines()))


# ---- FORMAT.md §4 golden vectors ---------------------------------------------------------------

V41 = hexdump("""
0000: 00 00 00 00 00 00 00 00 00 00 00 3a 00 00 00 00
0010: 02 e9 9b 8d d8 00 00 00 00 00 00 00 00 01 8b cf
0020: e5 68 00 00 00 01 8b cf e5 68 00 ff ff ff ff ff
0030: ff ff ff ff ff ff ff ff ff 00 00 00 01 10 00 00
0040: 00 02 6b 02 76 00
""")

V41_AT_42 = bytes.fromhex("00 00 00 00 00 00 00 2a 00 00 00 3a ff ff ff ff 02 e9 9b 8d d8") + V41[21:]

V42 = hexdump("""
0000: 00 00 00 00 00 00 00 00 00 00 00 48 00 00 00 00
0010: 02 ef 83 ae a7 00 00 00 00 00 01 00 00 01 8b cf
0020: e5 68 00 00 00 01 8b cf e5 68 05 00 00 00 00 00
0030: 00 03 e8 00 00 00 00 00 00 00 00 00 02 0e 00 00
0040: 00 01 02 61 00 1c 00 0a 02 04 6b 32 04 62 62 02
0050: 02 68 02 78
""")

V43 = hexdump("""
0000: 00 00 00 00 00 00 00 02 00 00 00 42 00 00 00 00
0010: 02 91 a3 67 63 00 30 00 00 00 00 00 00 01 8b cf
0020: e5 68 0a 00 00 01 8b cf e5 68 0a 00 00 00 00 00
0030: 00 03 e8 00 00 ff ff ff ff 00 00 00 01 20 00 00
0040: 00 08 00 00 00 01 0c 00 00 00 00 00 00 00
""")

V44 = hexdump("""
0000: 00 00 00 00 00 00 00 00 00 00 00 39 00 00 00 00
0010: 02 cf d5 ef f8 00 00 00 00 00 00 00 00 01 8b cf
0020: e5 68 00 00 00 01 8b cf e5 68 00 ff ff ff ff ff
0030: ff ff ff ff ff ff ff ff ff 00 00 00 01 0e 00 00
0040: 00 02 6b 01 00
""")


def test_golden_vector_sizes_match_the_document():
    assert (len(V41), len(V42), len(V43), len(V44)) == (70, 84, 78, 69)


def test_golden_41_encode():
    assert encode_batch([(b"k", b"v", None, TS)]) == V41


def test_golden_42_encode():
    records = [(None, b"a", None, TS), (b"k2", b"bb", [("h", b"x")], TS + 5)]
    assert encode_batch(records, producer_id=1000, producer_epoch=0, base_sequence=0) == V42


def test_golden_43_encode():
    assert encode_control_batch(1, producer_id=1000, producer_epoch=0, timestamp=TS + 10, base_offset=2) == V43


def test_golden_44_encode():
    assert encode_batch([(b"k", None, None, TS)]) == V44


def test_golden_41_decode():
    h = check_batch(V41)
    assert read_header(V41) == h
    assert (h.base_offset, h.batch_length, h.partition_leader_epoch, h.magic, h.crc) == (0, 58, 0, 2, 0xE99B8DD8)
    assert (h.attributes, h.last_offset_delta, h.records_count) == (0, 0, 1)
    assert (h.base_timestamp, h.max_timestamp) == (TS, TS)
    assert (h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence) == (-1, -1, -1, -1)
    assert (h.size, h.last_offset, h.next_offset, h.compression, h.timestamp_type) == (70, 0, 1, NONE, CREATE_TIME)
    assert not h.is_control and not h.is_transactional
    assert decode_records(V41, topic="t", partition=3) == [
        Record("t", 3, 0, TS, CREATE_TIME, b"k", b"v", ())]


def test_golden_42_decode():
    h = check_batch(V42)
    assert (h.batch_length, h.crc, h.last_offset_delta, h.records_count) == (72, 0xEF83AEA7, 1, 2)
    assert (h.base_timestamp, h.max_timestamp) == (TS, TS + 5)
    assert (h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence) == (1000, 0, 0, 1)
    assert decode_records(V42) == [
        Record(None, -1, 0, TS, CREATE_TIME, None, b"a", ()),
        Record(None, -1, 1, TS + 5, CREATE_TIME, b"k2", b"bb", (("h", b"x"),)),
    ]


def test_golden_43_decode():
    h = check_batch(V43)
    assert (h.base_offset, h.batch_length, h.crc, h.attributes) == (2, 66, 0x91A36763, 0x30)
    assert h.is_control and h.is_transactional
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (1000, 0, -1)
    assert (h.base_timestamp, h.max_timestamp, h.next_offset) == (TS + 10, TS + 10, 3)
    [rec] = decode_records(V43)
    assert rec == Record(None, -1, 2, TS + 10, CREATE_TIME, b"\x00\x00\x00\x01", b"\x00" * 6, ())
    assert describe_control_record(rec) == "COMMIT (coordinator epoch 0)"
    # Readers skip control batches by default.
    assert decode_all(V43) == []
    assert decode_all(V43, skip_control=False) == [rec]


def test_golden_44_decode():
    h = check_batch(V44)
    assert (h.batch_length, h.crc) == (57, 0xCFD5EFF8)
    assert decode_records(V44) == [Record(None, -1, 0, TS, CREATE_TIME, b"k", None, ())]


def test_golden_41_restamped_keeps_crc():
    # Bytes 0-7 and 12-15 are outside the CRC: restamping touches nothing else.
    buf = bytearray(V41)
    set_base_offset(buf, 0, 42)
    struct.pack_into(">i", buf, 12, -1)
    assert bytes(buf) == V41_AT_42
    assert encode_batch([(b"k", b"v", None, TS)], base_offset=42, partition_leader_epoch=-1) == V41_AT_42
    h = check_batch(V41_AT_42)
    assert (h.base_offset, h.partition_leader_epoch, h.crc) == (42, -1, 0xE99B8DD8)
    assert V41_AT_42[17:21] == bytes.fromhex("e99b8dd8")
    assert [r.offset for r in decode_records(V41_AT_42)] == [42]


def test_golden_vectors_concatenated():
    buf = V41 + V42 + V43 + V44
    assert [(pos, h.crc) for pos, h in iter_batches(buf)] == [
        (0, 0xE99B8DD8), (70, 0xEF83AEA7), (154, 0x91A36763), (232, 0xCFD5EFF8)]
    assert [(r.offset, r.key, r.value) for r in decode_all(buf)] == [
        (0, b"k", b"v"), (0, None, b"a"), (1, b"k2", b"bb"), (0, b"k", None)]
    positions = [pos for pos, _ in validate_produced(V41 + V42 + V44)]
    assert positions == [0, 70, 154]
    for vector in (V41, V41_AT_42, V42, V43, V44):
        check_batch(vector)
    # The control batch passes check_batch but not the produce rules.
    for vector in (V41, V42, V44):
        validate_produced(vector)


# ---- helpers ------------------------------------------------------------------------------------

_HEADER = struct.Struct(">qiibIhiqqqhii")
_FIELDS = ("base_offset", "batch_length", "partition_leader_epoch", "magic", "crc", "attributes",
           "last_offset_delta", "base_timestamp", "max_timestamp", "producer_id", "producer_epoch",
           "base_sequence", "records_count")


def rebuild(batch: bytes, body: bytes | None = None, **changes) -> bytes:
    """Change header fields (and/or the records section) of a batch; fix its length and CRC."""
    fields = dict(zip(_FIELDS, _HEADER.unpack_from(batch)))
    fields.update(changes)
    if body is None:
        body = batch[HEADER_SIZE:]
    fields["batch_length"] = HEADER_SIZE - 12 + len(body)
    out = bytearray(_HEADER.pack(*(fields[f] for f in _FIELDS)) + body)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def flip(data: bytes, index: int, mask: int = 0xFF) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


# ---- strategies ---------------------------------------------------------------------------------

maybe_bytes = st.none() | st.binary(max_size=40) | st.binary(min_size=60, max_size=300)
headers_st = st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=16)), max_size=4)
# Timestamps around "now", around zero (incl. the -1 sentinel) and far away, so deltas from the
# first record can be large and negative as well as small.
timestamp_st = st.one_of(
    st.integers(TS - 10_000, TS + 10_000),
    st.integers(-1, 20_000),
    st.integers(0, 2**62),
)
record_st = st.tuples(maybe_bytes, maybe_bytes, headers_st, timestamp_st)
records_st = st.lists(record_st, min_size=1, max_size=25)
producer_st = st.one_of(
    st.just((-1, -1, -1)),
    st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**15 - 1), st.integers(0, 2**31 - 1)),
)


def expected(records, header, timestamp_type, topic=None, partition=-1):
    out = []
    for i, (key, value, headers, ts) in enumerate(records):
        if timestamp_type == LOG_APPEND_TIME:
            ts = header.max_timestamp
        out.append(Record(topic, partition, header.base_offset + i, ts, timestamp_type, key, value,
                          tuple(headers or ())))
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=records_st,
    codec=st.sampled_from(ALL_CODECS),
    timestamp_type=st.sampled_from([CREATE_TIME, LOG_APPEND_TIME]),
    append_time=st.integers(0, 2**62),
    base_offset=st.integers(0, 2**62),
    leader_epoch=st.integers(-1, 2**31 - 1),
    producer=producer_st,
    transactional=st.booleans(),
)
def test_round_trip(records, codec, timestamp_type, append_time, base_offset, leader_epoch, producer,
                    transactional):
    pid, epoch, seq = producer
    assume(not transactional or pid >= 0)
    max_ts = append_time if timestamp_type == LOG_APPEND_TIME else None
    batch = encode_batch(records, base_offset=base_offset, compression_type=codec, timestamp_type=timestamp_type,
                         producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                         partition_leader_epoch=leader_epoch, transactional=transactional, max_timestamp=max_ts)
    h = check_batch(batch)
    assert h.size == len(batch)
    assert (h.base_offset, h.partition_leader_epoch, h.magic) == (base_offset, leader_epoch, 2)
    assert (h.compression, h.timestamp_type, h.is_transactional, h.is_control) == (
        codec, timestamp_type, transactional, False)
    assert (h.last_offset_delta, h.records_count) == (len(records) - 1, len(records))
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (pid, epoch, seq)
    assert h.base_timestamp == records[0][3]
    assert h.max_timestamp == (append_time if timestamp_type == LOG_APPEND_TIME else max(r[3] for r in records))
    if codec == NONE:  # the records section does not depend on the header parameters
        assert batch[HEADER_SIZE:] == encode_batch(records)[HEADER_SIZE:]
    want = expected(records, h, timestamp_type, topic="topic", partition=7)
    assert decode_records(batch, topic="topic", partition=7) == want
    assert decode_records(bytearray(batch), 0, h, topic="topic", partition=7) == want
    assert decode_records(memoryview(batch), topic="topic", partition=7) == want
    if timestamp_type == LOG_APPEND_TIME:
        assert {r.timestamp for r in want} == {append_time}
    # Same batch behind another one: positions inside a larger buffer work for every input type.
    buf = V42 + batch
    assert [pos for pos, _ in iter_batches(buf)] == [0, len(V42)]
    want2 = expected(records, h, timestamp_type)
    assert decode_records(buf, len(V42)) == want2
    assert decode_records(bytearray(buf), len(V42)) == want2
    assert validate_produced(buf) == [(0, check_batch(V42)), (len(V42), h)]
    assert decode_all(buf)[2:] == want2


@pytest.mark.parametrize("codec", ALL_CODECS, ids=[CODEC_NAMES[c] for c in ALL_CODECS])
def test_large_batch_crosses_varint_table(codec):
    # Offset deltas past 2**14 and a record longer than 2**14 bytes leave encode_varint's table.
    n = 2**14 + 20
    records = [(None, b"%d" % i, None, TS + i) for i in range(n)]
    records.append((b"big", b"x" * 20000, [("h" * 300, b"y" * 17000)], TS - 2**40))
    batch = encode_batch(records, compression_type=codec)
    h = check_batch(batch)
    assert h.records_count == n + 1 and h.last_offset_delta == n
    out = decode_records(batch, 0, h)
    assert out[:n] == [Record(None, -1, i, TS + i, CREATE_TIME, None, b"%d" % i, ()) for i in range(n)]
    assert out[n] == Record(None, -1, n, TS - 2**40, CREATE_TIME, b"big", b"x" * 20000, (("h" * 300, b"y" * 17000),))
    assert h.max_timestamp == TS + n - 1


@settings(max_examples=60, deadline=None)
@given(records=records_st, codec=st.sampled_from(ALL_CODECS), producer=producer_st,
       null_keys=st.booleans(), no_headers=st.booleans())
def test_encode_batch_columns_matches_encode_batch(records, codec, producer, null_keys, no_headers):
    if null_keys:
        records = [(None, v, h, t) for _, v, h, t in records]
    if no_headers:
        records = [(k, v, None, t) for k, v, _, t in records]
    keys, values, headers, timestamps = (list(col) for col in zip(*records))
    pid, epoch, seq = producer
    columns = encode_batch_columns(None if null_keys else keys, values, None if no_headers else headers, timestamps,
                                   compression_type=codec, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    rows = encode_batch(records, compression_type=codec, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    if codec in (NONE, SNAPPY, LZ4, ZSTD):  # deterministic compressors: byte for byte
        assert columns == rows
    h = check_batch(columns)
    assert decode_records(columns, 0, h) == expected(records, h, CREATE_TIME)


def test_headers_as_dict_and_str_values():
    batch = encode_batch([(b"k", b"v", {"a": b"1", "b": None, "c": "é"}, TS)])
    assert decode_records(batch)[0].headers == (("a", b"1"), ("b", None), ("c", "é".encode()))
    unicode_key = encode_batch([(None, None, [("ключ", b"")], TS)])
    assert decode_records(unicode_key)[0].headers == (("ключ", b""),)


def test_encode_refuses_empty_batch_and_bad_header_key():
    with pytest.raises(InvalidRecordError, match="at least one record"):
        encode_batch([])
    with pytest.raises(InvalidRecordError, match="header keys"):
        encode_batch([(None, b"v", [(b"bytes-key", b"v")], TS)])


def test_set_log_append_time_restamps_and_recrcs():
    batch = encode_batch([(b"a", b"1", None, TS), (b"b", b"2", None, TS + 3)], compression_type=GZIP)
    buf = bytearray(V41 + batch)
    h = check_batch(buf, len(V41))
    set_log_append_time(buf, len(V41), h, TS + 1000)
    h2 = check_batch(buf, len(V41))
    assert h2.timestamp_type == LOG_APPEND_TIME and h2.max_timestamp == TS + 1000
    assert h2.base_timestamp == TS and h2.compression == GZIP
    assert [r.timestamp for r in decode_records(buf, len(V41), h2)] == [TS + 1000, TS + 1000]
    assert bytes(buf[: len(V41)]) == V41


def test_last_sequence_wraps():
    batch = encode_batch([(None, b"a", None, TS)] * 3, producer_id=7, producer_epoch=1, base_sequence=2**31 - 2)
    h = check_batch(batch)
    assert h.last_sequence == 0
    validate_produced(batch)


# ---- an independent record encoder: canonical and padded varints ---------------------------------

def ref_varint(value: int, width: int | None = None) -> bytes:
    """Zigzag varint, optionally padded with zero groups to ``width`` bytes (Kafka reads those)."""
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        out.append(raw & 0x7F)
        raw >>= 7
        if not raw:
            break
    if width is not None:
        out.extend([0] * (width - len(out)))
    for i in range(len(out) - 1):
        out[i] |= 0x80
    return bytes(out)


def ref_records(records, pad) -> bytes:
    """FORMAT.md §2 by hand; ``pad(kind, canonical_length)`` picks each varint's width (or None)."""
    base = records[0][3]
    out = []
    for delta, (key, value, headers, ts) in enumerate(records):
        v = lambda n, kind="varint": ref_varint(n, pad(kind, len(ref_varint(n))))
        body = b"\x00" + v(ts - base, "varlong") + v(delta)
        body += v(-1) if key is None else v(len(key)) + key
        body += v(-1) if value is None else v(len(value)) + value
        headers = headers or []
        body += v(len(headers))
        for hk, hv in headers:
            kb = hk.encode()
            body += v(len(kb)) + kb + (v(-1) if hv is None else v(len(hv)) + hv)
        out.append(v(len(body)) + body)
    return b"".join(out)


@settings(max_examples=60, deadline=None)
@given(records=records_st)
def test_encoder_matches_reference_encoding(records):
    batch = encode_batch(records)
    assert batch[HEADER_SIZE:] == ref_records(records, lambda kind, n: None)


@settings(max_examples=60, deadline=None)
@given(records=records_st, data=st.data())
def test_padded_varints_decode_like_canonical_ones(records, data):
    # Kafka's ByteUtils.readVarint/readVarlong accept zero-padded encodings up to 5 / 10 bytes, so a
    # record written that way is valid and must decode to the same records.
    def pad(kind, n):
        return data.draw(st.integers(n, 10 if kind == "varlong" else 5))

    canonical = encode_batch(records)
    padded = rebuild(canonical, body=ref_records(records, pad))
    check_batch(padded)
    assert decode_records(padded) == decode_records(canonical)


def test_padded_null_key_and_value_decode():
    # key length -1 as "81 00", value length -1 as "81 80 80 80 00"
    body = bytes.fromhex("16 00 00 00 81 00 81 80 80 80 00 00")
    assert decode_records(rebuild(V41, body=body)) == [Record(None, -1, 0, TS, CREATE_TIME, None, None, ())]


# ---- compacted batches (offset gaps) -------------------------------------------------------------

@pytest.mark.parametrize("codec", ALL_CODECS, ids=[CODEC_NAMES[c] for c in ALL_CODECS])
def test_compacted_batch_with_offset_gaps(codec):
    deltas = [0, 3, 64, 20000, 2**31 - 1]
    records = [(b"k%d" % d, b"v", None, TS + i) for i, d in enumerate(deltas)]
    batch = encode_batch(records, base_offset=100, compression_type=codec, offset_deltas=deltas)
    h = check_batch(batch)
    assert (h.records_count, h.last_offset_delta, h.next_offset) == (5, 2**31 - 1, 100 + 2**31)
    assert [r.offset for r in decode_records(batch)] == [100 + d for d in deltas]
    # Fine in a log, but not something a producer may send.
    with pytest.raises(InvalidRecordError, match="5 records but last offset delta 2147483647"):
        validate_produced(batch)
    # A batch whose records were all removed keeps its last offset delta (§1.1).
    tail = encode_batch(records[:1], offset_deltas=[0], last_offset_delta=9)
    assert check_batch(tail).next_offset == 10


# ---- validation ---------------------------------------------------------------------------------

def test_validate_refuses_empty_request():
    with pytest.raises(InvalidRecordError, match="no record batches"):
        validate_produced(b"")


@pytest.mark.parametrize("cut", [1, 10, 16, 17, 30, 61, 69])
def test_validate_refuses_truncated_batch(cut):
    with pytest.raises(CorruptRecordError, match="truncated"):
        validate_produced(V41[:cut])
    # A whole batch followed by a torn one is refused too.
    with pytest.raises(CorruptRecordError, match="truncated"):
        validate_produced(V42 + V41[:cut])


def test_check_batch_reports_incomplete_with_position():
    with pytest.raises(IncompleteBatchError) as info:
        check_batch(V42 + V41[:40], len(V42))
    assert info.value.position == len(V42)
    assert "declares 70 bytes but only 40 remain" in str(info.value)


@pytest.mark.parametrize("magic", [0, 1, 3, 0xFF])
def test_validate_refuses_bad_magic(magic):
    bad = bytearray(V41)
    bad[16] = magic
    with pytest.raises(CorruptRecordError, match="magic"):
        validate_produced(bytes(bad))
    with pytest.raises(CorruptRecordError, match="magic"):
        check_batch(bytes(bad))


@pytest.mark.parametrize("index", [17, 18, 19, 20, 21, 30, 60, 65, 69])
def test_validate_refuses_flipped_crc_byte(index):
    with pytest.raises(CorruptRecordError, match="CRC"):
        validate_produced(flip(V41, index))


def test_validate_refuses_length_below_minimum():
    for length in (0, 48, -1):
        bad = bytearray(V41)
        struct.pack_into(">i", bad, 8, length)
        with pytest.raises(CorruptRecordError, match="below the minimum"):
            validate_produced(bytes(bad))


@pytest.mark.parametrize("lod", [0, 2, 5])
def test_validate_refuses_count_vs_last_offset_delta(lod):
    bad = rebuild(V42, last_offset_delta=lod)
    check_batch(bad)  # structurally fine, CRC fixed: this is a produce rule
    with pytest.raises(InvalidRecordError, match=r"2 records but last offset delta %d" % lod):
        validate_produced(bad)


def test_validate_refuses_zero_records():
    empty = rebuild(V41, body=b"", records_count=0, last_offset_delta=0)
    assert len(empty) == HEADER_SIZE
    check_batch(empty)
    with pytest.raises(InvalidRecordError, match="holds no records"):
        validate_produced(empty)
    # With lastOffsetDelta -1 (count 0 by both measures) check_batch already calls it corrupt.
    # (Kafka itself would answer INVALID_RECORD here; logbroker answers CORRUPT_MESSAGE.)
    empty2 = rebuild(V41, body=b"", records_count=0, last_offset_delta=-1)
    with pytest.raises(CorruptRecordError, match="records count 0 and last offset delta -1"):
        validate_produced(empty2)


def test_validate_refuses_negative_counts():
    bad = rebuild(V41, records_count=-1)
    with pytest.raises(CorruptRecordError, match="records count -1"):
        check_batch(bad)


def test_validate_refuses_control_batch():
    with pytest.raises(InvalidRecordError, match="control batch"):
        validate_produced(V43)
    # also when it is not the first batch
    with pytest.raises(InvalidRecordError, match="batch at byte 70 is a control batch"):
        validate_produced(V41 + rebuild(V43, base_offset=0))


def test_validate_refuses_idempotent_batch_without_sequence():
    bad = encode_batch([(None, b"v", None, TS)], producer_id=5, producer_epoch=0, base_sequence=-1)
    with pytest.raises(InvalidRecordError, match="producer id 5 but base sequence -1"):
        validate_produced(bad)
    bad2 = rebuild(V42, base_sequence=-7)
    with pytest.raises(InvalidRecordError, match="base sequence -7"):
        validate_produced(bad2)


@pytest.mark.parametrize("attributes", [0x05, 0x06, 0x07, 0x0D, 0x80, 0x100, 0x4000, -0x8000, -1])
def test_validate_refuses_bad_attribute_bits(attributes):
    bad = rebuild(V41, attributes=attributes)
    with pytest.raises(CorruptRecordError, match="invalid attributes"):
        check_batch(bad)
    with pytest.raises(CorruptRecordError, match="invalid attributes"):
        validate_produced(bad)


def test_known_attribute_bits_are_accepted():
    # LogAppendTime, transactional, delete horizon: all legal bits.
    for attributes in (0x08, 0x10, 0x40, 0x58):
        check_batch(rebuild(V41, attributes=attributes))


def test_validate_refuses_batch_over_max_message_bytes():
    with pytest.raises(RecordTooLargeError, match="70 bytes, over max.message.bytes=69"):
        validate_produced(V41, max_message_bytes=69)
    assert validate_produced(V41, max_message_bytes=70) == [(0, check_batch(V41))]
    with pytest.raises(RecordTooLargeError, match="batch at byte 70 is 84 bytes"):
        validate_produced(V41 + V42, max_message_bytes=83)


def test_validate_returns_positions_of_concatenated_batches():
    batches = [encode_batch([(b"k%d" % i, b"v" * i, None, TS + i)] * (i + 1), compression_type=c)
               for i, c in enumerate(ALL_CODECS)]
    buf = b"".join(batches)
    result = validate_produced(buf)
    positions, p = [], 0
    for b in batches:
        positions.append(p)
        p += len(b)
    assert [pos for pos, _ in result] == positions
    assert [h.records_count for _, h in result] == [1, 2, 3, 4, 5]
    assert [h.compression for _, h in result] == ALL_CODECS
    assert validate_produced(bytearray(buf)) == result


# ---- compression ------------------------------------------------------------------------------

def xerial(data: bytes, block_sizes) -> bytes:
    """xerial snappy-java framing, built by hand."""
    out = [b"\x82SNAPPY\x00", struct.pack(">ii", 1, 1)]
    pos = 0
    for size in block_sizes:
        block = bytes(cramjam.snappy.compress_raw(data[pos : pos + size]))
        out.append(struct.pack(">i", len(block)) + block)
        pos += size
    assert pos >= len(data)
    return b"".join(out)


@pytest.mark.parametrize("block_sizes", [[10**6], [1, 10**6], [7, 7, 7, 10**6], [0, 50, 0, 10**6]])
def test_xerial_snappy_batch_decodes(block_sizes):
    records = [(b"key%d" % i, b"value-%d" % i * 5, [("h", b"%d" % i)], TS + i) for i in range(20)]
    plain = encode_batch(records)
    section = plain[HEADER_SIZE:]
    framed = rebuild(plain, body=xerial(section, block_sizes), attributes=SNAPPY)
    h = check_batch(framed)
    assert h.compression == SNAPPY
    assert framed[HEADER_SIZE : HEADER_SIZE + 8] == b"\x82SNAPPY\x00"
    assert decode_records(framed) == decode_records(plain)


def test_raw_snappy_is_what_we_write():
    batch = encode_batch([(b"k", b"v" * 100, None, TS)], compression_type=SNAPPY)
    body = batch[HEADER_SIZE:]
    assert body[:8] != b"\x82SNAPPY\x00"
    assert bytes(cramjam.snappy.decompress_raw(body)) == encode_batch([(b"k", b"v" * 100, None, TS)])[HEADER_SIZE:]


def test_lz4_and_zstd_and_gzip_bodies_are_standard_frames():
    records = [(b"k", b"v" * 100, None, TS)]
    plain = encode_batch(records)[HEADER_SIZE:]
    assert encode_batch(records, compression_type=LZ4)[HEADER_SIZE:][:4] == bytes.fromhex("04224d18")
    assert encode_batch(records, compression_type=ZSTD)[HEADER_SIZE:][:4] == bytes.fromhex("28b52ffd")
    gz = encode_batch(records, compression_type=GZIP)[HEADER_SIZE:]
    assert gz[:2] == b"\x1f\x8b"
    import gzip
    assert gzip.decompress(gz) == plain


def test_multi_member_gzip_decodes():
    import gzip
    plain = encode_batch([(b"k%d" % i, b"v", None, TS) for i in range(6)])
    section = plain[HEADER_SIZE:]
    body = gzip.compress(section[:10]) + gzip.compress(section[10:])
    assert decode_records(rebuild(plain, body=body, attributes=GZIP)) == decode_records(plain)


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD], ids=lambda c: CODEC_NAMES[c])
def test_undecompressable_body_is_corrupt(codec):
    good = encode_batch([(b"k", b"v" * 200, None, TS)], compression_type=codec)
    body = good[HEADER_SIZE:]
    truncated = "gzip stream is truncated" if codec == GZIP else f"cannot decompress {CODEC_NAMES[codec]}"
    for bad_body, pattern in ((b"\x00garbage" * 3, f"cannot decompress {CODEC_NAMES[codec]}"),
                              (body[: len(body) // 2], truncated)):
        bad = rebuild(good, body=bad_body)
        check_batch(bad)  # the CRC is right; only decompression can tell
        with pytest.raises(CorruptRecordError, match=pattern):
            decode_records(bad)


def test_truncated_xerial_is_corrupt():
    plain = encode_batch([(b"k", b"v" * 100, None, TS)])
    framed = xerial(plain[HEADER_SIZE:], [10**6])
    for body in (framed[:-3], framed + b"\x00\x00"):
        bad = rebuild(plain, body=body, attributes=SNAPPY)
        with pytest.raises(CorruptRecordError, match="xerial"):
            decode_records(bad)


# ---- structural damage under a valid CRC ------------------------------------------------------

def test_record_count_too_high_or_low_is_corrupt():
    with pytest.raises(CorruptRecordError, match="past the end"):
        decode_records(rebuild(V42, records_count=3, last_offset_delta=2))
    with pytest.raises(CorruptRecordError, match="left over"):
        decode_records(rebuild(V42, records_count=1, last_offset_delta=0))


@pytest.mark.parametrize("body,pattern", [
    # record length 9 declared for an 8-byte record (key "k", value "v" record is 9 bytes total)
    (bytes.fromhex("12 00 00 00 02 6b 02 76 00 00"), "declares"),
    (bytes.fromhex("0e 00 00 00 02 6b 02 76 00"), "declares"),
    # key length -2
    (bytes.fromhex("10 00 00 00 03 6b 02 76 00"), "key length -2"),
    # value length -3
    (bytes.fromhex("10 00 00 00 02 6b 05 76 00"), "value length -3"),
    # header count -1
    (bytes.fromhex("10 00 00 00 02 6b 02 76 01"), "negative header count"),
    # header key not UTF-8: one header, key length 1, byte ff, value null
    (bytes.fromhex("16 00 00 00 02 6b 02 76 02 02 ff 01"), "not UTF-8"),
    # header key length -1
    (bytes.fromhex("14 00 00 00 02 6b 02 76 02 01 01"), "header key length"),
    # header value length -2
    (bytes.fromhex("16 00 00 00 02 6b 02 76 02 02 68 03"), "header value length"),
    # record length too small to hold a record
    (bytes.fromhex("02 00"), "declares length 1"),
])
def test_damaged_record_is_corrupt(body, pattern):
    bad = rebuild(V41, body=body)
    check_batch(bad)
    with pytest.raises(CorruptRecordError, match=pattern):
        decode_records(bad)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), codec=st.sampled_from([NONE, NONE, GZIP, ZSTD]))
def test_mutated_records_section_decodes_or_raises_corrupt(data, codec):
    """Whatever bytes sit under a valid CRC, decoding yields records or CorruptRecordError only."""
    records = data.draw(records_st)
    plain = encode_batch(records)
    section = bytearray(plain[HEADER_SIZE:])
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(section) - 1))
        section[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        section = section[: data.draw(st.integers(0, len(section)))]
    from logbroker.records import compression
    body = compression.compress(codec, bytes(section))
    bad = rebuild(plain, body=body, attributes=codec)
    check_batch(bad)
    try:
        out = decode_records(bad)
    except CorruptRecordError:
        return
    assert len(out) == len(records)
    assert all(isinstance(r, Record) for r in out)


# ---- torn tails and bit flips -----------------------------------------------------------------

def test_iter_batches_stops_quietly_at_every_torn_tail():
    b1 = encode_batch([(b"a", b"1" * 30, [("h", None)], TS), (None, b"2", None, TS + 1)])
    b2 = encode_batch([(b"b", b"3" * 50, None, TS + 2)] * 3, base_offset=2, compression_type=GZIP)
    buf = b1 + b2
    for cut in range(len(buf) + 1):
        want = [] if cut < len(b1) else [0] if cut < len(buf) else [0, len(b1)]
        assert [pos for pos, _ in iter_batches(buf[:cut])] == want, cut
        assert [pos for pos, _ in iter_batches(buf, 0, cut)] == want, cut
        if want:
            n = 2 if len(want) == 1 else 5
            assert len(decode_all(buf[:cut])) == n


def test_iter_batches_raises_on_corruption_mid_log():
    buf = V41 + flip(V42, 30) + V44
    it = iter_batches(buf)
    assert next(it)[0] == 0
    with pytest.raises(CorruptRecordError, match="CRC"):
        next(it)


batch_st = st.builds(
    lambda records, codec: encode_batch(records, compression_type=codec),
    st.lists(record_st, min_size=1, max_size=6),
    st.sampled_from(ALL_CODECS),
)


@settings(max_examples=150, deadline=None)
@given(batch=st.one_of(st.sampled_from([V41, V42, V43, V44]), batch_st), data=st.data())
def test_any_single_byte_flip_after_byte_16_is_detected(batch, data):
    index = data.draw(st.one_of(st.integers(8, 11), st.integers(16, len(batch) - 1)))
    mask = data.draw(st.integers(1, 255))
    bad = flip(batch, index, mask)
    with pytest.raises(CorruptRecordError):
        check_batch(bad)
    with pytest.raises(CorruptRecordError):
        validate_produced(bad)
    # ...and inside a log, iter_batches either stops (torn length) or raises, never yields it.
    try:
        got = [pos for pos, _ in iter_batches(V41 + bad)]
    except CorruptRecordError:
        pass
    else:
        assert got == [0] and 8 <= index <= 11


@settings(max_examples=50, deadline=None)
@given(batch=st.one_of(st.sampled_from([V41, V42, V44]), batch_st), data=st.data())
def test_flips_in_offset_and_epoch_are_not_covered_by_crc(batch, data):
    index = data.draw(st.one_of(st.integers(0, 7), st.integers(12, 15)))
    bad = flip(batch, index, data.draw(st.integers(1, 255)))
    h = check_batch(bad)
    assert h.crc == check_batch(batch).crc
    assert [(r.key, r.value) for r in decode_records(bad)] == [(r.key, r.value) for r in decode_records(batch)]


# ---- deep validation: the records under a valid CRC --------------------------------------------

def _recrc(batch: bytearray) -> bytes:
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    return bytes(batch)


def test_garbage_records_under_a_valid_crc_are_refused():
    batch = bytearray(encode_batch([(b"k", b"value", None, TS), (None, b"v2", None, TS)]))
    batch[HEADER_SIZE] = 0x7F  # the first record's length varint now claims far more than there is
    with pytest.raises(CorruptRecordError, match="batch at byte 0"):
        validate_produced(_recrc(batch))


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
def test_compressed_batch_claiming_more_records_than_it_holds_is_refused(codec):
    batch = bytearray(encode_batch([(None, b"only one", None, TS)], compression_type=codec))
    struct.pack_into(">i", batch, 23, 4)  # lastOffsetDelta
    struct.pack_into(">i", batch, 57, 5)  # recordsCount
    with pytest.raises(CorruptRecordError):
        validate_produced(_recrc(batch))


@pytest.mark.parametrize("claimed", [-1, TS + 10**9])
def test_a_wrong_max_timestamp_is_corrected_not_refused(claimed):
    # old Sarama sends -1; Kafka computes the true max from the records and writes it in
    batch = bytearray(encode_batch([(None, b"a", None, TS), (None, b"b", None, TS + 7)]))
    struct.pack_into(">q", batch, 35, claimed)
    ((pos, header),) = validate_produced(_recrc(batch))
    assert header.max_timestamp == TS + 7


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
def test_decompression_bomb_is_refused(codec):
    data = encode_batch([(None, bytes(50_000), None, TS)], compression_type=codec)
    with pytest.raises(CorruptRecordError, match="10000 bytes"):
        validate_produced(data, max_decompressed_bytes=10_000)
    assert validate_produced(data, deep=False)  # the header alone is fine


@pytest.mark.parametrize("codec", [LZ4, ZSTD])
def test_bounded_decompression_never_allocates_the_bomb(codec):
    # 2 MB of zeros compress to a few hundred bytes; with a 64 KiB cap nothing near 2 MB is made
    import resource

    data = encode_batch([(None, bytes(2_000_000), None, TS)], compression_type=codec)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CorruptRecordError, match="65536"):
        validate_produced(data, max_decompressed_bytes=65_536)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1_500  # KiB
