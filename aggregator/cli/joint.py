"""Joint release: `party init` (a computing party), `plan create` (the coordinator), `compute` (the three parties)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import DbOption, JsonOption, app, console, fail, print_json, run

party_app = typer.Typer(help="A computing party of the joint release: its keys.", no_args_is_help=True)
plan_app = typer.Typer(help="Computation plans of the joint release (coordinator).", no_args_is_help=True)
app.add_typer(party_app, name="party")
app.add_typer(plan_app, name="plan")


@party_app.command("init")
def party_init(
    name: str = typer.Option(..., "--name", help="The party's name as the plan shows it, e.g. rapporteur."),
    home: Path = typer.Option(..., "--home", help="New folder for the party's private keys."),
    json_out: bool = JsonOption,
) -> None:
    """Make a computing party's keys: X25519 (shares are encrypted to it) and Ed25519 (it co-signs results).

    The private keys never leave the folder; give `party.json` (public) to the coordinator.

    Example:

    \b
        aggregator party init --name rapporteur --home parties/rapporteur
    """
    from ..joint.party_home import init_party

    party = run(lambda: init_party(home, name))
    if json_out:
        print_json({"name": party.name, "home": str(party.home), "public_file": str(party.public_file)})
    else:
        console().print(f"party [bold]{party.name}[/] ready; public file: {party.public_file}")


@plan_app.command("create")
def plan_create(
    period: int = typer.Option(..., "--period", help="Reporting period (calendar year)."),
    party: List[Path] = typer.Option(..., "--party", help="A party's party.json; give exactly three, in order."),
    epsilon: str = typer.Option("1.0", "--epsilon", help="Joint epsilon each organisation spends (exact)."),
    key: Path = typer.Option(..., "--key", help="The coordinator's Ed25519 signing key (PEM); made if missing."),
    days: int = typer.Option(30, "--days", help="Days until the deadline after which bundles no longer enter."),
    lists: Optional[str] = typer.Option(None, "--lists", help="Also open list overlaps for the dark number: "
                                        "dutch-studies (six lists) or four."),
    strata: Optional[str] = typer.Option(None, "--strata", help="Split the overlaps by age and/or origin, e.g. "
                                         "age,origin (needs --lists)."),
    out: Path = typer.Option(Path("plan.json"), "--out", "-o", help="The signed plan file to publish to organisations."),
    db: Path = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Publish a signed computation plan for a period and register it in the store.

    Example:

    \b
        aggregator plan create --period 2025 --party p0/party.json --party p1/party.json \\
            --party p2/party.json --key coordinator.key --out plan.json --db national.duckdb

    With --lists the computation also opens, per stratum, how many people each combination of lists knows, from
    which `aggregator estimate` estimates the people no organisation knows.
    """
    import datetime as dt

    from ..coordinator.joint import publish_plan
    from ..joint.plan import party_ref_from_file
    from ..privacy.epsilon import parse_epsilon
    from ..util.clock import utc_now

    plan = run(lambda: publish_plan(db, period, parse_epsilon(epsilon), [party_ref_from_file(p) for p in party],
                                    key=key, out=out, deadline=utc_now() + dt.timedelta(days=days), lists=lists,
                                    strata=tuple(s.strip() for s in (strata or "").split(",") if s.strip())))
    result = {"plan": plan.digest, "period": plan.period, "epsilon": plan.document["epsilon"],
              "deadline": plan.document["deadline"], "cells": len(plan.document["cells"]), "file": str(out)}
    if json_out:
        print_json(result)
    else:
        console().print(f"plan [bold]{plan.digest}[/] for {plan.period}: {result['cells']} cells, joint epsilon "
                        f"{result['epsilon']}, deadline {result['deadline']}; publish {out}")


@app.command("compute")
def compute(
    plan: Path = typer.Option(..., "--plan", help="The signed plan file."),
    party_home: List[Path] = typer.Option(..., "--party-home", help="The three parties' homes, in the plan's order."),
    local: bool = typer.Option(True, "--local/--no-local", help="Run the three parties as processes on this machine."),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds before every party is stopped."),
    db: Path = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Run the joint computation over the merged shares and store the co-signed, noisy counts.

    Example:

    \b
        aggregator compute --plan plan.json --party-home p0 --party-home p1 --party-home p2 --db national.duckdb
    """
    from ..coordinator.joint import compute_local
    from ..joint.plan import read_plan_file

    if not local:
        fail("only --local runs are supported by this version: the three parties run on this machine", 2)
    digest = run(lambda: read_plan_file(plan)).digest
    result = run(lambda: compute_local(db, digest, list(party_home), timeout=timeout))
    if json_out:
        print_json(result)
    else:
        console().print(f"joint result stored for plan {digest[:12]}: {len(result.organisations)} organisations, "
                        f"{len(result.excluded)} excluded; {result.seconds:.1f} s")
        for org, why in sorted(result.excluded.items()):
            console().print(f"[yellow]excluded:[/] {org}: {why}")
        for refund in result.refunds:
            console().print(f"joint epsilon {refund['epsilon']} given back to {refund['org']} "
                            f"(bundle {refund['digest'][:12]}, {refund['reason']})")


@app.command("estimate")
def estimate(
    period: int = typer.Option(..., "--period", help="Reporting period whose joint result opened list overlaps."),
    bootstrap: int = typer.Option(500, "--bootstrap", help="Bootstrap replicates for the 95% intervals."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the Poisson redraws (the privacy noise "
                                       "re-added in the bootstrap is never seeded)."),
    criterion: str = typer.Option("bic", "--criterion", help="Model choice: bic or aic."),
    db: Path = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Estimate, per stratum, how many victims no organisation registered (multiple-systems estimation).

    Example:

    \b
        aggregator estimate --period 2025 --db national.duckdb
    """
    from ..coordinator.darknumber import dark_number

    if criterion not in ("bic", "aic"):
        fail("--criterion: must be bic or aic", 2)
    if bootstrap < 0:
        fail("--bootstrap: must be 0 or more", 2)
    report = run(lambda: dark_number(db, period, n_bootstrap=bootstrap, seed=seed, criterion=criterion))
    if json_out:
        print_json(report.as_dict())
        return
    from rich.table import Table

    table = Table(title=f"Victims {report.period}: registered and estimated in all (lists: "
                        f"{', '.join(report.lists)})")
    for column in ("Stratum", "Registered (95%)", "Estimated total (95%)", "Share visible", "Model"):
        table.add_column(column, justify="left" if column in ("Stratum", "Model") else "right")
    for row in report.rows:
        registered = f"{row.registered:,} ({row.registered_lower:,.0f}-{row.registered_upper:,.0f})"
        if row.estimate is None:
            total, share = "not estimable", "-"
        elif row.lower is None:
            total, share = f"{row.estimate:,.0f} (no interval)", "-"
        else:
            total = f"{row.estimate:,.0f} ({row.lower:,.0f}-{row.upper:,.0f})"
            share = f"{100 * row.share_visible:.0f}%" if row.share_visible is not None else "-"
        table.add_row(row.stratum, registered, total, share, row.model or "-")
    out = console()
    out.print(table)
    for row in report.rows:
        for warning in row.warnings:
            out.print(f"[yellow]{row.stratum}:[/] {warning}")
    out.print("How to read: " + " ".join(report.caveats))
