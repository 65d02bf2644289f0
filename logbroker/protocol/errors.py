"""What the wire codec raises.

Three failures, three classes, all inside logbroker's one exception tree:

* ``ProtocolError`` (INVALID_REQUEST, 42): the bytes are not a valid message -- truncated, a length
  that points past the end, a null where none is allowed, bytes left over after the body, a frame
  length that is negative or too large.  The server closes the connection (Kafka does the same: it
  cannot answer a request it cannot parse).  The message names the field, e.g.
  ``Produce v7 request: topic_data[0].partition_data[0].records: length 70 but only 12 bytes left``.
* ``UnsupportedVersionError`` (UNSUPPORTED_VERSION, 35): the header was readable but the broker does
  not serve that (api key, version).  The decoded header rides along as ``.header`` so the server can
  answer ApiVersions anyway (PROTOCOL.md §5) and close for anything else.
* ``EncodeError`` (a ``ValueError``): a body handed to an encoder does not fit its definition (a
  string where an int belongs, 70000 in an int16, null in a non-nullable field).  That is a bug in
  the caller, not in the peer, so it is not a ``LogbrokerError``.
"""

from __future__ import annotations

from ..errors import InvalidRequestError, LogbrokerError

__all__ = ["EncodeError", "ProtocolError", "UnsupportedVersionError"]


class _PathMixin:
    """A reason plus the field path where it happened, built up as the error unwinds the decoder."""

    def _init_path(self, reason: str) -> None:
        self.reason = reason
        self.path: list[str] = []
        self.context = ""

    def add_path(self, part: str) -> None:
        """Prepend a field name (``topics``) or an index (``[3]``) while unwinding."""
        self.path.insert(0, part)

    def where(self) -> str:
        return "".join(p if p.startswith("[") else f".{p}" for p in self.path).lstrip(".")

    def __str__(self) -> str:
        where = self.where()
        parts = [p for p in (self.context, where) if p]
        return ": ".join(parts + [self.reason])


class ProtocolError(_PathMixin, InvalidRequestError):
    """Malformed bytes on the wire (INVALID_REQUEST); the connection cannot continue."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self._init_path(reason)
        self.header = None  # the request header, when it could be read


class UnsupportedVersionError(LogbrokerError):
    """The broker does not serve this (api key, version); ``header`` is the decoded request header."""

    error_code = 35

    def __init__(self, message: str, header=None):
        super().__init__(message)
        self.header = header


class EncodeError(_PathMixin, ValueError):
    """A body does not fit the message definition it is being encoded with."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self._init_path(reason)
