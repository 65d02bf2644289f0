"""The embedded broker: ``Broker.open(path)`` and the plain methods every front end calls.

``core`` holds topics, partitions, produce / fetch / list-offsets; ``groups`` the consumer-group
service (the sans-I/O coordinator of ``logbroker.groups`` driven over the ``__consumer_offsets`` log).
"""

from .core import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, Broker

__all__ = ["Broker", "EARLIEST_TIMESTAMP", "LATEST_TIMESTAMP"]
