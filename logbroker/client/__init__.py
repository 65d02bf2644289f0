"""The Python API: Producer and Consumer over an embedded Broker, or over the network given
``bootstrap="host:port"`` (remote_producer, remote_consumer; remote_admin for topics and groups);
Queue, a member of a share group over an embedded Broker or over the network (remote_queue); redrive
moves its dead letters back."""

from .consumer import Consumer, TopicPartition
from .producer import Producer, RecordMetadata, SendFuture, partition_for_key
from .queue import AcknowledgementError, Message, Queue

__all__ = ["AcknowledgementError", "Consumer", "Message", "Producer", "Queue", "RecordMetadata", "SendFuture",
           "TopicPartition", "partition_for_key"]
