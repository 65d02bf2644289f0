"""The Python API over an embedded Broker: Producer and Consumer."""

from .consumer import Consumer, TopicPartition
from .producer import Producer, RecordMetadata, SendFuture, partition_for_key

__all__ = ["Consumer", "Producer", "RecordMetadata", "SendFuture", "TopicPartition", "partition_for_key"]
