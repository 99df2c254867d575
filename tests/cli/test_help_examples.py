"""Every command's --help: an Example: block whose commands parse, and none of the slips help texts are prone to."""

from __future__ import annotations

import shlex

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from aggregator.cli import app, register_commands

register_commands()
ROOT_COMMAND = get_command(app)


def leaves(group=ROOT_COMMAND, path=()):
    """Every command a user runs: the leaves, and groups that run by themselves too (`compute`)."""
    for name, command in sorted(getattr(group, "commands", {}).items()):
        if getattr(command, "commands", None):
            if getattr(command, "invoke_without_command", False):
                yield (*path, name), command
            yield from leaves(command, (*path, name))
        else:
            yield (*path, name), command


LEAVES = list(leaves())


def examples(command) -> list[list[str]]:
    """The `aggregator ...` lines of a command's Example: block, continuation lines joined, as argument lists."""
    text = (command.help or "").split("Example:", 1)[1].replace("\\\n", " ")
    return [shlex.split(line.strip())[1:] for line in text.splitlines() if line.strip().startswith("aggregator ")]


def test_every_command_is_walked():
    names = {" ".join(p) for p, _ in LEAVES}
    assert {"org init", "org linkage-key", "validate", "submit", "merge", "table", "registry add", "audit"} <= names


@pytest.mark.parametrize("path, command", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_help_has_an_example_that_parses_and_no_slips(path, command):
    shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    text = shown.stdout
    assert "Example:" in text, f"aggregator {' '.join(path)} --help has no Example: block"
    # Not checked: "<list[str]>" after merge's BUNDLE... metavar is typer 0.29's own type label for list arguments.
    for slip in ("%%", "Error:"):
        assert slip not in text, f"aggregator {' '.join(path)} --help shows {slip!r}"
    found = examples(command)
    assert found, "the Example: block shows no `aggregator ...` command"
    for args in found:
        assert args[: len(path)] == list(path), f"example {args} is not of this command"
        # Parse exactly as the command line would (unknown options, missing required ones, bad values all raise).
        with command.make_context(" ".join(path), args[len(path):]) as ctx:
            assert ctx.params is not None
    if any(p.name == "out" for p in command.params):
        (out,) = [p for p in command.params if p.name == "out"]
        assert "-o" in out.opts, f"aggregator {' '.join(path)}: --out without -o"
    if any(p.name == "json_out" for p in command.params) and any(p.name == "quiet" for p in command.params):
        (quiet,) = [p for p in command.params if p.name == "quiet"]
        assert "-q" in quiet.opts
