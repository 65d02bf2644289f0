"""``logbroker``: the root command group.

Every subcommand gets the data directory (``--data-dir``, env ``LOGBROKER_DATA_DIR``, default
``./data``) through ``ctx.obj``, opens the broker itself (read-only where it only reads) and turns
logbroker errors into a one-line message and exit status 1; usage errors exit with 2.
"""

from __future__ import annotations

import functools
import logging

import click

from ..errors import LogbrokerError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Settings:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir

    def open_broker(self, *, read_only: bool = False):
        from ..broker import Broker

        return Broker.open(self.data_dir, read_only=read_only, housekeeping=False)


pass_settings = click.make_pass_decorator(Settings)


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
@click.option("-v", "--verbose", is_flag=True, help="Log what the broker does (recovery, retention) to stderr.")
@click.version_option(package_name="logbroker")
@click.pass_context
def cli(ctx: click.Context, data_dir: str, verbose: bool) -> None:
    """A durable append-only log broker with Kafka's on-disk format.

    \b
    Example:
        printf 'hello\\nworld\\n' | logbroker produce greetings
        logbroker consume greetings -e
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = Settings(data_dir)


def _register() -> None:
    from . import consume, groups, inspect, produce, serve, topics

    cli.add_command(topics.topic)
    cli.add_command(produce.produce)
    cli.add_command(consume.consume)
    cli.add_command(groups.group)
    cli.add_command(inspect.inspect)
    cli.add_command(serve.serve)


_register()


def main() -> None:
    cli(prog_name="logbroker")
