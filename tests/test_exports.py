"""The public surface: ``logbroker.__all__`` and the documented usage shapes run as written."""

from __future__ import annotations

import importlib.metadata
import re
import textwrap

import logbroker


def test_all_names_exist():
    assert logbroker.__all__
    for name in logbroker.__all__:
        assert hasattr(logbroker, name), name
    assert len(set(logbroker.__all__)) == len(logbroker.__all__)


def test_star_import():
    namespace: dict = {}
    exec("from logbroker import *", namespace)
    assert {"Broker", "Producer", "Consumer"} <= set(namespace)
    assert set(logbroker.__all__) <= set(namespace)


def test_main_classes_import():
    from logbroker import Broker, Consumer, Producer

    from logbroker.broker import Broker as BrokerImpl
    from logbroker.client.consumer import Consumer as ConsumerImpl
    from logbroker.client.producer import Producer as ProducerImpl

    assert (Broker, Producer, Consumer) == (BrokerImpl, ProducerImpl, ConsumerImpl)
    assert issubclass(logbroker.LogbrokerError, Exception)


def test_queue_classes_import():
    from logbroker import AcknowledgementError, Message, Queue

    from logbroker.client.queue import AcknowledgementError as ErrorImpl, Message as MessageImpl, Queue as QueueImpl

    assert (Queue, Message, AcknowledgementError) == (QueueImpl, MessageImpl, ErrorImpl)
    assert issubclass(AcknowledgementError, logbroker.LogbrokerError)
    assert Message._fields[:8] == logbroker.Record._fields


def test_version_matches_the_distribution():
    assert logbroker.__version__ == importlib.metadata.version("logbroker")


def test_design_example_shape_runs(tmp_path, monkeypatch):
    from logbroker import Broker, Consumer, Producer

    monkeypatch.chdir(tmp_path)
    handled = []
    with Broker.open("data") as broker:
        broker.create_topic("orders", partitions=3, config={"retention.ms": "604800000"})
        with Producer(broker) as producer:
            meta = producer.send("orders", b"...", key=b"user-1", headers={"type": b"created"}).result()
            assert meta.topic == "orders"
            assert 0 <= meta.partition < 3
            assert meta.offset == 0
            assert isinstance(meta.timestamp, int) and meta.timestamp > 0
        with Consumer(broker, topics=["orders"], auto_offset_reset="earliest") as consumer:
            for message in consumer.poll(timeout=1.0):
                handled.append(message)
    assert len(handled) == 1
    message = handled[0]
    assert (message.key, message.value, list(message.headers)) == (b"user-1", b"...", [("type", b"created")])
    assert (message.offset, message.timestamp, message.partition) == (0, meta.timestamp, meta.partition)
    assert (tmp_path / "data" / "orders-2").is_dir()


def test_package_docstring_example_runs(tmp_path, monkeypatch, capsys):
    match = re.search(r"\n(    from logbroker import .*?)(?:\n\"\"\"|\Z)", logbroker.__doc__ + "\n", re.S)
    assert match, "the package docstring should show an example"
    code = textwrap.dedent(match.group(1))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "logbroker.__doc__", "exec"), {})
    assert capsys.readouterr().out.split() == ["0", "b'hello'"]
    assert (tmp_path / "data").is_dir()
