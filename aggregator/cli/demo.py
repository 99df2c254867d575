"""Synthetic nation and the end-to-end demo: `synth` (and later `demo`)."""

from __future__ import annotations

from pathlib import Path

import typer

from . import JsonOption, QuietOption, app, console, print_json, run


@app.command("synth")
def synth(
    year: int = typer.Option(2025, "--year", help="Reporting period (calendar year) of the synthetic nation."),
    seed: int = typer.Option(7, "--seed", help="Random seed: the same seed writes the same bytes."),
    out: Path = typer.Option(..., "--out", help="Folder to write (new, empty, or an earlier synthetic nation)."),
    scale: float = typer.Option(1.0, "--scale", help="Population multiplier (1.0 = about 7,000 people)."),
    json_out: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Write a synthetic nation: every organisation's export and mapping, the manifest and the true population.

    Built from public figures (reference/figures.md); all people and organisations are fictional.

    Example:
        aggregator synth --year 2025 --seed 7 --out out/nation
    """
    from ..synth import make_nation

    nation = run(lambda: make_nation(year, seed, out, scale=scale))
    if json_out:
        print_json(nation)
        return
    if quiet:
        return
    from rich.table import Table

    from ..codelists import label

    table = Table(title=f"Synthetic nation {nation.year} (seed {nation.seed})", title_justify="left")
    table.add_column("Form of exploitation")
    table.add_column("True people", justify="right")
    table.add_column("Consent-only registration", justify="right")
    for form, counts in nation.by_form.items():
        table.add_row(label("form", form), f"{counts['truth']:,}", f"{counts['consent_only']:,}")
    table.add_row("[bold]Total[/]", f"[bold]{nation.truth_total:,}[/]", f"[bold]{nation.consent_only_total:,}[/]")
    out_console = console()
    out_console.print(table)
    kinds = {kind: sum(1 for o in nation.orgs if o.kind == kind) for kind in ("investigative", "non_investigative")}
    out_console.print(
        f"{len(nation.orgs)} organisations ({kinds['investigative']} investigative, "
        f"{kinds['non_investigative']} non-investigative), {nation.rows_total:,} export rows, "
        f"export date {nation.export_date}.\nWritten to {nation.out} (manifest: nation.json, truth: truth.parquet)."
    )
