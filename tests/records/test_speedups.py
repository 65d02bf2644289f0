"""The C record codec (logbroker/records/_speedups.c) against its pure-Python reference in batch.py.

The C functions must return what the Python ones return, byte for byte and value for value, raise
CorruptRecordError on exactly the malformed inputs where the Python decoder raises (it raises
CorruptRecordError or IndexError, which ``decode_records`` turns into CorruptRecordError), and hand
anything outside their fast path back as NotImplemented (then batch.py runs the Python version).
"""

import gc
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logbroker.errors import CorruptRecordError, InvalidRecordError
from logbroker.records import batch
from logbroker.records.batch import (
    CREATE_TIME,
    HEADER_SIZE,
    LOG_APPEND_TIME,
    Record,
    _decode_records_py,
    _encode_records_py,
    _encode_values_only_py,
)

try:
    from logbroker.records import _speedups
except ImportError:  # no compiler where it was installed: test_extension_is_built fails, the rest skip
    _speedups = None

requires_c = pytest.mark.skipif(_speedups is None, reason="the C extension is not built")
INT64 = st.integers(-(2**63), 2**63 - 1)
TS = 1700000000000


def test_extension_is_built_and_used():
    # `pip install -e .` builds it wherever a C compiler and the Python headers exist (it is optional
    # only so that installing never fails without them); these tests need it.
    assert _speedups is not None, "logbroker.records._speedups is not built: install gcc and reinstall"
    assert _speedups.__file__.endswith((".so", ".pyd"))
    if os.environ.get("LOGBROKER_NO_SPEEDUPS", "") in ("", "0"):
        assert batch._speedups is _speedups
    else:
        assert batch._speedups is None


@requires_c
@pytest.mark.parametrize("value,expected", [("1", "None"), ("0", "_speedups"), ("", "_speedups")])
def test_env_var_forces_pure_python(value, expected):
    env = dict(os.environ, LOGBROKER_NO_SPEEDUPS=value)
    out = subprocess.run([sys.executable, "-c", "from logbroker.records import batch; print(batch._speedups)"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert expected in out


# ---- strategies --------------------------------------------------------------------------------

# Byte strings: null, short, and long enough (via repetition, cheaply) for 3-byte length varints.
blob_st = st.one_of(
    st.none(),
    st.binary(max_size=20),
    st.builds(lambda chunk, n: chunk * n, st.binary(min_size=1, max_size=3), st.integers(5000, 12000)),
)
header_value_st = st.one_of(st.none(), st.binary(max_size=10), st.text(max_size=5), blob_st)
headers_st = st.one_of(
    st.none(),
    st.just([]),
    st.just({}),
    st.lists(st.tuples(st.text(max_size=8), header_value_st), max_size=4),
    st.lists(st.lists(st.text(max_size=8), min_size=2, max_size=2).map(lambda kv: [kv[0], kv[1].encode()]),
             max_size=3),
    st.dictionaries(st.text(max_size=8), header_value_st, max_size=4),
    st.lists(st.tuples(st.text(max_size=8), header_value_st), max_size=3).map(tuple),
)
# timestamp deltas from tiny to +-2**62 (base + delta stays within int64: beyond it C defers to Python)
delta_st = st.one_of(st.integers(-300, 300), st.integers(-(2**62), 2**62 - 1), st.integers(-(2**20), 2**20))


@st.composite
def record_lists(draw, max_size=8):
    """(records, base_timestamp): timestamps base + delta, all within int64."""
    base = draw(st.one_of(st.just(TS), st.integers(-(2**62), 2**62)))
    records = draw(st.lists(
        st.tuples(blob_st, blob_st, headers_st, delta_st.map(lambda d: base + d)),
        max_size=max_size))
    return records, base


@st.composite
def offset_delta_lists(draw, n):
    """None (0, 1, 2 ...) or explicit deltas, some past 2**14 and 2**21 (3- and 4-byte varints)."""
    if draw(st.booleans()):
        return None
    return draw(st.lists(st.one_of(st.integers(0, 100), st.integers(0, 2**31 - 1), st.integers(-(2**14), -1)),
                         min_size=n, max_size=n))


# ---- encode ------------------------------------------------------------------------------------

@requires_c
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_encode_records_matches_python(data):
    records, base = data.draw(record_lists())
    deltas = data.draw(offset_delta_lists(len(records)))
    expected = _encode_records_py(records, base, deltas)
    got = _speedups.encode_records(records, base, deltas)
    assert got is not NotImplemented  # all of this is on the fast path
    assert got == expected
    assert batch.encode_records(records, base, deltas) == expected
    # lists instead of tuples, and a tuple of records, are on the fast path too
    as_lists = tuple([list(r) for r in records])
    assert _speedups.encode_records(as_lists, base, None if deltas is None else tuple(deltas)) == expected


@requires_c
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(blob_st, max_size=10), base=st.integers(-(2**62), 2**62), data=st.data())
def test_encode_values_only_matches_python(values, base, data):
    timestamps = [base + data.draw(delta_st) for _ in values]
    expected = _encode_values_only_py(values, timestamps, base)
    assert _speedups.encode_values_only(values, timestamps, base) == expected
    assert batch._encode_values_only(values, timestamps, base) == expected
    # zip() semantics: the shorter list decides
    assert _speedups.encode_values_only(values, timestamps[:-1], base) == \
        _encode_values_only_py(values, timestamps[:-1], base)


@requires_c
def test_encode_bytearray_and_str_header_values():
    records = [(bytearray(b"k"), bytearray(b"v" * 200), {"a": "é", "b": bytearray(b"x")}, TS)]
    assert _speedups.encode_records(records, TS, None) == _encode_records_py(records, TS)


@requires_c
@pytest.mark.parametrize("make", [  # each builds (records, base_timestamp, offset_deltas) afresh
    lambda: ([(memoryview(b"k"), b"v", None, TS)], TS, None),        # a buffer that is not bytes/bytearray
    lambda: ([(None, "text", None, TS)], TS, None),                    # str value: Python raises TypeError
    lambda: ([(None, b"v", None, True)], 0, None),                     # bool timestamp (an int subclass)
    lambda: ([(None, b"v", None, 2**63)], 0, None),                    # timestamp beyond int64
    lambda: ([(None, b"v", None, TS)], 2**64, None),                   # base timestamp beyond int64
    lambda: ([(None, b"v", None, 2**62)], -(2**62), None),             # delta beyond int64
    lambda: ([(None, b"v", None, 1.5)], 0, None),                      # float timestamp
    lambda: ([(None, b"v", [(1, b"x")], TS)], TS, None),               # non-str header key
    lambda: ([(None, b"v", [("k", 5)], TS)], TS, None),                # int header value
    lambda: ([(None, b"v", [("k", b"x", b"y")], TS)], TS, None),       # header of three items
    lambda: ([(None, b"v", iter([("k", b"x")]), TS)], TS, None),       # headers as an iterator
    lambda: ([(None, b"v", [("\udc80", b"x")], TS)], TS, None),        # lone surrogate: not UTF-8
    lambda: ([(None, b"v", None, TS, "extra")], TS, None),             # five-item record
    lambda: ([(None, b"v", None, TS)], TS, [-(2**14) - 1]),            # delta the Python table mishandles
    lambda: ([(None, b"v", None, TS)], TS, iter([0])),                 # deltas as an iterator
    lambda: (iter([(None, b"v", None, TS)]), TS, None),                # records as an iterator
])
def test_encode_outside_the_fast_path_falls_back_to_python(make):
    assert _speedups.encode_records(*make()) is NotImplemented

    def run(fn):
        try:
            return "ok", fn(*make())
        except Exception as exc:  # noqa: BLE001 - whatever Python raises, the dispatcher raises too
            return type(exc), str(exc)

    assert run(batch.encode_records) == run(_encode_records_py)


@requires_c
def test_non_str_header_key_is_invalid_either_way():
    records = [(None, b"v", {b"k": b"x"}, TS)]
    for fn in (batch.encode_records, _encode_records_py):
        with pytest.raises(InvalidRecordError, match="header keys are strings"):
            fn(records, TS)


@requires_c
def test_encode_values_only_outside_the_fast_path_falls_back():
    assert _speedups.encode_values_only([memoryview(b"v")], [TS], TS) is NotImplemented
    assert _speedups.encode_values_only([b"v"], [TS], TS + 0.0) is NotImplemented
    assert _speedups.encode_values_only(iter([b"v"]), [TS], TS) is NotImplemented
    assert batch._encode_values_only([memoryview(b"v")], [TS], TS) == _encode_values_only_py([b"v"], [TS], TS)


# ---- decode ------------------------------------------------------------------------------------

def decode_args(records, base, deltas, *, prefix=b"", suffix=b"", base_offset=0, log_append=None,
                topic="t", partition=0):
    section = _encode_records_py(records, base, deltas)
    data = prefix + section + suffix
    ts_type = CREATE_TIME if log_append is None else LOG_APPEND_TIME
    return (data, len(prefix), len(prefix) + len(section), len(records), base_offset, base, ts_type, log_append,
            topic, partition)


def decode_c(args):
    return _speedups.decode_records(*args, Record)


@requires_c
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decode_matches_python(data):
    records, base = data.draw(record_lists())
    deltas = data.draw(offset_delta_lists(len(records)))
    args = decode_args(records, base, deltas,
                       prefix=data.draw(st.binary(max_size=5)), suffix=data.draw(st.binary(max_size=5)),
                       base_offset=data.draw(st.one_of(st.integers(0, 2**40), INT64)),
                       log_append=data.draw(st.one_of(st.none(), INT64)),
                       topic=data.draw(st.one_of(st.none(), st.text(max_size=5))),
                       partition=data.draw(st.integers(-1, 100)))
    expected = _decode_records_py(*args)
    got = decode_c(args)
    assert got == expected
    assert all(type(r) is Record for r in got)
    assert [tuple(map(type, r)) for r in got] == [tuple(map(type, r)) for r in expected]
    assert batch._decode_records(*args) == expected


@requires_c
def test_decode_wide_values_as_python_does():
    # A 10-byte timestamp delta whose last byte carries bits above 2**64 (Python integers keep
    # them), base offset + delta and base timestamp + delta beyond int64, and zero-padded -1 lengths.
    body = (b"\x00"                                  # attributes
            + b"\xff" * 9 + b"\x7f"                  # timestampDelta: 70 bits
            + b"\x02"                                # offsetDelta 1
            + b"\x81\x00"                            # key: -1 (null), zero-padded
            + b"\x81\x80\x00"                        # value: -1 (null), zero-padded twice
            + b"\x80\x00")                           # header count 0, zero-padded
    data = bytes([len(body) * 2]) + body
    for base_offset, base_ts, fixed in ((2**63 - 1, 2**63 - 1, None), (5, -7, None), (5, 2**70, 9),
                                        (2**80, -(2**80), None)):
        args = (data, 0, len(data), 1, base_offset, base_ts, CREATE_TIME, fixed, "t", 0)
        [want] = _decode_records_py(*args)
        assert decode_c(args) == [want]
        assert want.key is None and want.value is None and want.headers == ()


@requires_c
def test_decode_empty_and_negative_count():
    for count in (0, -1, -(2**31)):
        assert decode_c((b"", 0, 0, count, 0, TS, 0, None, "t", 0)) == []
        assert decode_c((b"xyz", 1, 1, count, 0, TS, 0, None, "t", 0)) == []


@requires_c
@pytest.mark.parametrize("args", [
    (bytearray(b"\x0e\x00\x00\x00\x02k\x02v\x00"), 0, 9, 1, 0, TS, 0, None, "t", 0),  # not bytes
    (memoryview(b"\x0e\x00\x00\x00\x02k\x02v\x00"), 0, 9, 1, 0, TS, 0, None, "t", 0),
    (b"\x0e\x00\x00\x00\x02k\x02v\x00", -9, 9, 1, 0, TS, 0, None, "t", 0),            # pos < 0
    (b"\x0e\x00\x00\x00\x02k\x02v\x00", 0, 10, 1, 0, TS, 0, None, "t", 0),            # end > len(data)
    (b"\x0e\x00\x00\x00\x02k\x02v\x00", 5, 4, 1, 0, TS, 0, None, "t", 0),             # pos > end
    (b"\x0e\x00\x00\x00\x02k\x02v\x00", 0, 9, 1.0, 0, TS, 0, None, "t", 0),           # float count
    (b"\x0e\x00\x00\x00\x02k\x02v\x00", 0, 9, 1, 0.0, TS, 0, None, "t", 0),           # float base offset
    (b"\x0e\x00\x00\x00\x02k\x02v\x00", 0, 9, 1, 0, True, 0, None, "t", 0),           # bool base timestamp
])
def test_decode_outside_the_fast_path_falls_back_to_python(args):
    assert decode_c(args) is NotImplemented
    assert _speedups.decode_records(*args, int) is NotImplemented

    def run(fn):
        try:
            return "ok", fn(*args)
        except Exception as exc:  # noqa: BLE001
            return type(exc), str(exc)

    assert run(batch._decode_records) == run(_decode_records_py)


@requires_c
def test_decode_fixed_timestamp_need_not_be_an_int():
    args = decode_args([(b"k", b"v", None, TS)], TS, None, log_append="fixed")
    assert decode_c(args) == _decode_records_py(*args)
    args = args[:5] + ("not a base timestamp",) + args[6:]  # unused with LogAppendTime, as in Python
    assert decode_c(args) == _decode_records_py(*args)


@requires_c
@pytest.mark.parametrize("section,pattern", [
    (b"\x0e\x00\x00\x00\x02k\x02v\x00", "declares"),                  # record length 7 for 8 bytes
    (b"\x10\x00\x00\x00\x03k\x02v\x00", "key length -2"),
    (b"\x10\x00\x00\x00\x02k\x05v\x00", "value length -3"),
    (b"\x10\x00\x00\x00\x02k\x02v\x01", "negative header count"),
    (b"\x16\x00\x00\x00\x02k\x02v\x02\x02\xff\x01", "not UTF-8"),
    (b"\x14\x00\x00\x00\x02k\x02v\x02\x01\x01", "header key length"),
    (b"\x16\x00\x00\x00\x02k\x02v\x02\x02h\x03", "header value length"),
    (b"\x02\x00", "declares length 1"),
    (b"\x10\x00\x00\x00\x02k\x02v\x00\x00", "left over"),
    (b"\x10\x00\x00\x00\x02k\x02v", "length 8, which does not fit"),
    (b"\x10\x00\x00\x00\x02k\x02v\x00", "past the end"),                    # a second record
    (b"\x1a\x00\x00" + b"\xff" * 5 + b"\x00\x02k\x02v\x00", "longer than 5 bytes"),  # offset delta
    (b"\x1c\x00" + b"\xff" * 10 + b"\x00\x02k\x02v\x00", "longer than 10 bytes"),    # timestamp delta
])
def test_decode_errors_name_the_damage(section, pattern):
    count = 2 if pattern == "past the end" else 1
    args = (section, 0, len(section), count, 0, TS, 0, None, "t", 0)
    with pytest.raises(CorruptRecordError, match=pattern):
        decode_c(args)
    with pytest.raises((CorruptRecordError, IndexError)):
        _decode_records_py(*args)


def outcome_py(args):
    try:
        return "ok", _decode_records_py(*args)
    except (CorruptRecordError, IndexError):  # decode_records turns IndexError into CorruptRecordError
        return ("corrupt",)


def outcome_c(args):
    try:
        return "ok", decode_c(args)
    except CorruptRecordError:
        return ("corrupt",)


@requires_c
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_sections_fail_exactly_when_python_fails(data):
    small_blob = st.one_of(st.none(), st.binary(max_size=6))
    small_headers = st.one_of(st.none(), st.lists(st.tuples(st.text(max_size=3), small_blob), max_size=2))
    records = data.draw(st.lists(st.tuples(small_blob, small_blob, small_headers,
                                           st.integers(TS - 2**20, TS + 2**20)), min_size=1, max_size=4))
    args = decode_args(records, TS, None, prefix=data.draw(st.binary(max_size=3)),
                       suffix=data.draw(st.binary(max_size=12)))
    data_, pos, end, count = args[:4]
    buf = bytearray(data_)
    for _ in range(data.draw(st.integers(0, 4))):
        action = data.draw(st.sampled_from(["set", "insert", "delete", "truncate", "count", "end"]))
        if action == "set" and buf:
            i = data.draw(st.integers(0, len(buf) - 1))
            interesting = st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0xFF, 0xFE])
            buf[i] = data.draw(interesting | st.integers(0, 255))
        elif action == "insert":
            i = data.draw(st.integers(0, len(buf)))
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=3))
        elif action == "delete" and buf:
            i = data.draw(st.integers(0, len(buf) - 1))
            del buf[i: i + data.draw(st.integers(1, 3))]
        elif action == "truncate":
            del buf[data.draw(st.integers(0, len(buf))):]
        elif action == "count":
            count = data.draw(st.integers(-1, count + 3))
        elif action == "end":
            end = data.draw(st.integers(min(pos, len(buf)), len(buf)))
    end = min(end, len(buf))
    pos = min(pos, end)
    damaged = (bytes(buf), pos, end, count) + args[4:]
    assert outcome_c(damaged) == outcome_py(damaged)


@requires_c
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_bytes_fail_exactly_when_python_fails(data):
    raw = data.draw(st.binary(max_size=40))
    end = data.draw(st.integers(0, len(raw)))
    pos = data.draw(st.integers(0, end))
    args = (raw, pos, end, data.draw(st.integers(-1, 6)), 0, TS, 0, None, "t", 0)
    assert outcome_c(args) == outcome_py(args)


# ---- references and the garbage collector ------------------------------------------------------

@requires_c
def test_no_reference_leaks_on_success_or_error():
    topic, partition, ts_type, fixed = "leak-check", 10**30, 10**31, 10**32
    records = [(b"k", b"v" * 50, [("h", b"x"), ("n", None)], TS + i) for i in range(50)]
    good = decode_args(records, TS, None, topic=topic, partition=partition)
    good = good[:6] + (ts_type, fixed) + good[8:]
    damaged = [(good[0][:cut],) + good[1:] for cut in range(0, len(good[0]), 7)]
    watched = [topic, partition, ts_type, fixed, Record, good[0]]
    before = [sys.getrefcount(o) for o in watched]
    for _ in range(3):
        out = decode_c(good)
        assert len(out) == 50
        del out
        for args in damaged:
            args = (args[0], args[1], len(args[0])) + args[3:]
            with pytest.raises(CorruptRecordError):
                decode_c(args)
        del args
    assert [sys.getrefcount(o) for o in watched] == before


@requires_c
def test_records_of_atomic_items_are_left_untracked():
    args = decode_args([(b"k", b"v", None, TS), (None, None, [("h", b"x")], TS)], TS, None)
    for record in decode_c(args):
        assert not gc.is_tracked(record)
        assert not gc.is_tracked(record.headers)
    # an unusual topic object that could take part in a cycle keeps every record tracked
    odd_topic = ["a", "list"]
    args = args[:8] + (odd_topic,) + args[9:]
    out = decode_c(args)
    assert all(gc.is_tracked(record) for record in out)
    assert out == _decode_records_py(*args)
    odd_topic.append(out)  # a cycle through a record: the collector can still free it
    del out, odd_topic
    assert gc.collect() >= 0


@requires_c
def test_decoded_list_is_tracked_and_complete():
    args = decode_args([(b"k", b"v", None, TS)] * 3, TS, None)
    out = decode_c(args)
    assert gc.is_tracked(out) and len(out) == 3
    out.append(out)  # it is an ordinary list
    del out
    gc.collect()


# ---- through the public API --------------------------------------------------------------------

@requires_c
def test_public_round_trip_uses_the_same_bytes():
    records = [(b"k%d" % i, b"v" * i, {"i": str(i)} if i % 3 else None, TS + i * 1000) for i in range(40)]
    built = batch.encode_batch(records)
    assert built[HEADER_SIZE:] == _encode_records_py(records, TS)
    decoded = batch.decode_records(built, topic="t", partition=1)
    assert [(r.key, r.value, r.timestamp, r.offset) for r in decoded] == \
        [(k, v, t, i) for i, (k, v, _, t) in enumerate(records)]
    assert decoded[1].headers == (("i", b"1"),) and decoded[0].headers == ()


# ---- scan_records: checking a producer's records without building them -------------------------

def scan_outcome(fn, args):
    try:
        return "ok", fn(*args)
    except (CorruptRecordError, IndexError):
        return ("corrupt",)


@requires_c
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_scan_records_agrees_with_python_on_damaged_sections(data):
    from logbroker.records import _speedups
    from logbroker.records.batch import _scan_records_py

    small_blob = st.one_of(st.none(), st.binary(max_size=6))
    small_headers = st.one_of(st.none(), st.lists(st.tuples(st.text(max_size=3), small_blob), max_size=2))
    records = data.draw(st.lists(st.tuples(small_blob, small_blob, small_headers,
                                           st.integers(TS - 2**20, TS + 2**20)), min_size=1, max_size=4))
    data_, pos, end, count = decode_args(records, TS, None, prefix=data.draw(st.binary(max_size=3)))[:4]
    buf = bytearray(data_)
    for _ in range(data.draw(st.integers(0, 3))):
        action = data.draw(st.sampled_from(["set", "truncate", "count"]))
        if action == "set" and buf:
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        elif action == "truncate":
            del buf[data.draw(st.integers(0, len(buf))):]
        elif action == "count":
            count = data.draw(st.integers(0, count + 3))
    end = min(end, len(buf))
    pos = min(pos, end)
    args = (bytes(buf), pos, end, count, TS)
    python = scan_outcome(_scan_records_py, args)
    assert scan_outcome(_speedups.scan_records, args) == python
    if not buf and count == 0:
        assert python == ("ok", None)


@requires_c
def test_scan_records_returns_the_max_timestamp_and_checks_offset_deltas():
    from logbroker.records import _speedups
    from logbroker.records.batch import _scan_records_py

    records = [(b"k", b"v", [("h", b"x")], TS + d) for d in (5, -3, 40, 0)]
    args = decode_args(records, TS, None)[:4] + (TS,)
    assert _speedups.scan_records(*args) == _scan_records_py(*args) == TS + 40
    gapped = decode_args(records, TS, [0, 1, 3, 4])[:4] + (TS,)  # a compacted batch is no producer's
    for fn in (_speedups.scan_records, _scan_records_py):
        with pytest.raises(CorruptRecordError, match="offset delta"):
            fn(*gapped)
