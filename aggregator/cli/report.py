"""`report` (coordinator: the HTML report) and `explain` (data steward: what a bundle carries, before sending it).

Logic lives in aggregator.report and aggregator.explain."""


from pathlib import Path
from typing import Optional

import typer

from . import DbOption, HomeOption, JsonOption, Lang, QuietOption, app, console, print_json, run


@app.command("report")
def report(
    db: Path = DbOption,
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write (self-contained, opens offline)."),
    lang: Lang = typer.Option(Lang.en, "--lang", help="Labels and text in English or Dutch."),
    period: Optional[int] = typer.Option(None, "--period", help="Reporting period (default: every period in the store)."),
    json_out: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Write the national report as one HTML file: tables with 95% intervals, charts, trend, privacy budget.

    Example:


    \b
        aggregator report --db national.duckdb --out report.html --lang nl --period 2025
    """
    from ..coordinator.report import render_report

    result = run(lambda: render_report(db, out, lang.value, period))
    if json_out:
        print_json(result)
    elif not quiet:
        periods = ", ".join(str(p) for p in result.periods) or "none"
        console().print(
            f"Wrote [bold]{result.out}[/] ({result.bytes:,} bytes): periods {periods}, {result.charts} charts, "
            f"{result.table_rows} table rows, {result.organisations} organisations."
        )
        for note in result.notes:
            console().print(f"[yellow]note:[/] {note}")


@app.command("explain")
def explain(
    bundle: Path = typer.Argument(..., help="A bundle file (.bundle.json) written by `aggregator submit`.", show_default=False),
    public_key: Optional[Path] = typer.Option(
        None, "--public-key", help="Public key to verify the signature with (default: org.pub in the organisation home)."
    ),
    home: Optional[Path] = HomeOption,
    json_out: bool = JsonOption,
) -> None:
    """Show exactly what a bundle would send: organisation, period, record fields and counts, noisy tables, epsilon, signature.

    Example:


    \b
        aggregator explain out/3f2a9c0d1e2b4a5c.bundle.json --public-key .aggregator/org.pub
    """
    from ..organisation.explain import explain_bundle

    result = run(lambda: explain_bundle(bundle, public_key=public_key, home=home))
    if json_out:
        print_json(result)
        return
    _render_explanation(result)


def _render_explanation(e) -> None:
    from rich.table import Table

    c = console()
    c.print(f"[bold]Bundle {e.file}[/] ({e.bytes:,} bytes, sha256 {e.digest})")
    c.print(f"Organisation [bold]{e.organisation['id']}[/] ({e.organisation['kind']}, {e.organisation['reporter_type']}), "
            f"period {e.period}, sequence {e.sequence}")
    c.print(f"Created {e.created_at}, expires {e.expires_at}; codelist version {e.codelist_version}")
    c.print(f"Payload carries only: {', '.join(e.payload_fields)}")
    c.print(f"Individual records: {e.records_total} "
            f"({', '.join(f'{k} {v}' for k, v in e.records_by_basis.items())}); each carries only: {', '.join(e.record_fields)}")
    c.print(f"Withdrawals of earlier records: {e.withdrawals}")
    if e.joint:
        c.print(f"Joint release: plan {e.joint['plan']}, epsilon {e.joint['epsilon']}; one encrypted share per "
                f"computing party ({', '.join(str(n) for n in e.joint['share_bytes'])} bytes), unreadable to the "
                "coordinator")
    if e.marginals:
        table = Table(title="Noisy tables (counts of people without a lawful basis)", title_justify="left")
        for name, justify in (("dimensions", "left"), ("cells", "right"), ("epsilon", "right"), ("noise scale", "right"),
                              ("expected 95% error (±)", "right")):
            table.add_column(name, justify=justify)
        for m in e.marginals:
            table.add_row(" x ".join(m["dimensions"]), str(m["cells"]), m["epsilon"], f"{m['scale']:.3g}",
                          f"{m['expected_error_95']:.1f}")
        c.print(table)
    else:
        c.print("No noisy tables.")
    c.print(f"Total epsilon: [bold]{e.epsilon or '0'}[/]" + (f" (mechanism {e.mechanism}, {e.library})" if e.library else ""))
    status = {True: "[green]verifies[/]", False: "[bold red]does NOT verify[/]", None: "[yellow]not checked (no public key)[/]"}
    c.print(f"Signature key id {e.key_id}: {status[e.signature_verified]}"
            + (f" with {e.public_key_source}" if e.public_key_source else ""))
    for w in e.warnings:
        c.print(f"[bold red]warning:[/] {w}")
