"""Kafka wire protocol, sans-I/O: framing, headers, message definitions and one generic codec.

Bytes in, dicts out; dicts in, bytes out.  Nothing here touches a socket (h11 is the model); the
asyncio server feeds ``FrameDecoder`` and writes what ``encode_response`` returns.

Modules, bottom-up: ``errors`` (ProtocolError, UnsupportedVersionError, EncodeError),
``primitives`` (bounds-checked Reader, Writer), ``schema`` (the definition notation and the
snake_case naming rule), ``definitions/`` (the messages, written from ../shared/kafka/),
``fieldcodecs`` and ``compiler`` (definition + version -> decoder/encoder closures), ``headers``,
``framing``, ``codec`` (the API below).
"""

from __future__ import annotations

from .codec import (API_NAMES, API_VERSIONS_KEY, SERVED, SUPPORTED, api_versions_entries, decode_body,
                    decode_request, decode_response, encode_body, encode_request, encode_response,
                    encode_response_bytes, is_flexible, response_expected, unsupported_version_response)
from .errors import EncodeError, ProtocolError, UnsupportedVersionError
from .framing import DEFAULT_MAX_FRAME_BYTES, FrameDecoder
from .headers import RequestHeader, decode_request_header

__all__ = [
    "API_NAMES", "API_VERSIONS_KEY", "DEFAULT_MAX_FRAME_BYTES", "EncodeError", "FrameDecoder", "ProtocolError",
    "RequestHeader", "SERVED", "SUPPORTED", "UnsupportedVersionError", "api_versions_entries", "decode_body",
    "decode_request", "decode_request_header", "decode_response", "encode_body", "encode_request",
    "encode_response", "encode_response_bytes", "is_flexible", "response_expected",
    "unsupported_version_response",
]
