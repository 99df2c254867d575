"""Auditor side: `audit`. Logic lives in aggregator.audit."""

from __future__ import annotations

from pathlib import Path

import typer

from . import DbOption, JsonOption, app, console, print_json, run


@app.command("audit")
def audit(db: Path = DbOption, json_out: bool = JsonOption) -> None:
    """Verify the coordinator store: signatures of every archived bundle against the registry, the ledger's hash
    chain, archive and database one to one, and a rebuild from the archive that must equal the live store and
    national table. Exits 1 when any check fails.

    Example:


    \b
        aggregator audit --db national.duckdb
        aggregator audit --db national.duckdb --json
    """
    from ..auditor.audit import audit_store

    if json_out:
        report = run(lambda: audit_store(db))
    else:
        with console(stderr=True).status("Verifying signatures and ledger, rebuilding the store from the archive..."):
            report = run(lambda: audit_store(db))
    if json_out:
        print_json(report)
    else:
        from rich.table import Table

        table = Table(title=f"Audit of {db}", show_lines=False)
        table.add_column("check")
        table.add_column("verdict")
        table.add_column("detail", overflow="fold")
        for check in report.checks:
            verdict = "[green]PASS[/]" if check.ok else "[bold red]FAIL[/]"
            detail = check.summary if check.ok else "\n".join(check.problems) or check.summary
            if check.problem_count > len(check.problems):
                detail += f"\n... {check.problem_count - len(check.problems)} more"
            table.add_row(check.name, verdict, detail)
        out = console()
        out.print(table)
        out.print(
            f"{report.bundles} bundles, {report.archive_files} archive files, {report.ledger_entries} ledger entries: "
            + ("[green]all checks pass[/]" if report.ok else f"[bold red]{len(report.failed)} check(s) failed[/]")
        )
    if not report.ok:
        raise typer.Exit(1)
