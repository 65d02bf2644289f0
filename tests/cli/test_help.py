"""Every command documents itself (-h/--help with an Example:) and README.md mentions every command."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from logbroker.cli.main import cli

from .conftest import REPO

EXPECTED = {"", "topic", "topic create", "topic list", "topic describe", "topic alter", "topic delete",
            "produce", "consume", "inspect", "inspect dump", "inspect verify", "inspect repair"}


def command_paths(group: click.Command = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if isinstance(group, click.Group):
        for name, command in sorted(group.commands.items()):
            paths += command_paths(command, prefix + (name,))
    return paths


ALL = command_paths()


def test_known_commands_are_all_there():
    assert EXPECTED <= {" ".join(p) for p in ALL}


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "logbroker")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_with_example(path, flag):
    result = CliRunner().invoke(cli, [*path, flag], prog_name="logbroker", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: logbroker {' '.join(path)}".rstrip() + " ")
    assert "Example:" in result.stdout
    example = result.stdout.split("Example:", 1)[1]
    assert "logbroker" in example, "the example should show a command line"
    assert "-h, --help" in result.stdout


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "logbroker")
def test_every_command_has_a_short_help(path):
    command = cli
    for name in path:
        command = command.get_command(None, name)
    assert command.get_short_help_str().strip(), f"{' '.join(path)} has no summary line"


@pytest.mark.parametrize("path", [p for p in ALL if p], ids=lambda p: " ".join(p))
def test_command_listed_in_its_group_help(path):
    parent = CliRunner().invoke(cli, [*path[:-1], "--help"], prog_name="logbroker")
    assert re.search(rf"^\s+{re.escape(path[-1])}\s+\S", parent.stdout, re.M), parent.stdout


def test_examples_of_leaf_commands_name_the_command():
    for path in ALL:
        command = cli
        for name in path:
            command = command.get_command(None, name)
        if isinstance(command, click.Group):
            continue
        example = command.help.split("Example:", 1)[1]
        assert f"logbroker {' '.join(path)}" in example, (path, example)


def test_readme_mentions_every_command():
    readme = REPO / "README.md"
    assert readme.is_file(), "README.md is missing"
    text = readme.read_text(encoding="utf-8")
    missing = []
    for path in ALL:
        if not path:
            continue
        words = r"\s+".join(re.escape(word) for word in path) + r"\b"
        # "logbroker [global options] topic create ..." on one line, or a code span "`topic create ...`"
        if not re.search(r"logbroker\b[^\n]*?\s" + words, text) and not re.search("`" + words, text):
            missing.append(" ".join(path))
    assert not missing, f"README.md does not mention: {', '.join(missing)}"
