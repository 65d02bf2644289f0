"""``logbroker``: the root command group.

Every subcommand gets the data directory (``--data-dir``, env ``LOGBROKER_DATA_DIR``, default
``./data``) through ``ctx.obj``, opens the broker itself (read-only where it only reads) and turns
logbroker errors into a one-line message and exit status 1; usage errors exit with 2.

Where the broker is (``Settings.open_target``): with ``--bootstrap HOST:PORT`` (before the command
or after it; env ``LOGBROKER_BOOTSTRAP``) a command talks Kafka's protocol to that broker
(``logbroker serve``, Kafka, Redpanda) through ``client.remote_admin.RemoteAdmin`` and the network
Producer / Consumer / Queue.  Without it, a command that writes (topic create/alter/delete, produce,
consume -g, group reset-offsets --execute, group delete, queue receive/redrive) opens the data directory; when a running
``logbroker serve`` owns it (the lock records its listen address) the command talks to that server
instead.  Commands that only read (consume without -g, topic list/describe, group list/describe,
a reset-offsets dry run) read the files directly, next to the server, unless --bootstrap is given.
``inspect`` and ``serve`` always work on the files.  ``queue receive`` and ``queue redrive`` write
(a network Queue / Consumer / Producer where the target is remote); ``queue list`` and ``queue
describe`` always read the files and refuse --bootstrap (confluent-kafka 2.16 cannot describe share
groups).
"""

from __future__ import annotations

import functools
import logging

import click

from ..errors import DataDirLockedError, LogbrokerError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
REMOTE_TIMEOUT_MS = 10000  # how long the CLI waits for a remote broker's answer
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
log = logging.getLogger("logbroker.cli")


class Settings:
    def __init__(self, data_dir: str, bootstrap: str | None = None):
        self.data_dir = data_dir
        self.bootstrap = bootstrap

    def open_broker(self, *, read_only: bool = False):
        from ..broker import Broker

        return Broker.open(self.data_dir, read_only=read_only, housekeeping=False)

    def open_remote(self, bootstrap: str):
        from ..client.remote_admin import RemoteAdmin

        return RemoteAdmin(bootstrap, request_timeout_ms=REMOTE_TIMEOUT_MS)

    def open_target(self, *, read_only: bool = False):
        """The broker a command works on: the remote one given by --bootstrap (a RemoteAdmin), else
        the data directory; when opening it for writing finds it owned by a running server, that
        server (over the network).  Both have ``list_topics``, ``partition_count``, ``list_offsets``,
        topic management and ``close()``; ``is_remote`` tells them apart."""
        if self.bootstrap:
            return self.open_remote(self.bootstrap)
        try:
            return self.open_broker(read_only=read_only)
        except DataDirLockedError as exc:
            if not exc.listen:
                raise
            address = connectable(exc.listen)
            log.info("data directory %s is served by process %s on %s: talking to it", self.data_dir,
                     exc.owner_pid, address)
            return self.open_remote(address)


def connectable(listen: str) -> str:
    """A listen address a client can connect to: a wildcard host becomes the loopback address."""
    host, sep, port = listen.rpartition(":")
    if not sep:
        return listen
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare in _WILDCARDS:
        bare = _WILDCARDS[bare]
        return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"
    return listen


def is_remote(target) -> bool:
    """True for a RemoteAdmin (a broker over the network), False for an embedded Broker."""
    return getattr(target, "remote", False) is True


def client_args(target) -> dict:
    """Producer / Consumer arguments that reach ``target``: the Broker itself, or its address."""
    return {"bootstrap": target.bootstrap} if is_remote(target) else {"broker": target}


pass_settings = click.make_pass_decorator(Settings)


def _set_bootstrap(ctx: click.Context, _param, value: str | None) -> None:
    if value:
        ctx.find_object(Settings).bootstrap = value


bootstrap_option = click.option(
    "--bootstrap", metavar="HOST:PORT", expose_value=False, callback=_set_bootstrap,
    help="Talk to the broker at HOST:PORT (logbroker serve, Kafka) instead of the data directory "
         "(same as the option before the command; env LOGBROKER_BOOTSTRAP).")


def handle_errors(fn):
    """Report logbroker errors as ``Error: <message>`` with exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LogbrokerError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option("--data-dir", envvar="LOGBROKER_DATA_DIR", default="data", show_default=True,
              type=click.Path(file_okay=False), help="Data directory (env LOGBROKER_DATA_DIR).")
@click.option("--bootstrap", envvar="LOGBROKER_BOOTSTRAP", metavar="HOST:PORT",
              help="Talk Kafka's protocol to the broker at HOST:PORT (logbroker serve, Kafka) instead of "
                   "using the data directory (env LOGBROKER_BOOTSTRAP). Without it, commands that write use "
                   "the server owning the data directory, if one runs.")
@click.option("-v", "--verbose", is_flag=True, help="Log what the broker does (recovery, retention) to stderr.")
@click.version_option(package_name="logbroker")
@click.pass_context
def cli(ctx: click.Context, data_dir: str, bootstrap: str | None, verbose: bool) -> None:
    """A durable append-only log broker with Kafka's on-disk format.

    \b
    Example:
        printf 'hello\\nworld\\n' | logbroker produce greetings
        logbroker consume greetings -e
        logbroker --bootstrap 127.0.0.1:9092 topic list
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # librdkafka's retries of a connection: the command's own error says what failed
    logging.getLogger("logbroker.client.remote").setLevel(logging.NOTSET if verbose else logging.CRITICAL)
    ctx.obj = Settings(data_dir, bootstrap or None)


def _register() -> None:
    from . import consume, groups, inspect, produce, queue, serve, topics

    cli.add_command(topics.topic)
    cli.add_command(produce.produce)
    cli.add_command(consume.consume)
    cli.add_command(groups.group)
    cli.add_command(queue.queue)
    cli.add_command(inspect.inspect)
    cli.add_command(serve.serve)


_register()


def main() -> None:
    cli(prog_name="logbroker")
