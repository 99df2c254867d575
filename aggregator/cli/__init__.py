"""Thin typer app: parse, call the library, render. Imports nothing heavy at module level.

Each command group lives in its own module and registers on `app`; library errors are turned into one clean
line and the error's exit code here, once.
"""


import dataclasses
import json
import sys
from enum import Enum
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import typer
from typer.core import TyperGroup


def _click_parts():
    """(ClickException, UsageError, NoArgsIsHelpError, get_current_context) wherever this typer keeps click
    (typer 0.29 vendors its own copy as typer._click)."""
    try:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore
        from typer._click.globals import get_current_context  # type: ignore
    except ImportError:  # pragma: no cover - typer versions that depend on click
        from click import ClickException, UsageError, get_current_context

        NoArgsIsHelpError = getattr(__import__("click.exceptions").exceptions, "NoArgsIsHelpError", ())
    return ClickException, UsageError, NoArgsIsHelpError, get_current_context


def error_code(exc: BaseException) -> str:
    """Stable machine code of an error: the exception class in kebab case (MappingError -> mapping-error)."""
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(exc).__name__).lower()


def wants_json(args: list[str] | None = None) -> bool:
    """Was --json given? From the running command's own parameters, else from the raw arguments."""
    ctx = _click_parts()[3](silent=True)
    while ctx is not None:
        if ctx.params.get("json_out"):
            return True
        ctx = ctx.parent
    return args is not None and "--json" in args


def report_error(message: str, exit_code: int, code: str, *, as_json: bool, **extra: Any) -> None:
    """The one way an error is shown: a JSON object on stdout with --json, else one line on stderr."""
    if as_json:
        error = {"code": code, "message": message, "exit_code": exit_code, **extra}
        sys.stdout.write(json.dumps({"error": error}, indent=2, sort_keys=True) + "\n")
        sys.stdout.flush()
        return
    from rich.markup import escape

    # The message can carry names from the user's files (headers, file names): never read them as rich markup.
    console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, emoji=False)


class AggregatorGroup(TyperGroup):
    """The root group: command-line usage errors (unknown option, missing argument) are shown like every other
    error, "error: ..." on stderr or a JSON error object on stdout with --json, with click's exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        ClickException, UsageError, NoArgsIsHelpError, _ = _click_parts()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # `aggregator registry`: the group's help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except ClickException as exc:
            as_json = "--json" in argv
            if not as_json and isinstance(exc, UsageError) and exc.ctx is not None:
                hint = f"Try '{exc.ctx.command_path} {exc.ctx.help_option_names[0]}' for help."
                typer.echo(exc.ctx.get_usage() + "\n" + hint + "\n", err=True)
            report_error(exc.format_message(), exc.exit_code, "usage-error" if exc.exit_code == 2 else "error",
                         as_json=as_json)
            sys.exit(exc.exit_code)
        except typer.Abort:
            report_error("aborted", 1, "aborted", as_json="--json" in argv)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=AggregatorGroup,
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


def fail(message: str, exit_code: int = 1, code: str | None = None, **extra: Any) -> None:
    """One clear error (a line on stderr, or a JSON error object on stdout with --json) and the exit code."""
    if code is None:
        code = {2: "usage-error", 130: "interrupted"}.get(exit_code, "error")
    report_error(message, exit_code, code, as_json=wants_json(), **extra)
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
    """Run a library call, turning AggregatorError (and an operating-system error) into a clean error line."""
    from ..errors import AggregatorError

    try:
        return call()
    except AggregatorError as exc:
        option = getattr(exc, "option", None)
        extra = {"reason": exc.reason} if getattr(exc, "reason", None) else {}
        fail(f"--{option.replace('_', '-')}: {exc.message}" if option else exc.message, exc.exit_code,
             error_code(exc), **extra)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except OSError as exc:  # a full disk, a folder removed mid-run, no permission: one line, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}", 1, "os-error")


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
