"""Thin typer app: parse, call the library, render. Imports nothing heavy at module level.

Each command group lives in its own module and registers on `app`; library errors are turned into one clean
line and the error's exit code here, once.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from enum import Enum
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import typer

app = typer.Typer(
    name="aggregator",
    help="Privacy-preserving registration of presumed victims of human trafficking.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich's help renderer alone would double the start-up time
)

# Options shared by many commands, declared once.
JsonOption = typer.Option(False, "--json", help="Print the result as JSON (no progress, stable keys).")
QuietOption = typer.Option(False, "--quiet", "-q", help="Print nothing but errors.")
HomeOption = typer.Option(None, "--home", help="Organisation home folder (default .aggregator or $AGGREGATOR_HOME).")
DbOption = typer.Option(Path("national.duckdb"), "--db", help="Coordinator database file.")


class Lang(str, Enum):
    en = "en"
    nl = "nl"


def to_jsonable(result: Any) -> Any:
    """Result object -> plain JSON value; the same data the rich renderer shows."""
    if hasattr(result, "as_dict"):
        return result.as_dict()
    if hasattr(result, "model_dump"):
        return result.model_dump(mode="json")
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return result


def print_json(result: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(result), indent=2, sort_keys=True, default=str) + "\n")


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def fail(message: str, exit_code: int = 1) -> None:
    """One clear error line on stderr and the exit code; never a traceback."""
    from rich.markup import escape

    # The message can carry names from the user's files (headers, file names): never read them as rich markup.
    console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, emoji=False)
    raise typer.Exit(exit_code)


@contextmanager
def query_progress(con, label: str, enabled: bool) -> Iterator[None]:
    """A rich progress bar on stderr fed by DuckDB's own progress of the running query (polled from a thread)."""
    if not enabled or not console(stderr=True).is_terminal:
        yield
        return
    import threading

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    stop = threading.Event()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=100)

        def poll() -> None:
            while not stop.wait(0.1):
                try:
                    done = con.query_progress()
                except Exception:  # the connection closed under us: the work is over
                    return
                if done >= 0:
                    bar.update(task, completed=done)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join()


def run(call: Callable[[], Any]) -> Any:
    """Run a library call, turning AggregatorError into a clean error line."""
    from ..errors import AggregatorError

    try:
        return call()
    except AggregatorError as exc:
        option = getattr(exc, "option", None)
        fail(f"--{option.replace('_', '-')}: {exc.message}" if option else exc.message, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)


COMMAND_GROUPS = ("organisation", "coordinator", "joint", "audit", "report", "demo")


def register_commands() -> None:
    """Import every command group so it registers on `app` (each imports only typer and the standard library)."""
    from importlib import import_module

    for group in COMMAND_GROUPS:
        import_module(f"{__name__}.{group}")


def main() -> None:
    register_commands()
    app()


if __name__ == "__main__":
    main()
