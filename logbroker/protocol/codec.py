"""Requests in, responses out: the codec the server calls (sans-I/O, no sockets, no asyncio).

    frames = decoder.feed(chunk)                        # framing.FrameDecoder
    header, body = decode_request(frame)                # UnsupportedVersionError / ProtocolError
    parts = encode_response(header, {...})              # buffers to write, records passed through

Bodies are plain dicts keyed by snake_case names (``schema.py`` gives the rule): ``{"acks": -1,
"timeout_ms": 30000, "transactional_id": None, "topic_data": [{"name": "t", "partition_data":
[{"index": 0, "records": b"..."}]}]}``.  Decoded bodies hold every field of their version, tagged
fields included (defaults when absent); ``records`` are memoryviews into the frame, never parsed.

Headers (PROTOCOL.md §3): a request uses header v2 when its version is flexible, else v1; a response
uses v1 when flexible, else v0 -- except ApiVersions, whose responses always use v0.

ApiVersions rules (PROTOCOL.md §5), applied here so no caller can get them wrong:

* ``unsupported_version_response(header)`` answers an ApiVersions request of any unknown version
  with a v0 body: error 35 and the ApiVersions entry.  For other APIs it gives None (close instead).
* A response with a non-zero ``error_code`` is always encoded as a v0 body, whatever the request
  version, because kafka-python decodes every failed ApiVersions answer as v0; ``decode_response``
  mirrors that and reads a failed answer as v0.

``SUPPORTED`` is what the broker advertises (PROTOCOL.md §8, with Metadata raised to v12, the
share-group APIs at v1 and IncrementalAlterConfigs 0-1 for SHARE_GROUPS.md §1; the server lists only
APIs it has a handler for).
``SERVED`` is what ``decode_request`` accepts: the same, except Produce v0-2, which is advertised only
to keep librdkafka 2.0.2's compression on and is refused as unsupported, as Kafka 4.0 does.

``decode_request`` refuses trailing bytes, with one exception read around rather than refused:
librdkafka's flexible Metadata request for every topic carries 3 stray zero bytes
(``_librdkafka_null_topics``).
"""

from __future__ import annotations

import functools

from .compiler import StructCodec, compile_struct
from .definitions import APIS
from .errors import EncodeError, ProtocolError, UnsupportedVersionError
from .headers import (RequestHeader, read_request_header, read_response_header, skip_tags, write_request_header,
                      write_response_header)
from .primitives import Reader, Writer

__all__ = [
    "API_NAMES", "API_VERSIONS_KEY", "SERVED", "SUPPORTED", "api_versions_entries", "decode_body",
    "decode_request", "decode_response", "encode_body", "encode_request", "encode_response",
    "encode_response_bytes", "is_flexible", "response_expected", "unsupported_version_response",
]

API_VERSIONS_KEY = 18

SUPPORTED: dict[int, tuple[int, int]] = {
    0: (0, 7),    # Produce (v0-2 advertised, refused: see SERVED)
    1: (4, 11),   # Fetch
    2: (1, 2),    # ListOffsets
    3: (0, 12),   # Metadata (v12: topic ids, lookups by id; SHARE_GROUPS.md §1.2)
    8: (2, 3),    # OffsetCommit
    9: (1, 3),    # OffsetFetch
    10: (0, 1),   # FindCoordinator
    11: (0, 5),   # JoinGroup
    12: (0, 1),   # Heartbeat
    13: (0, 1),   # LeaveGroup
    14: (0, 3),   # SyncGroup
    15: (0, 3),   # DescribeGroups
    16: (0, 2),   # ListGroups
    18: (0, 4),   # ApiVersions
    19: (2, 4),   # CreateTopics
    20: (1, 3),   # DeleteTopics
    21: (0, 1),   # DeleteRecords
    22: (0, 1),   # InitProducerId
    32: (1, 2),   # DescribeConfigs
    37: (0, 1),   # CreatePartitions
    42: (0, 1),   # DeleteGroups
    44: (0, 1),   # IncrementalAlterConfigs (what librdkafka's AdminClient sends; SHARE_GROUPS.md §1.1, §3.12)
    76: (1, 1),   # ShareGroupHeartbeat (advertised by ApiVersions once a handler serves it)
    78: (1, 1),   # ShareFetch
    79: (1, 1),   # ShareAcknowledge
}

SERVED: dict[int, tuple[int, int]] = {**SUPPORTED, 0: (3, 7)}

API_NAMES: dict[int, str] = {
    **{key: api.name for key, api in APIS.items()},
    4: "LeaderAndIsr", 5: "StopReplica", 6: "UpdateMetadata", 7: "ControlledShutdown", 24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers", 28: "TxnOffsetCommit", 29: "DescribeAcls",
    30: "CreateAcls", 31: "DeleteAcls", 33: "AlterConfigs", 34: "AlterReplicaLogDirs", 35: "DescribeLogDirs",
    38: "CreateDelegationToken", 39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken", 43: "ElectLeaders", 47: "OffsetDelete",
    60: "DescribeCluster", 68: "ConsumerGroupHeartbeat", 71: "GetTelemetrySubscriptions",
}
API_NAMES = dict(sorted(API_NAMES.items()))


def _name(api_key: int) -> str:
    return API_NAMES.get(api_key, f"api key {api_key}")


def is_flexible(api_key: int, api_version: int) -> bool:
    """Whether that version of the API uses compact types and tag sections (False if unknown)."""
    api = APIS.get(api_key)
    return api is not None and api.is_flexible(api_version)


@functools.cache
def _compiled(api_key: int, kind: str, version: int) -> tuple[StructCodec, bool]:
    api = APIS.get(api_key)
    if api is None or version not in api.versions():
        raise UnsupportedVersionError(f"{_name(api_key)} v{version} is not defined")
    flexible = api.is_flexible(version)
    return compile_struct(getattr(api, kind), version, flexible), flexible


# -- requests ----------------------------------------------------------------------------------------

def decode_request(frame, *, served: dict[int, tuple[int, int]] | None = None) -> tuple[RequestHeader, dict]:
    """Header and body of a request frame (the bytes after the length prefix).

    Raises UnsupportedVersionError (with ``.header``) for an API or version outside ``served``
    (default ``SERVED``), ProtocolError for malformed bytes, trailing bytes included.
    """
    r = Reader(frame)
    header = read_request_header(r)
    key, version = header.api_key, header.api_version
    lo, hi = (SERVED if served is None else served).get(key, (0, -1))
    if not lo <= version <= hi:
        served_text = f"v{lo}-{hi}" if lo <= hi else "no version"
        raise UnsupportedVersionError(f"{_name(key)} v{version} is not supported (served: {served_text})", header)
    try:
        codec, flexible = _compiled(key, "request", version)
    except UnsupportedVersionError as exc:  # served but not defined: a mistake in ``served``
        exc.header = header
        raise
    try:
        if flexible:
            skip_tags(r)
        body = _librdkafka_null_topics(codec, key, version, r)
        if body is None:
            body = codec.decode(r)
            if r.pos != r.end:
                raise ProtocolError(f"{r.end - r.pos} bytes left over after the body")
    except ProtocolError as exc:
        exc.context = f"{_name(key)} v{version} request"
        exc.header = header
        raise
    return header, body


def _librdkafka_null_topics(codec: StructCodec, key: int, version: int, r: Reader) -> dict | None:
    """The body librdkafka meant, for its flexible Metadata request for every topic; None for any other.

    librdkafka (v9+) writes that request's null topics array as the INT32 placeholder it never shrinks
    to the one-byte varint, so 3 zero bytes follow the null and shift everything after (librdkafka
    issue #5049; Kafka reads on and ignores the tail).  Such a body starts with 4 zero bytes and is
    longer than a real body of nulls and falses with no tags (4 bytes, 5 in v9-10 with their extra
    flag); skipping the 3 placeholder bytes must then read exactly to the end.
    """
    shortest = 5 if version <= 10 else 4
    if key != 3 or version < 9 or r.end - r.pos <= shortest or bytes(r.buf[r.pos:r.pos + 4]) != bytes(4):
        return None
    shifted = Reader(r.buf, r.pos + 3, r.end)
    try:
        body = codec.decode(shifted)
    except ProtocolError:
        return None
    return body if shifted.pos == shifted.end else None


def encode_request(api_key: int, api_version: int, correlation_id: int, client_id: str | None, body) -> bytes:
    """A whole request frame, length prefix included (for tests and tools)."""
    codec, flexible = _compiled(api_key, "request", api_version)
    w = Writer(4)
    write_request_header(w, RequestHeader(api_key, api_version, correlation_id, client_id), flexible)
    _encode(codec, w, body, f"{_name(api_key)} v{api_version} request")
    return b"".join(w.finish_frame())


def response_expected(header: RequestHeader, body) -> bool:
    """False only for a Produce with acks=0, which gets no response at all (PROTOCOL.md §1)."""
    return not (header.api_key == 0 and body.get("acks") == 0)


# -- responses ---------------------------------------------------------------------------------------

def encode_response(header: RequestHeader, body) -> list:
    """The framed response to ``header``'s request as a list of buffers, for a zero-copy write.

    Everything the codec writes comes as ``bytes``; a ``records`` value of 4096 bytes or more is its
    own element, as given (bytes, memoryview, or any object with ``__len__`` such as a file region the
    server sends with ``os.sendfile``); smaller bytes-like values are copied in line.
    """
    key, version = header.api_key, header.api_version
    if key == API_VERSIONS_KEY and body.get("error_code", 0) != 0:
        version = 0  # every client reads a failed ApiVersions answer as v0 (PROTOCOL.md §5)
    return _encode_response(key, version, header.correlation_id, body)


def encode_response_bytes(header: RequestHeader, body) -> bytes:
    """``encode_response`` joined into one bytes object (records must then be bytes-like)."""
    parts = encode_response(header, body)
    for part in parts:
        if not isinstance(part, (bytes, bytearray, memoryview)):
            raise TypeError(f"cannot join a records value of type {type(part).__name__}; use encode_response")
    return b"".join(parts)


def _encode_response(key: int, version: int, correlation_id: int, body) -> list:
    codec, flexible = _compiled(key, "response", version)
    w = Writer(4)
    write_response_header(w, correlation_id, flexible and key != API_VERSIONS_KEY)
    _encode(codec, w, body, f"{_name(key)} v{version} response")
    return w.finish_frame()


def _encode(codec: StructCodec, w: Writer, body, context: str) -> None:
    try:
        codec.encode(w, body)
    except EncodeError as exc:
        exc.context = context
        raise


def unsupported_version_response(header: RequestHeader) -> list | None:
    """Kafka's answer to an unsupported version: for ApiVersions, a v0 body with error 35 and the
    ApiVersions entry; for any other API None (the server closes the connection)."""
    if header.api_key != API_VERSIONS_KEY:
        return None
    lo, hi = SUPPORTED[API_VERSIONS_KEY]
    body = {"error_code": UnsupportedVersionError.error_code,
            "api_keys": [{"api_key": API_VERSIONS_KEY, "min_version": lo, "max_version": hi}]}
    return _encode_response(API_VERSIONS_KEY, 0, header.correlation_id, body)


def api_versions_entries(supported: dict[int, tuple[int, int]] | None = None) -> list[dict]:
    """The ``api_keys`` array of an ApiVersions response for ``supported`` (default ``SUPPORTED``)."""
    table = SUPPORTED if supported is None else supported
    return [{"api_key": k, "min_version": lo, "max_version": hi} for k, (lo, hi) in sorted(table.items())]


def decode_response(api_key: int, api_version: int, frame) -> tuple[int, dict]:
    """(correlation_id, body) of a response frame (the bytes after the length prefix)."""
    r = Reader(frame)
    if api_key == API_VERSIONS_KEY:  # header v0 always; a failed answer is a v0 body, whatever was asked
        correlation_id = read_response_header(r, False)
        if r.remaining() >= 2 and Reader(r.buf, r.pos).int16() != 0:
            api_version = 0
        codec, _ = _compiled(api_key, "response", api_version)
    else:
        codec, flexible = _compiled(api_key, "response", api_version)
        correlation_id = read_response_header(r, flexible)
    try:
        body = codec.decode(r)
        if r.pos != r.end:
            raise ProtocolError(f"{r.end - r.pos} bytes left over after the body")
    except ProtocolError as exc:
        exc.context = f"{_name(api_key)} v{api_version} response"
        raise
    return correlation_id, body


# -- bodies alone ------------------------------------------------------------------------------------

def encode_body(api_key: int, kind: str, api_version: int, body) -> bytes:
    """Just the body of a request or response (``kind``), without header or length prefix."""
    codec, _ = _compiled(api_key, kind, api_version)
    w = Writer()
    _encode(codec, w, body, f"{_name(api_key)} v{api_version} {kind}")
    return w.getvalue()


def decode_body(api_key: int, kind: str, api_version: int, data) -> dict:
    """The inverse of ``encode_body``; the whole of ``data`` must be the body."""
    codec, _ = _compiled(api_key, kind, api_version)
    r = Reader(data)
    try:
        body = codec.decode(r)
        if r.pos != r.end:
            raise ProtocolError(f"{r.end - r.pos} bytes left over after the body")
    except ProtocolError as exc:
        exc.context = f"{_name(api_key)} v{api_version} {kind}"
        raise
    return body
