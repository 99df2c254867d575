"""Organisation side: `org init`, `validate`, `submit`. Nothing printed here carries a value of an identifying field."""


import datetime as dt
from pathlib import Path
from typing import List, Optional

import typer

from . import HomeOption, JsonOption, QuietOption, app, console, print_json, query_progress, run

org_app = typer.Typer(help="Set up this organisation: signing key and configuration.", no_args_is_help=True)
app.add_typer(org_app, name="org")

ExportArg = typer.Argument(..., help="The organisation's export (CSV, XLSX, Parquet or JSON lines).", show_default=False)
MappingOption = typer.Option(..., "--mapping", "-m", help="Mapping TOML: your column names and values onto the schema.")
ExportDateOption = typer.Option(
    None, "--export-date", help="Day the export was made, YYYY-MM-DD (default today); consent is judged on this day."
)


def _export_date(value: Optional[str]) -> Optional[dt.date]:
    if value is None:
        return None
    from ..util.clock import parse_day

    return run(lambda: parse_day(value, "export_date"))


@org_app.command("init")
def org_init(
    org: str = typer.Option(..., "--org", help="Organisation id, e.g. shelter-noord."),
    kind: str = typer.Option(..., "--kind", help="investigative (statutory basis) or non_investigative (consent needed)."),
    reporter_type: Optional[str] = typer.Option(None, "--reporter-type", help="police, shelter, help_line, ..."),
    cap: str = typer.Option("1", "--cap", help="Privacy budget (epsilon) per period."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key."),
    home: Optional[Path] = HomeOption,
    json_out: bool = JsonOption,
) -> None:
    """Create this organisation's signing key (mode 0600) and configuration.

    Example:


    \b
        aggregator org init --org shelter-noord --kind non_investigative --reporter-type shelter
    """
    from ..organisation.home import init_org, inside_git_work_tree

    config = run(lambda: init_org(org, kind, reporter_type=reporter_type, cap=cap, home=home, force=force))
    repo = inside_git_work_tree(Path(config.home))
    if repo is not None:
        console(stderr=True).print(
            f"[yellow]warning:[/] the signing key {config.key_path} is inside the git work tree {repo}; "
            "never commit it (.aggregator/ and *.key are in this project's .gitignore), or use --home outside the clone",
            markup=True, highlight=False, soft_wrap=True,
        )
    if json_out:
        print_json(config)
        return
    console().print(
        f"Initialised [bold]{config.id}[/] ({config.kind}, {config.reporter_type}) in {config.home}\n"
        f"Give {config.public_key_path} to the coordinator; keep {config.key_path} private."
    )


@org_app.command("linkage-key")
def org_linkage_key(
    out: Path = typer.Option(..., "--out", "-o", help="File to create (refused if it exists).", show_default=False),
    json_out: bool = JsonOption,
) -> None:
    """Create the shared linkage key file: 32 random bytes as 64 hex digits, mode 0600.

    The linkage key is shared by the organisations, never by the coordinator: one organisation creates it and hands
    it to the others over a safe channel. Pass it to submit as --linkage-key FILE or as
    AGGREGATOR_LINKAGE_KEY="$(cat FILE)" (the same key either way). An existing file is never overwritten.

    Example:


    \b
        aggregator org linkage-key --out shared-linkage.key
    """
    from ..organisation.home import new_linkage_key

    path = run(lambda: new_linkage_key(out))
    if json_out:
        print_json({"path": str(path), "bytes": 32, "mode": "0600"})
        return
    console().print(
        f"Wrote a new linkage key to {path} (mode 0600). Share it with the other organisations only, never with "
        "the coordinator."
    )


receipt_app = typer.Typer(help="Keep the coordinator's receipts for this organisation's bundles.", no_args_is_help=True)
org_app.add_typer(receipt_app, name="receipt")


@receipt_app.command("add")
def org_receipt_add(
    receipts: List[Path] = typer.Argument(
        ..., help="Receipt files (or folders of them) the coordinator handed back.", show_default=False,
        metavar="RECEIPT...",
    ),
    coordinator_key: Path = typer.Option(
        ..., "--coordinator-key", help="The coordinator's public key (coordinator.pub) receipts must verify with.",
    ),
    home: Optional[Path] = HomeOption,
    json_out: bool = JsonOption,
) -> None:
    """Verify receipts with the coordinator's public key and keep each next to its bundle in the home.

    A receipt is the coordinator's signed word that it accepted a bundle at a ledger position under a chain head;
    an auditor checks kept receipts against the store with `aggregator audit --receipts HOME/releases`. Keep them:
    without them a coordinator that drops a bundle and rebuilds its store passes the audit.

    Example:


    \b
        aggregator org receipt add receipts/*.receipt.json --coordinator-key coordinator.pub
    """
    from ..contract.keys import read_public_key_file
    from ..organisation.home import load_org
    from ..organisation.receipts import keep_receipts

    config = run(lambda: load_org(home))
    key = run(lambda: read_public_key_file(coordinator_key))
    kept = run(lambda: keep_receipts(config, receipts, key))
    if json_out:
        print_json({"receipts": [k.as_dict() for k in kept]})
        return
    out = console()
    for k in kept:
        verb = {"kept": "kept", "replaced": "kept (replaces an older receipt)",
                "older": "not kept: a newer receipt for this bundle is kept"}[k.status]
        out.print(f"{verb}: bundle {k.digest[:12]} of {k.period}, ledger entry {k.index} under head {k.head_index}",
                  highlight=False, soft_wrap=True)
    out.print(f"{len(kept)} receipt(s) checked with coordinator key; kept in {Path(config.home) / 'releases'}",
              highlight=False, soft_wrap=True)


@app.command("validate")
def validate(
    export: Path = ExportArg,
    mapping: Path = MappingOption,
    export_date: Optional[str] = ExportDateOption,
    errors_out: Optional[Path] = typer.Option(None, "--errors-out", help="Write every explained row error to this CSV."),
    max_errors: int = typer.Option(1000, "--max-errors", min=1, help="Explain at most this many failing rows."),
    json_out: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Check an export against the schema. Row errors stay on this machine; exit code 1 when any row fails.

    The example's export holds 3 invalid rows on purpose, so it exits 1 and names them.

    Example:


    \b
        aggregator validate examples/shelter-noord/export-2025.csv --mapping examples/shelter-noord/mapping.toml
    """
    from ..util.engine import connect
    from ..organisation.validate import validate_export, write_errors_csv

    day = _export_date(export_date)
    con = run(connect)
    with query_progress(con, f"Checking {export.name}", enabled=not (json_out or quiet)):
        report, _ = run(lambda: validate_export(export, mapping, export_date=day, max_explained=max_errors, con=con,
                                                report_only=True))
    con.close()
    if errors_out is not None:
        run(lambda: write_errors_csv(report, errors_out))
    if json_out:
        print_json(report)
    elif not quiet:
        render_validation(report)
    raise typer.Exit(0 if report.valid else 1)


def render_validation(report) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    f = report.file
    summary = Table(title=f"Validation of {f.get('path')}", show_header=False, title_justify="left")
    summary.add_row("format", f"{f.get('format')}" + (f", {f.get('encoding')}" if f.get("encoding") else "")
                    + (f", delimiter {f.get('delimiter')!r}" if f.get("delimiter") else ""))
    summary.add_row("export date", report.export_date)
    summary.add_row("rows read", str(report.rows_read))
    summary.add_row("valid", f"[green]{report.rows_valid}[/]")
    summary.add_row("invalid", f"[red]{report.rows_invalid}[/]" if report.rows_invalid else "0")
    out.print(summary)
    for note in report.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning['message'])}")
    if report.errors_by_rule:
        rules = Table(title="Broken rules", title_justify="left")
        rules.add_column("rule")
        rules.add_column("rows", justify="right")
        for rule, n in report.errors_by_rule.items():
            rules.add_row(rule, str(n))
        out.print(rules)
        errors = Table(title="Row errors", title_justify="left")
        for name in ("row", "field", "rule", "message"):
            errors.add_column(name)
        for e in report.errors[:50]:
            errors.add_row(str(e.row), e.field, e.rule, escape(e.message))
        out.print(errors)
        if len(report.errors) > 50 or report.truncated:
            out.print(
                f"[yellow]Showing 50 of {report.errors_total} errors; use --errors-out FILE or --json for the rest"
                + (f" (explanations capped at {report.errors_shown_limit} rows)" if report.truncated else "")
                + ".[/]"
            )
    for fname, entries in report.unknown_values.items():
        for entry in entries:
            if entry["closest_codes"]:
                out.print(
                    f"unknown {fname} value in {entry['rows']} row(s); closest codes: {', '.join(entry['closest_codes'])}; "
                    f"add to the mapping: [bold]{escape(entry['mapping_line'])}[/]"
                )
            else:
                out.print(
                    f"unknown {fname} value in {entry['rows']} row(s); no code suggested: {escape(entry['reason'])}; "
                    f"for unknown: [bold]{escape(entry['mapping_line'])}[/]"
                )


@app.command("submit")
def submit(
    export: Path = ExportArg,
    mapping: Path = MappingOption,
    period: int = typer.Option(..., "--period", help="Reporting period (calendar year)."),
    epsilon: Optional[str] = typer.Option(
        None, "--epsilon",
        help="Privacy budget for this organisation's own noisy counts (exact, e.g. 1.0 or 1/2; default 1.0, or none with --plan).",
    ),
    plan: Optional[Path] = typer.Option(
        None, "--plan", help="Computation plan of a joint release: add encrypted bucket shares for it (spends its epsilon).",
    ),
    out: Path = typer.Option(Path("out"), "--out", "-o", help="Folder for the signed bundle."),
    linkage_key: Optional[Path] = typer.Option(
        None, "--linkage-key", help="File with the shared linkage key (default $AGGREGATOR_LINKAGE_KEY)."
    ),
    export_date: Optional[str] = ExportDateOption,
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Release only the valid rows instead of refusing."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would leave; write and spend nothing."),
    workload: str = typer.Option("monitor", "--workload", help="monitor (split for the national tables), published (only their two tables) or equal."),
    preview: bool = typer.Option(False, "--preview", help="Show the expected error for this epsilon; read and spend nothing."),
    target_error: Optional[float] = typer.Option(
        None, "--target-error", help="Pick the smallest epsilon whose expected 95% error on the national total is at most this."
    ),
    home: Optional[Path] = HomeOption,
    json_out: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Validate, then write one signed bundle: pseudonymised records with a lawful basis, noisy counts of the rest.

    Example:


    \b
        aggregator submit examples/shelter-noord/export-2025-clean.csv -m examples/shelter-noord/mapping.toml \\
            --period 2025 --epsilon 1.0 --out out/
    """
    from ..organisation.home import load_linkage_key, load_org
    from ..organisation.spending import SpendingFile
    from ..privacy.epsilon import parse_epsilon
    from ..organisation.release import epsilon_for_target, preview as do_preview, submit as do_submit

    from fractions import Fraction

    eps = Fraction(0) if plan is not None and epsilon is None else run(lambda: parse_epsilon("1.0" if epsilon is None else epsilon))
    joint_plan = None
    if plan is not None:
        from ..joint.plan import read_plan_file

        joint_plan = run(lambda: read_plan_file(plan))
    if target_error is not None:
        config = run(lambda: load_org(home))
        remaining = SpendingFile(config.spending_path, config.cap_fraction).remaining(period)
        eps = run(lambda: epsilon_for_target(target_error, remaining, workload))
    if preview:
        shown = run(lambda: do_preview(eps, workload))
        if json_out:
            print_json(shown)
        elif not quiet:
            render_preview(shown)
        return
    key = run(lambda: load_linkage_key(linkage_key))
    from ..util.engine import connect

    day = _export_date(export_date)
    con = run(connect)
    with query_progress(con, f"Releasing {export.name}", enabled=not (json_out or quiet)):
        result = run(
            lambda: do_submit(
                export, mapping, period=period, epsilon=eps, out=out, home=home, linkage_key=key,
                export_date=day, skip_invalid=skip_invalid, dry_run=dry_run, workload=workload, plan=joint_plan,
                con=con, show_over_budget=True,
            )
        )
    if json_out:
        print_json(result)
    elif not quiet:
        render_submit(result)


def render_submit(result) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    if result.over_budget:
        title = "[bold red]Dry run, OVER BUDGET[/]: nothing written, nothing spent; a real submit would be refused"
    else:
        title = "Dry run: nothing written, nothing spent" if result.dry_run else "Bundle written"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_row("organisation", result.organisation)
    table.add_row("period / sequence", f"{result.period} / {result.sequence}")
    table.add_row("rows read / valid", f"{result.rows_read} / {result.rows_valid}")
    if result.rows_invalid_skipped:
        table.add_row("invalid rows skipped", str(result.rows_invalid_skipped))
    table.add_row("records (statutory)", str(result.records_by_basis["statutory"]))
    table.add_row("records (consent)", str(result.records_by_basis["consent"]))
    if result.withdrawals:
        table.add_row("withdrawals of earlier periods", str(result.withdrawals))
    if result.records_linked:
        table.add_row("warning: people sharing a pseudonym",
                      f"{result.records_linked} (same names and date of birth as another person; sent as one)")
    table.add_row("epsilon this release", result.epsilon)
    if result.joint_plan:
        table.add_row("joint release plan", result.joint_plan)
    table.add_row("epsilon spent / cap", f"{result.epsilon_spent} / {result.epsilon_cap}")
    if result.over_budget:
        table.add_row("[bold red]over budget[/]", escape(result.over_budget))
    out.print(table)
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning['message'])}")
    # The path is what `merge` and `explain` take: on a line of its own, never cut, whatever the terminal width.
    out.print(f"bundle: {escape(result.path)}" if result.path else
              f"bundle: (would be {result.digest}.bundle.json)", soft_wrap=True)
    if not result.marginals:
        out.print("No noisy marginals: " + (
            "investigative organisations release records only (everyone they report has a statutory basis), "
            "so no privacy budget is spent." if result.kind == "investigative" else "nothing was counted noisily."))
        return
    marg = Table(title="Noisy marginals (people without a lawful basis)", title_justify="left")
    for name in ("dimensions", "epsilon", "noise scale", "95% error per cell"):
        marg.add_column(name)
    for m in result.marginals:
        marg.add_row(" x ".join(m["dimensions"]), m["epsilon"], f"{m['scale']:.3g}", f"±{m['expected_error_95']:.0f}")
    out.print(marg)


def render_preview(shown) -> None:
    from rich.table import Table

    out = console()
    cells = Table(title=f"Preview at epsilon {shown.epsilon} ({shown.workload} workload): nothing read, nothing spent",
                  title_justify="left")
    for name in ("noisy table", "epsilon", "noise scale", "95% error per cell"):
        cells.add_column(name)
    for m in shown.marginals:
        cells.add_row(" x ".join(m["dimensions"]), m["epsilon"], f"{m['scale']:.3g}", f"±{m['expected_error_95']:.0f}")
    out.print(cells)
    national = Table(title="This organisation's noise in the national figures", title_justify="left")
    for name in ("national figure", "answered from", "95% error per figure"):
        national.add_column(name)
    for q in shown.national:
        national.add_row(q["query"], " x ".join(q["from"]), f"±{q['error_95']:.0f}")
    out.print(national)
