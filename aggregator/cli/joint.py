"""Joint release: `party init` and `party address` (a computing party), `plan create` (the coordinator), `compute` (the three parties
here, or one party on its own machine), `compute export` and `compute store` (the coordinator), `estimate`."""


import json
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
    address: Optional[str] = typer.Option(None, "--address", help="host:port where the other parties reach this "
                                          "one, when each runs on its own machine."),
    json_out: bool = JsonOption,
) -> None:
    """Make a computing party's keys: X25519 (shares are encrypted to it), Ed25519 (it co-signs results) and TLS.

    The private keys never leave the folder; give `party.json` (public: both public keys, a TLS certificate
    request and the address) to the coordinator.

    Example:

    \b
        aggregator party init --name rapporteur --home parties/rapporteur --address 10.0.0.2:7101
    """
    from ..joint.party_home import init_party

    party = run(lambda: init_party(home, name, address))
    if json_out:
        print_json({"name": party.name, "home": str(party.home), "public_file": str(party.public_file),
                    "address": address})
    else:
        console().print(f"party [bold]{party.name}[/] ready; public file: {party.public_file}")


@party_app.command("address")
def party_address(
    home: Path = typer.Option(..., "--home", help="The party's home folder (made by `party init`)."),
    address: str = typer.Option(..., "--address", help="host:port where the other parties reach this one."),
    json_out: bool = JsonOption,
) -> None:
    """Set or change where the other parties reach this one, keeping its keys.

    A home made before parties had TLS material also gets its TLS key and certificate request. Give the updated
    `party.json` to the coordinator: the next plan carries the address; a plan already made keeps its own.

    Example:

    \b
        aggregator party address --home parties/rapporteur --address 10.0.0.3:7101
    """
    from ..joint.party_home import set_address

    party = run(lambda: set_address(home, address))
    if json_out:
        print_json({"name": party.name, "home": str(party.home), "public_file": str(party.public_file),
                    "address": json.loads(party.public_file.read_text(encoding="utf-8"))["address"]})
    else:
        console().print(f"party [bold]{party.name}[/] now at {address}; give {party.public_file} to the coordinator")


@plan_app.command("create")
def plan_create(
    period: int = typer.Option(..., "--period", help="Reporting period (calendar year)."),
    party: List[str] = typer.Option(..., "--party", help="A party's party.json, optionally with its address as "
                                    "FILE@HOST:PORT; exactly three, in order."),
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

    With every party's address (in its party.json, or FILE@HOST:PORT) the plan also carries the TLS certificates
    issued for the parties' keys, and each party can run on its own machine (`compute export`, `compute --no-local`).

    With --lists the computation also opens, per stratum, how many people each combination of lists knows, from
    which `aggregator estimate` estimates the people no organisation knows.
    """
    import datetime as dt

    from ..coordinator.joint import publish_plan
    from ..joint.plan import party_argument
    from ..privacy.epsilon import parse_epsilon
    from ..util.clock import utc_now

    plan = run(lambda: publish_plan(db, period, parse_epsilon(epsilon), [party_argument(p) for p in party],
                                    key=key, out=out, deadline=utc_now() + dt.timedelta(days=days), lists=lists,
                                    strata=tuple(s.strip() for s in (strata or "").split(",") if s.strip())))
    result = {"plan": plan.digest, "period": plan.period, "epsilon": plan.document["epsilon"],
              "deadline": plan.document["deadline"], "cells": len(plan.document["cells"]), "file": str(out),
              "addresses": [p.address for p in plan.parties] if plan.networked else None}
    if json_out:
        print_json(result)
    else:
        console().print(f"plan [bold]{plan.digest}[/] for {plan.period}: {result['cells']} cells, joint epsilon "
                        f"{result['epsilon']}, deadline {result['deadline']}; publish {out}")
        if plan.networked:
            console().print("parties on their own machines: " + ", ".join(
                f"{p.name} at {p.address}" for p in plan.parties))


compute_app = typer.Typer(invoke_without_command=True)
app.add_typer(compute_app, name="compute")


@compute_app.callback()
def compute(
    ctx: typer.Context,
    plan: Optional[Path] = typer.Option(None, "--plan", help="The signed plan file (local runs); for one party, "
                                        "the plan it expects: the job's plan must be this one."),
    party_home: List[Path] = typer.Option([], "--party-home", help="Local: the three parties' homes, in the plan's "
                                          "order. One party: its own home."),
    local: bool = typer.Option(True, "--local/--no-local", help="Run the three parties as processes on this machine, "
                               "or run only this machine's party (--no-local, with --job)."),
    job: Optional[Path] = typer.Option(None, "--job", help="One party: the job folder `compute export` made for it."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="One party: the signed result file to write "
                                       "(default result.json in the job folder)."),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds for the computation before every party is "
                                  "stopped (local: for everything)."),
    connect_timeout: float = typer.Option(300.0, "--connect-timeout", help="One party: seconds the other two have "
                                          "to connect."),
    listen: Optional[str] = typer.Option(None, "--listen", help="One party: listen on this host instead of the "
                                         "plan's (e.g. behind NAT); the port stays the plan's."),
    coordinator_key: Optional[Path] = typer.Option(None, "--coordinator-key", help="One party: the coordinator's "
                                                   "public key (coordinator.pub); the plan must verify with it."),
    db: Path = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Run the joint computation over the merged shares (or: compute export, compute store).

    Local (the default): the three parties run as processes on this machine and the co-signed, noisy counts are
    stored. One party (--no-local): run this machine's party from the job folder the coordinator exported for it
    (`compute export`), connecting to the other two over TLS, and write its signed result, which the coordinator
    stores with the other two (`compute store`).

    Example:

    \b
        aggregator compute --plan plan.json --party-home p0 --party-home p1 --party-home p2 --db national.duckdb
        aggregator compute --no-local --party-home rapporteur --job jobs/1-rapporteur
    """
    if ctx.invoked_subcommand is not None:
        return
    if local:
        if job is not None or out is not None or listen is not None or coordinator_key is not None:
            fail("--job, --out, --listen and --coordinator-key are for one party's run (--no-local)", 2)
        if plan is None:
            fail("--plan: a local run needs the signed plan file", 2)
        _compute_local(plan, list(party_home), timeout, db, json_out)
    else:
        if job is None or len(party_home) != 1:
            fail("--no-local runs one party: give its own home (one --party-home) and its job folder (--job)", 2)
        _compute_party(party_home[0], job, plan, out, timeout, connect_timeout, listen, coordinator_key, json_out)


def _compute_local(plan: Path, party_home: list[Path], timeout: float, db: Path, json_out: bool) -> None:
    from ..coordinator.joint import compute_local
    from ..joint.plan import read_plan_file

    digest = run(lambda: read_plan_file(plan)).digest
    result = run(lambda: compute_local(db, digest, party_home, timeout=timeout))
    _print_stored(result, json_out)


def _print_stored(result, json_out: bool) -> None:
    if json_out:
        print_json(result)
        return
    console().print(f"joint result stored for plan {result.plan[:12]}: {len(result.organisations)} organisations, "
                    f"{len(result.excluded)} excluded; {result.seconds:.1f} s")
    for org, why in sorted(result.excluded.items()):
        console().print(f"[yellow]excluded:[/] {org}: {why}")
    for refund in result.refunds:
        console().print(f"joint epsilon {refund['epsilon']} given back to {refund['org']} "
                        f"(bundle {refund['digest'][:12]}, {refund['reason']})")


def _compute_party(home: Path, job: Path, plan: Optional[Path], out: Optional[Path], timeout: float,
                   connect_timeout: float, listen: Optional[str], coordinator_key: Optional[Path],
                   json_out: bool) -> None:
    from ..contract.keys import read_public_key_file
    from ..joint.plan import read_plan_file
    from ..joint.remote import PLAN_FILE, run_party

    key = run(lambda: read_public_key_file(coordinator_key)) if coordinator_key is not None else None
    if plan is not None:
        expected = run(lambda: read_plan_file(plan, key)).digest
        given = run(lambda: read_plan_file(job / PLAN_FILE)).digest
        if given != expected:
            fail(f"the job folder is for plan {given[:12]}, not for the plan given with --plan ({expected[:12]})")
    result = run(lambda: run_party(home, job, out=out, timeout=timeout, connect_timeout=connect_timeout,
                                   listen=listen, coordinator_key=key))
    if json_out:
        print_json(result)
        return
    console().print(f"party {result.party} ({result.name}) done for plan {result.plan[:12]}: "
                    f"{len(result.organisations)} organisations, {len(result.excluded)} excluded; "
                    f"{result.seconds:.1f} s. Send {result.result_file} to the coordinator.")
    for org, why in sorted(result.excluded.items()):
        console().print(f"[yellow]excluded:[/] {org}: {why}")


@compute_app.command("export")
def compute_export(
    plan: Path = typer.Option(..., "--plan", help="The signed plan file (with the parties' addresses)."),
    out: Path = typer.Option(Path("jobs"), "--out", "-o", help="Folder for the three parties' job folders."),
    db: Path = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Write one job folder per computing party: the plan and only that party's encrypted shares.

    Give each party its own folder (e.g. jobs/1-rapporteur); it runs `aggregator compute --no-local` from it.

    Example:

    \b
        aggregator compute export --plan plan.json --out jobs --db national.duckdb
    """
    from ..coordinator.joint_jobs import export_jobs

    result = run(lambda: export_jobs(db, plan, out))
    if json_out:
        print_json(result)
        return
    console().print(f"plan {result.plan[:12]}: {len(result.organisations)} organisations' shares exported")
    for folder, address in zip(result.folders, result.addresses):
        console().print(f"  {out / folder}  (party at {address})")


@compute_app.command("store")
def compute_store(
    results: List[Path] = typer.Argument(..., help="The three parties' signed result files."),
    plan: Path = typer.Option(..., "--plan", help="The signed plan file."),
    db: Path = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Store the joint result from the three parties' signed result files (all three signatures must verify).

    Example:

    \b
        aggregator compute store r0.json r1.json r2.json --plan plan.json --db national.duckdb
    """
    from ..coordinator.joint_jobs import store_party_results

    _print_stored(run(lambda: store_party_results(db, plan, list(results))), json_out)


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
