"""logbroker: a durable append-only log broker with Kafka's on-disk format.

    from logbroker import Broker, Producer, Consumer

    with Broker.open("data") as broker:
        broker.create_topic("orders", partitions=3)
        with Producer(broker) as producer:
            producer.send("orders", b"hello", key=b"user-1").result()
        with Consumer(broker, topics=["orders"]) as consumer:
            for record in consumer.poll(timeout=1.0):
                print(record.offset, record.value)
"""

from .broker import Broker
from .client import AcknowledgementError, Consumer, Message, Producer, Queue, RecordMetadata, TopicPartition
from .errors import LogbrokerError
from .records import Record

__version__ = "0.1.0"

__all__ = ["AcknowledgementError", "Broker", "Consumer", "LogbrokerError", "Message", "Producer", "Queue", "Record",
           "RecordMetadata", "TopicPartition", "__version__"]
