"""The Python API: Producer and Consumer over an embedded Broker, or over the network given
``bootstrap="host:port"`` (remote_producer, remote_consumer; remote_admin for topics and groups)."""

from .consumer import Consumer, TopicPartition
from .producer import Producer, RecordMetadata, SendFuture, partition_for_key

__all__ = ["Consumer", "Producer", "RecordMetadata", "SendFuture", "TopicPartition", "partition_for_key"]
