"""Request and response headers (PROTOCOL.md §3).

Request header v1: api_key INT16, api_version INT16, correlation_id INT32, client_id NULLABLE_STRING.
v2 (used with flexible request versions) adds a tagged-field section -- but its client_id stays a
classic INT16-length string, so any broker can read the header of a request version it does not
know.  That is why ``decode_request_header`` needs no knowledge of the API: it reads the v1 part,
and the caller skips the v2 tag section once it knows the version is flexible.

Response header v0 is the correlation id; v1 (flexible responses) adds a tag section.  ApiVersions
responses always use v0 (KIP-511), which ``codec.py`` decides, not this module.

client_id is informational: it is decoded leniently (invalid UTF-8 is replaced, not refused).
Request header v0 (no client_id, ControlledShutdown v0 only) is not supported.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import ProtocolError
from .primitives import Reader, Writer

__all__ = ["RequestHeader", "decode_request_header", "read_request_header", "skip_tags", "write_request_header",
           "write_response_header", "read_response_header"]


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def read_request_header(r: Reader) -> RequestHeader:
    """The v1 part of a request header (v2's tag section is left to ``skip_tags``)."""
    try:
        api_key = r.int16()
        api_version = r.int16()
        correlation_id = r.int32()
        client_id = r.string(nullable=True, errors="replace")
    except ProtocolError as exc:
        exc.context = "request header"
        raise
    return RequestHeader(api_key, api_version, correlation_id, client_id)


def decode_request_header(frame) -> RequestHeader:
    """The header of a frame (the bytes after the length prefix); ProtocolError if it is too short."""
    return read_request_header(Reader(frame))


def skip_tags(r: Reader) -> None:
    """Skip a tagged-field section whose tags this codec does not know (header v2, response v1)."""
    for _ in range(r.uvarint(5, "tagged field count")):
        r.uvarint(5, "tag")
        r.raw(r.uvarint(5, "tagged field size"), "tagged field")


def write_request_header(w: Writer, header: RequestHeader, flexible: bool) -> None:
    w.int16(header.api_key)
    w.int16(header.api_version)
    w.int32(header.correlation_id)
    w.string(header.client_id, nullable=True)
    if flexible:
        w.uvarint(0)


def write_response_header(w: Writer, correlation_id: int, flexible: bool) -> None:
    w.int32(correlation_id)
    if flexible:
        w.uvarint(0)


def read_response_header(r: Reader, flexible: bool) -> int:
    try:
        correlation_id = r.int32()
        if flexible:
            skip_tags(r)
    except ProtocolError as exc:
        exc.context = "response header"
        raise
    return correlation_id
