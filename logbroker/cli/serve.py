"""``logbroker serve``: speak the Kafka protocol on a TCP port, over a data directory it owns."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from .main import CONTEXT_SETTINGS, handle_errors, pass_settings

log = logging.getLogger("logbroker.server")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--data-dir", "data_dir", default=None, type=click.Path(file_okay=False),
              help="Data directory (overrides the one given before the command).")
@click.option("--listen", default="127.0.0.1:9092", show_default=True, metavar="HOST:PORT",
              help="Address to listen on; port 0 picks a free port.  Anything but a loopback address "
                   "exposes every topic to whoever can reach it (there is no authentication).")
@click.option("--auto-create/--no-auto-create", default=True, show_default=True,
              help="Create unknown topics named in Metadata and Produce requests (Kafka's auto.create.topics.enable).")
@click.option("--default-partitions", default=1, show_default=True, type=click.IntRange(1, 10_000),
              help="Partitions of auto-created topics and of CreateTopics asking for -1 (Kafka's num.partitions).")
@click.option("--initial-rebalance-delay-ms", default=3000, show_default=True, type=click.IntRange(0),
              help="How long a new consumer group waits for more members before its first assignment "
                   "(Kafka's group.initial.rebalance.delay.ms; 0 suits tests).")
@click.option("--share-auto-offset-reset", default=None, type=click.Choice(["latest", "earliest"]),
              help="Where a share group nobody configured starts reading a partition it has never read "
                   "(Kafka's share.auto.offset.reset): 'latest' delivers only records produced afterwards.  "
                   "Settings set for a group itself (e.g. by an embedded Queue) win.  [default: latest]")
@click.option("--share-record-lock-duration-ms", default=None, type=click.IntRange(1, 3_600_000),
              help="How long a share consumer holds a record it was given before it is offered again, for "
                   "share groups nobody configured (Kafka's group.share.record.lock.duration.ms).  "
                   "[default: 30000]")
@pass_settings
@handle_errors
def serve(settings, data_dir: str | None, listen: str, auto_create: bool, default_partitions: int,
          initial_rebalance_delay_ms: int, share_auto_offset_reset: str | None,
          share_record_lock_duration_ms: int | None) -> None:
    """Serve the data directory to Kafka clients (kafka-python, librdkafka, aiokafka, kcat).

    Prints "logbroker listening on HOST:PORT" on stdout once clients can connect.  SIGTERM or
    SIGINT stops it cleanly: no new connections, requests already read are answered, then every
    partition is fsynced and the clean-shutdown marker written (exit status 0).

    \b
    Example:
        logbroker serve --listen 127.0.0.1:9092
        kcat -b 127.0.0.1:9092 -L
    """
    from ..broker import Broker
    from ..server import Server, bind_socket, format_address, parse_listen
    from ..server.app import is_loopback

    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    server_log = logging.getLogger("logbroker.server")
    if server_log.getEffectiveLevel() > logging.INFO:
        server_log.setLevel(logging.INFO)
    if not is_loopback(host):
        log.warning("listening on %s, a non-loopback address, as explicitly asked: anyone who can reach it "
                    "can read and write every topic (there is no authentication)", host)
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {format_address(host, port)}: {exc.strerror or exc}") from None
    address = format_address(*sock.getsockname()[:2])
    try:
        broker = Broker.open(data_dir or settings.data_dir, listen=address)
    except BaseException:
        sock.close()
        raise
    try:
        for report in broker.recovery_reports:
            log.warning("recovered after an unclean shutdown: %s", report)
        server = Server(broker, auto_create_topics=auto_create, default_partitions=default_partitions,
                        initial_rebalance_delay_ms=initial_rebalance_delay_ms,
                        share_auto_offset_reset=share_auto_offset_reset,
                        share_record_lock_duration_ms=share_record_lock_duration_ms)
        asyncio.run(_run(server, sock, address))
    finally:
        broker.close()
    log.info("data directory %s closed cleanly", broker.data_dir)


async def _run(server, sock, address: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, _on_signal, stop, signum)
            signals.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    await server.start(sock=sock)
    click.echo(f"logbroker listening on {address}")
    sys.stdout.flush()
    try:
        await stop.wait()
        log.info("shutting down: no new connections; answering requests already read")
        await server.close()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    if stop.is_set():
        return
    log.info("received %s", signal.Signals(signum).name)
    stop.set()
