"""The definition notation and the generic codec, on a toy message that exercises every feature."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given

from logbroker.protocol import EncodeError, ProtocolError
from logbroker.protocol.compiler import compile_struct
from logbroker.protocol.definitions import APIS
from logbroker.protocol.primitives import Reader, Writer
from logbroker.protocol.schema import ANY, Api, Array, Field, Struct, parse_versions, snake_case

from ._strategies import struct as struct_strategy


def test_parse_versions():
    assert parse_versions("0+") == (0, ANY[1])
    assert parse_versions("3-7") == (3, 7)
    assert parse_versions("5") == (5, 5)
    assert parse_versions("none") is None and parse_versions(None) is None


@pytest.mark.parametrize("kafka, ours", [("PartitionIndex", "partition_index"), ("ErrorCode", "error_code"),
                                         ("ThrottleTimeMs", "throttle_time_ms"), ("timeoutMs", "timeout_ms"),
                                         ("ZkMigrationReady", "zk_migration_ready"), ("Acks", "acks")])
def test_snake_case(kafka, ours):
    assert snake_case(kafka) == ours


def test_every_defined_name_is_already_snake_case():
    def names(fields):
        for f in fields:
            yield f.name
            if isinstance(f.type, Struct):
                yield from names(f.type)

    for api in APIS.values():
        for name in names(api.request + api.response):
            assert name == snake_case(name) and name.isidentifier(), (api.name, name)


def test_fields_validate_their_type():
    with pytest.raises(ValueError, match="unknown type"):
        Field("x", "int33")
    with pytest.raises(ValueError, match="unknown type"):
        Field("x", "[]Thing")


def test_defaults():
    assert Field("a", "int64", default=-1).default_for(0) == -1
    assert Field("a", "string").default_for(0) == ""
    assert Field("a", "string", nullable_versions="3+").default_for(3) is None
    assert Field("a", "string", nullable_versions="3+").default_for(2) == ""
    assert Field("a", "string", nullable_versions="3+", default=None).default_for(2) == ""
    assert Field("a", "[]int32").default_for(0) == ()
    assert Field("a", "uuid").default_for(0) == uuid.UUID(int=0)
    assert Field("a", "records", default=b"").default_for(0) == b""


TOY = Api(
    1000, "Toy", "0-3", "2+",
    request=(
        Field("id", "int32"),
        Field("name", "string", "1+", nullable_versions="1+"),
        Field("legacy", "string", flexible_versions="none"),  # classic even when flexible
        Field("items", Array(
            Field("key", "string"),
            Field("ids", "[]int64"),
            Field("hint", "int32", "2+", tag=0, default=-1),
        ), nullable_versions="3+"),
        Field("leader", Struct(Field("id", "int32", default=-1), Field("epoch", "int32", default=-1)), "2+", tag=5),
        Field("note", "string", "2+", nullable_versions="2+", tag=1),
        Field("blob", "records", nullable_versions="0+"),
    ),
    response=(),
)


def codec(version):
    return compile_struct(TOY.request, version, TOY.is_flexible(version))


def encode(version, body) -> bytes:
    w = Writer()
    codec(version).encode(w, body)
    return w.getvalue()


def decode(version, data):
    r = Reader(data)
    out = codec(version).decode(r)
    assert r.remaining() == 0
    return out


@pytest.mark.parametrize("version", range(4))
def test_toy_round_trip(version):
    @given(struct_strategy(TOY.request, version))
    def check(value):
        assert decode(version, encode(version, value)) == value

    check()


def test_toy_bytes_classic_and_flexible():
    value = {"id": 1, "name": "n", "legacy": "L", "items": [{"key": "k", "ids": [7]}], "blob": b"R"}
    assert encode(1, value) == bytes.fromhex(
        "00000001" "0001 6e" "0001 4c" "00000001 0001 6b 00000001 0000000000000007" "00000001 52".replace(" ", ""))
    assert encode(2, value) == bytes.fromhex(
        "00000001" "02 6e" "0001 4c" "02 02 6b 02 0000000000000007 00" "02 52" "00".replace(" ", ""))


def test_toy_tagged_fields():
    value = {"items": [{"key": "k", "ids": [], "hint": 3}], "leader": {"id": 2, "epoch": 9}, "note": "hi"}
    data = encode(2, value)
    # the element's tag section holds hint (tag 0, 4 bytes); the body's holds note (tag 1) then leader (tag 5)
    assert bytes.fromhex("01 00 04 00000003") in data
    assert data.endswith(bytes.fromhex("02 01 03 03 6869 05 09 00000002 00000009 00"))
    got = decode(2, data)
    assert got["items"][0]["hint"] == 3 and got["leader"] == {"id": 2, "epoch": 9} and got["note"] == "hi"
    # defaults are not written, and absent tags decode to their defaults
    plain = encode(2, {"leader": {"id": -1, "epoch": -1}, "note": None})
    assert plain == encode(2, {})
    assert decode(2, plain)["leader"] == {"id": -1, "epoch": -1} and decode(2, plain)["note"] is None
    # tagged fields of a version do not exist in earlier versions
    assert "leader" not in decode(1, encode(1, value))


def test_toy_unknown_tags_are_skipped_and_decoded_defaults_are_fresh():
    data = encode(2, {})
    assert data.endswith(b"\x00")
    extended = data[:-1] + bytes.fromhex("02 04 01 ff 09 02 abcd")
    first, second = decode(2, extended), decode(2, extended)
    assert first == decode(2, data)
    first["items"].append("mutated")
    assert second["items"] == []


def test_toy_nullability_follows_versions():
    assert decode(3, encode(3, {"items": None}))["items"] is None
    with pytest.raises(EncodeError, match="^items: null is not allowed"):
        encode(2, {"items": None})
    with pytest.raises(EncodeError, match="^legacy: null is not allowed"):
        encode(0, {"legacy": None})
    assert "name" not in decode(0, encode(0, {"name": None}))  # not a field of v0: ignored
    with pytest.raises(ProtocolError, match=r"^items: null array"):
        decode(2, encode(3, {"items": None}))  # v2 and v3 differ only in that items may be null


def test_encode_errors_carry_the_path():
    with pytest.raises(EncodeError, match=r"^items\[1\]\.ids: cannot encode \[1, 'x'\]"):
        encode(1, {"items": [{"key": "a"}, {"key": "b", "ids": [1, "x"]}]})
    with pytest.raises(EncodeError, match=r"^items\[0\]: a struct must be a mapping, not int"):
        encode(1, {"items": [5]})
    with pytest.raises(EncodeError, match=r"^leader: a struct must be a mapping"):
        encode(2, {"leader": 5})
