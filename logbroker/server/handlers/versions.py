"""ApiVersions (18): what this broker serves (PROTOCOL.md §5).

The answer lists every API that has a handler here, with the version range the codec serves for it
(``logbroker.protocol.SUPPORTED``).  A request of a version the codec does not know is answered by
the connection with the codec's ``unsupported_version_response`` (error 35 and a v0 body), never by
closing the connection: librdkafka would fall back to ancient protocol versions.
"""

from __future__ import annotations

from ...protocol import SUPPORTED, unsupported_version_response


def advertised() -> list[dict]:
    from . import HANDLERS

    return [{"api_key": key, "min_version": low, "max_version": high}
            for key, (low, high) in sorted(SUPPORTED.items()) if key in HANDLERS]


_ADVERTISED: list[dict] | None = None


async def handle_api_versions(ctx, body: dict) -> dict:
    global _ADVERTISED
    if _ADVERTISED is None:
        _ADVERTISED = advertised()
    return {"error_code": 0, "api_keys": _ADVERTISED, "throttle_time_ms": 0}


def unsupported_api_versions(header):
    """The framed answer to an ApiVersions request of a version this broker does not know."""
    return unsupported_version_response(header)
