"""`aggregator --help` and `aggregator COMMAND --help` stay fast: no heavy library is imported just to show help.

Every help screen is rendered inside one fresh interpreter, in order, and the modules loaded so far are checked after
each one, so the first help screen that pulls in a heavy library is named. A second fresh interpreter checks the
top-level help on its own. Both `-h` and `--help` must work, and every command's help carries an `Example:` block.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("duckdb", "opendp", "pydantic", "cryptography", "numpy", "pandas", "polars", "pyarrow", "openpyxl", "jinja2")

# Runs in a fresh interpreter: list every command path, render each help screen with -h and --help, and record which
# heavy modules were loaded after each screen. Prints one JSON document.
PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys

    HEAVY = {heavy!r}

    def heavy_loaded():
        return sorted(m for m in HEAVY if m in sys.modules)

    import aggregator.cli as cli

    before_register = heavy_loaded()
    for group in cli.COMMAND_GROUPS:
        try:
            __import__("aggregator.cli." + group)
        except ModuleNotFoundError as exc:
            if exc.name != "aggregator.cli." + group:
                raise
    after_register = heavy_loaded()

    import typer.main

    root = typer.main.get_command(cli.app)

    def walk(cmd, path):
        subcommands = getattr(cmd, "commands", None)
        yield path, subcommands is not None
        if subcommands is not None:
            for name in sorted(subcommands):
                yield from walk(cmd.commands[name], path + [name])

    screens = []
    for path, is_group in walk(root, []):
        for flag in ("-h", "--help"):
            out = io.StringIO()
            code = None
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                try:
                    root.main(args=path + [flag], prog_name="aggregator", standalone_mode=True)
                except SystemExit as exc:
                    code = exc.code
            ours = sorted(m for m in sys.modules if m.split(".")[0] == "aggregator"
                          and m != "aggregator" and not m.startswith("aggregator.cli"))
            screens.append({{"path": path, "group": is_group, "flag": flag, "exit": code,
                             "text": out.getvalue(), "heavy": heavy_loaded(), "library": ours}})
    print(json.dumps({{"before_register": before_register, "after_register": after_register, "screens": screens}}))
    """
).format(heavy=HEAVY)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["COLUMNS"] = "200"  # no wrapping inside "Example:"
    env["NO_COLOR"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env


@pytest.fixture(scope="module")
def probe() -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_registering_commands_imports_nothing_heavy(probe: dict) -> None:
    assert probe["before_register"] == []
    assert probe["after_register"] == [], "a module under aggregator/cli imports a heavy library at module level"


def _offenders(probe: dict, allowed: frozenset[str] = frozenset()) -> list[tuple[str, list[str]]]:
    return [
        (" ".join(["aggregator", *s["path"], s["flag"]]), [m for m in s["heavy"] if m not in allowed])
        for s in probe["screens"]
        if [m for m in s["heavy"] if m not in allowed]
    ]


def test_help_screens_load_no_library_module(probe: dict) -> None:
    """Showing help never imports aggregator.validate/store/schema/...: commands import them inside the function."""
    offenders = [(" ".join(s["path"] + [s["flag"]]), s["library"]) for s in probe["screens"] if s["library"]]
    assert offenders == [], f"first help screen importing a library module: {offenders[:1]}"


def test_help_screens_import_nothing_heavy_except_typers_own_pydantic(probe: dict) -> None:
    # The first offender is the screen that pulled the library in (modules stay loaded afterwards).
    offenders = _offenders(probe, allowed=frozenset({"pydantic"}))
    assert offenders == [], f"first help screen importing a heavy library: {offenders[:1]}"


@pytest.mark.xfail(
    strict=True,
    reason=(
        "typer 0.29 coerces the root group's --help option (value None, annotation bool) through "
        "typer._coercion.build_runtime_param, which imports typer._adapters and so pydantic, on every "
        "`aggregator COMMAND ...` invocation; not caused by aggregator code. Remove this mark when it passes."
    ),
)
def test_every_help_screen_imports_nothing_heavy(probe: dict) -> None:
    offenders = _offenders(probe)
    assert offenders == [], f"first help screen importing a heavy library: {offenders[:1]}"


def test_there_are_commands_to_check(probe: dict) -> None:
    leaves = {" ".join(s["path"]) for s in probe["screens"] if not s["group"]}
    for expected in ("validate", "submit", "merge", "org init", "registry add"):
        assert expected in leaves


def test_short_and_long_help_flags_both_work_and_agree(probe: dict) -> None:
    by_path: dict[str, dict[str, dict]] = {}
    for s in probe["screens"]:
        by_path.setdefault(" ".join(s["path"]), {})[s["flag"]] = s
    for path, flags in by_path.items():
        short, long = flags["-h"], flags["--help"]
        assert short["exit"] in (0, None), f"aggregator {path} -h exited {short['exit']}"
        assert long["exit"] in (0, None), f"aggregator {path} --help exited {long['exit']}"
        assert "Usage:" in long["text"], f"aggregator {path} --help printed no usage"
        assert short["text"] == long["text"], f"aggregator {path}: -h and --help differ"


def test_every_command_help_has_an_example(probe: dict) -> None:
    missing = [
        " ".join(s["path"]) for s in probe["screens"]
        if not s["group"] and s["flag"] == "--help" and "Example:" not in s["text"]
    ]
    assert missing == [], f"commands whose help has no Example: block: {missing}"
    for s in probe["screens"]:
        if not s["group"] and s["flag"] == "--help":
            after = s["text"].split("Example:", 1)[1]
            assert "aggregator " + s["path"][0] in after, f"{' '.join(s['path'])}: example does not show the command"


def test_console_script_help_in_fresh_interpreter() -> None:
    """`python -X importtime -m aggregator.cli --help`: the real entry point, nothing heavy in the import log."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from aggregator.cli import main; main()", "--help"],
        capture_output=True, text=True, env=_env(), timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage:" in result.stdout
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert imported, "no -X importtime output"
    assert sorted(imported & set(HEAVY)) == []
