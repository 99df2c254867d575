"""Auditor side: `audit`. Logic lives in aggregator.audit."""


from pathlib import Path
from typing import List, Optional

import typer

from . import DbOption, JsonOption, app, console, print_json, run


@app.command("audit")
def audit(
    db: Path = DbOption,
    receipts: Optional[List[Path]] = typer.Option(
        None, "--receipts", help="Organisations' receipts (files, or folders such as a home's releases/) that must "
        "still be in today's ledger; repeat for more.",
    ),
    coordinator_key: Optional[Path] = typer.Option(
        None, "--coordinator-key", help="The coordinator's public key (coordinator.pub) the receipts must verify with.",
    ),
    json_out: bool = JsonOption,
) -> None:
    """Verify the coordinator store: signatures of every archived bundle against the registry, the ledger's hash
    chain, archive and database one to one, and a rebuild from the archive that must equal the live store and
    national table. Exits 1 when any check fails.

    With --receipts the organisations' receipts are checked too: each must be signed by the coordinator's key and
    its ledger entry and chain head must still be in today's chain, which finds a bundle dropped from the archive
    and the store rebuilt without it.

    Example:


    \b
        aggregator audit --db national.duckdb
        aggregator audit --db national.duckdb --json
        aggregator audit --db national.duckdb --receipts .aggregator/releases --coordinator-key coordinator.pub
    """
    from ..auditor.audit import audit_store

    key = None
    if receipts:
        from ..contract.keys import read_public_key_file
        from . import fail

        if coordinator_key is None:
            fail("--receipts needs --coordinator-key: the coordinator's public key (coordinator.pub)", 2)
        key = run(lambda: read_public_key_file(coordinator_key))
    elif coordinator_key is not None:
        from . import fail

        fail("--coordinator-key is only used with --receipts", 2)

    def check():
        return audit_store(db, receipts=receipts or None, coordinator_key=key)

    if json_out:
        report = run(check)
    else:
        with console(stderr=True).status("Verifying signatures and ledger, rebuilding the store from the archive..."):
            report = run(check)
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
