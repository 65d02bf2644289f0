"""Kafka error codes the group coordinator answers with.

Per-request failures travel as codes inside responses (Kafka's coordinator never raises for them), so
these are plain ints with Kafka's names; ``logbroker.errors`` holds the exception classes.
"""

from __future__ import annotations

NONE = 0
OFFSET_METADATA_TOO_LARGE = 12
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
GROUP_MAX_SIZE_REACHED = 81
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86

NAMES = {code: name for name, code in globals().items() if name.isupper() and isinstance(code, int)}


def error_name(code: int) -> str:
    return NAMES.get(code, f"UNKNOWN({code})")
