"""Small helpers every handler module shares: error codes and request shapes."""

from __future__ import annotations

import logging

from ...errors import LogbrokerError

log = logging.getLogger("logbroker.server.handlers")

NONE = 0
UNKNOWN_SERVER_ERROR = -1
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
INVALID_REQUEST = 42


def error_code(exc: BaseException) -> int:
    """The Kafka error code for ``exc``: the one every LogbrokerError carries, else UNKNOWN_SERVER_ERROR
    (logged with its traceback: it is a bug or a disk failure nobody translated)."""
    if isinstance(exc, LogbrokerError):
        return exc.error_code
    log.error("unexpected error while serving a request", exc_info=exc)
    return UNKNOWN_SERVER_ERROR


def error_message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, LogbrokerError) else "internal error"
