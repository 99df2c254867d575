"""Coordinator side: `registry`, `merge`, `table`, `budget`. Logic lives in aggregator.store and aggregator.national."""


from pathlib import Path
from typing import List, Optional

import typer

from . import DbOption, JsonOption, Lang, QuietOption, app, console, fail, print_json, run

registry_app = typer.Typer(
    help="The coordinator's registry of organisations, their kind, budget cap and public keys.", no_args_is_help=True
)
app.add_typer(registry_app, name="registry")

OrgArg = typer.Argument(..., help="Organisation id, e.g. shelter-noord.", show_default=False)
PublicKeyOption = typer.Option(..., "--public-key", help="The organisation's org.pub file.", show_default=False)
PROGRESS_FROM = 5  # show a progress bar when merging at least this many bundles


def _render_org(entry, verb: str) -> None:
    keys = ", ".join(f"{k.keyid} ({k.status})" for k in entry.keys)
    console().print(
        f"{verb} [bold]{entry.id}[/] ({entry.kind}, {entry.reporter_type}, cap {entry.cap}, {entry.status}); keys: {keys}"
    )


@registry_app.command("add")
def registry_add(
    org: str = OrgArg,
    kind: str = typer.Option(..., "--kind", help="investigative (statutory basis) or non_investigative (consent)."),
    reporter_type: str = typer.Option(..., "--reporter-type", help="police, military_police, labour_inspectorate, care_coordination, shelter, help_line, municipality, other."),
    public_key: Path = PublicKeyOption,
    cap: str = typer.Option("1", "--cap", help="Privacy budget (epsilon) per period, exact: 1, 0.5 or 1/2."),
    db: Path = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Register an organisation with its public key and its epsilon cap per period.

    Example:


    \b
        aggregator registry add shelter-noord --kind non_investigative --reporter-type shelter \\
            --public-key shelter-noord.pub --cap 1 --db national.duckdb
    """
    from ..contract.keys import read_public_key_file
    from ..coordinator.registry import register_org

    entry = run(lambda: register_org(
        db, org, kind=kind, reporter_type=reporter_type, public_key=read_public_key_file(public_key), cap=cap
    ))
    if json_out:
        print_json(entry)
    else:
        _render_org(entry, "Registered")


@registry_app.command("rotate")
def registry_rotate(org: str = OrgArg, public_key: Path = PublicKeyOption, db: Path = DbOption, json_out: bool = JsonOption) -> None:
    """Give an organisation a new public key. Old keys stay (retired) so bundles signed with them remain verifiable.

    Example:


    \b
        aggregator registry rotate shelter-noord --public-key shelter-noord-2026.pub --db national.duckdb
    """
    from ..contract.keys import read_public_key_file
    from ..coordinator.registry import rotate_key

    entry = run(lambda: rotate_key(db, org, read_public_key_file(public_key)))
    if json_out:
        print_json(entry)
    else:
        _render_org(entry, "Rotated key of")


@registry_app.command("revoke")
def registry_revoke(org: str = OrgArg, db: Path = DbOption, json_out: bool = JsonOption) -> None:
    """Revoke an organisation and all its keys: none of its bundles merge any more (accepted ones stay).

    Example:


    \b
        aggregator registry revoke shelter-noord --db national.duckdb
    """
    from ..coordinator.registry import revoke_org

    entry = run(lambda: revoke_org(db, org))
    if json_out:
        print_json(entry)
    else:
        _render_org(entry, "Revoked")


@registry_app.command("list")
def registry_list(db: Path = DbOption, json_out: bool = JsonOption) -> None:
    """List registered organisations, their caps and keys.

    Example:


    \b
        aggregator registry list --db national.duckdb
    """
    from rich.table import Table

    from ..coordinator.registry import list_orgs

    entries = run(lambda: list_orgs(db))
    if json_out:
        print_json({"organisations": [e.as_dict() for e in entries]})
        return
    table = Table(title=f"Registry of {db.name}", title_justify="left")
    for name in ("organisation", "kind", "reporter type", "cap", "status", "keys"):
        table.add_column(name)
    for e in entries:
        keys = "\n".join(f"{k.keyid} {k.status} from {k.valid_from[:10]}" for k in e.keys)
        table.add_row(e.id, e.kind, e.reporter_type, e.cap, e.status, keys)
    console().print(table)


@app.command("merge")
def merge(
    # str, not Path: typer builds a pydantic adapter per Path argument (0.2 ms each, 1,000s of bundles)
    bundles: List[str] = typer.Argument(
        ..., help="Bundle files (.bundle.json) from organisations.", show_default=False, metavar="BUNDLE..."
    ),
    db: Path = DbOption,
    create: bool = typer.Option(False, "--create", help="Create the store if it does not exist (normally `registry add` does)."),
    receipts: Optional[Path] = typer.Option(
        None, "--receipts", help="Write a signed receipt per accepted bundle into this folder, to hand back to "
        "its organisation (a bundle merged again gets its receipt again).",
    ),
    key: Optional[Path] = typer.Option(
        None, "--key", help="The coordinator's Ed25519 signing key for receipts (default coordinator.key beside the "
        "store; made if missing, its public key as coordinator.pub).",
    ),
    json_out: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Verify bundles against the registry and merge them into the national store in one transaction.

    A refused bundle changes nothing and is named with its reason; the others still merge. Exit code 1 when
    any bundle was refused. With --receipts each accepted bundle gets a receipt signed by the coordinator (its
    ledger position and the chain head); organisations keep them (`org receipt add`) and auditors check them
    (`audit --receipts`).

    Example:


    \b
        aggregator merge inbox/*.bundle.json --db national.duckdb
        aggregator merge inbox/*.bundle.json --db national.duckdb --receipts receipts
    """
    from ..coordinator.merge import merge_bundles
    from ..coordinator.store import require_store

    if key is not None and receipts is None:
        fail("--key signs receipts: give --receipts DIR too", 2)
    if not create:
        run(lambda: require_store(db))
    if json_out or quiet or len(bundles) < PROGRESS_FROM:
        result = run(lambda: merge_bundles(db, bundles, receipts=receipts, key=key))
    else:
        from rich.progress import Progress

        with Progress(console=console(stderr=True), transient=True) as progress:
            tasks = {
                "verify": progress.add_task("verifying", total=len(bundles)),
                "ingest": progress.add_task("merging", total=None),
            }

            def advance(stage: str, done: int, total: int) -> None:
                progress.update(tasks[stage], completed=done, total=total)

            result = run(lambda: merge_bundles(db, bundles, progress=advance, receipts=receipts, key=key))
    if json_out:
        print_json(result)
    elif not quiet:
        _render_merge(result)
        if result.receipts is not None:
            console().print(f"{len(result.receipts)} receipt(s) written to {receipts}", highlight=False,
                            soft_wrap=True)
    err = console(stderr=True)
    if not json_out:
        for b in result.bundles:
            if b.status == "refused":
                style = "bold white on red" if b.reason == "equivocation" else "red"
                err.print(f"[{style}]refused[/] {b.file}: {b.reason}: {b.message}", highlight=False, soft_wrap=True)
    raise typer.Exit(0 if result.ok else 1)


def _render_merge(result) -> None:
    """One block per bundle: status and the short facts on the first line, then the bundle path and the note each
    on a line of their own, never cut (a long path runs on, so it can be copied whole at any terminal width)."""
    from rich.markup import escape

    out = console()
    out.print(f"Merge into {escape(Path(result.db).name)}")
    colour = {"accepted": "green", "duplicate": "yellow", "refused": "red"}
    for b in result.bundles:
        facts = [escape(b.org or "unknown organisation")]
        if b.period:
            facts.append(f"period {b.period}")
        if b.sequence:
            facts.append(f"sequence {b.sequence}")
        if b.epsilon:
            facts.append(f"epsilon {b.epsilon}")
        if b.status != "refused":
            facts.append(f"{b.records} records")
        notes = [b.reason] if b.status == "refused" and b.reason else []
        if b.status != "refused" and b.supersedes:
            notes.append(f"supersedes {len(b.supersedes)}")
        if b.flagged:
            notes.append(b.flagged)
        out.print(f"  [{colour[b.status]}]{b.status:<9}[/] " + ", ".join(facts), soft_wrap=True)
        out.print(f"            {escape(b.file)}", soft_wrap=True)
        if notes:
            out.print(f"            {escape('; '.join(notes))}", soft_wrap=True)
    summary = (
        f"accepted {result.accepted}, duplicate {result.duplicate}, superseded {result.superseded}, "
        f"refused {result.refused}"
    )
    if result.reasons:
        summary += " (" + ", ".join(f"{reason}: {n}" for reason, n in result.reasons.items()) + ")"
    out.print(summary)


@app.command("table")
def table(
    db: Path = DbOption,
    period: Optional[int] = typer.Option(None, "--period", help="Reporting period (default: every period in the store)."),
    by: str = typer.Option("form", "--by", help="Comma-separated breakdown: form, age_band, gender, nationality_group, province, kind, reporter_type."),
    fmt: str = typer.Option("table", "--format", help="table, csv, csv-nl (Dutch Excel: ';' and decimal commas) or md; for JSON use --json."),
    lang: Lang = typer.Option(Lang.en, "--lang", help="Labels in English or Dutch."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the csv, csv-nl, md or --json output to this file instead of stdout."),
    json_out: bool = JsonOption,
) -> None:
    """The national table: deduplicated individual records plus noisy counts, estimate, standard error and 95% interval.

    Example:


    \b
        aggregator table --db national.duckdb --period 2025 --by form,age_band --format csv --lang nl
    """
    import sys

    from ..coordinator.national import national_table
    from ..coordinator.render import to_csv, to_markdown

    if fmt == "json":
        fail("--format json: use --json for JSON output", 2)
    if fmt not in ("table", "csv", "csv-nl", "md"):
        fail("--format must be one of: table, csv, csv-nl, md (and --json for JSON)", 2)
    if json_out:
        fmt = "json"
    result = run(lambda: national_table(db, period, by))
    if result.empty and period is not None:  # zeros with 0-0 intervals would read as "nobody": say there is nothing
        fail(f"nothing to show: no bundles for period {period}", 1)
    err = console(stderr=True)
    for note in result.notes:
        if fmt == "table" and note in result.footnotes:
            continue  # printed under the table, beside the cells it explains
        err.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if fmt == "table":
        _render_table(result, lang.value)
        for footnote in result.footnotes:
            console().print(footnote, highlight=False, soft_wrap=True, markup=False)
        return
    if fmt == "json":
        import json

        data = (json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")
    elif fmt == "csv":
        data = to_csv(result, lang.value)
    elif fmt == "csv-nl":
        data = to_csv(result, lang.value, dialect="excel-nl")
    else:
        data = to_markdown(result, lang.value).encode("utf-8")
    if out is not None:
        from ..util.files import write_output

        run(lambda: write_output(out, data))
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def _render_table(result, lang: str) -> None:
    """The terminal view: short headers and one interval column, so it fits 80 columns without cutting a value
    (CSV, Markdown and --json carry every column, the standard error included). When the joint release covers the
    cells (a planned breakdown), its figures come first: joint estimate, interval, of whom known individually, then
    the per-organisation noisy sum and estimate; otherwise the joint total stands at the end of the total row."""
    from rich import box
    from rich.table import Table

    from ..contract.codelists import label

    nl = lang == "nl"
    joint = any(r.joint for r in result.rows)
    cells_joint = any(r.joint for r in result.rows if not r.total)
    table = Table(title="Nationale tabel" if nl else "National table", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, padding=(0, 0, 0, 1))
    table.add_column("Jaar" if nl else "Year", justify="right", no_wrap=True)
    for name in result.by:
        table.add_column(label_header(name, lang), overflow="fold")
    if cells_joint:
        heads = (["Geza-\nmenlijk", "95%-\ninterval", "Van wie\nbekend", "Ruis", "Per\norg.", "95%-\ninterval"] if nl
                 else ["Joint", "95%\ninterval", "Of whom\nknown", "Noisy", "Per\norg", "95%\ninterval"])
    else:
        heads = (["Regis-\ntraties", "Ruis", "Schat-\nting", "95%-\ninterval"] if nl
                 else ["Records", "Noisy", "Esti-\nmate", "95%\ninterval"])
        if joint:
            heads += ["Geza-\nmenlijk", "95%-\ninterval"] if nl else ["Joint", "95%\ninterval"]
    for head in heads:
        table.add_column(head, justify="right", no_wrap=True)
    for row in result.rows:
        if row.total:
            dims = ["Totaal" if nl else "Total"] + [""] * (len(result.by) - 1) if result.by else []
        else:
            dims = [_short_label(label(n, row.dims[n], lang)) for n in result.by]
        mark = "*" if row.incomplete else ""  # explained by the footnote under the table
        own = [f"{row.estimate}{mark}", f"{row.lower:.0f}-{row.upper:.0f}{mark}"]
        j = [str(row.joint["estimate"]), f"{row.joint['lower']:.0f}-{row.joint['upper']:.0f}"] if row.joint \
            else ["", ""]
        if cells_joint:
            cells = [str(row.period), *dims, *j, str(row.individual), str(row.noisy), *own]
        else:
            cells = [str(row.period), *dims, str(row.individual), str(row.noisy), *own, *(j if joint else [])]
        table.add_row(*cells, style="bold" if row.total else None, end_section=row.total)
    console().print(table)
    if joint:
        console().print(_joint_legend(result, cells_joint, nl), highlight=False, markup=False)


def _joint_legend(result, cells_joint: bool, nl: bool) -> str:
    """What the joint columns mean, under the table (wrapped to the terminal)."""
    if nl:
        head = ("Gezamenlijk: unieke personen uit de gezamenlijke vrijgave (gecorrigeerd voor botsingen; de cellen "
                "tellen op tot het totaal), met 95%-interval; van wie bekend: personen met een wettelijke grondslag of "
                "toestemming, één keer geteld." if cells_joint else
                "Gezamenlijk: unieke personen uit de gezamenlijke vrijgave, met 95%-interval; die geeft deze "
                "uitsplitsing niet, alleen het totaal (van wie individueel bekend: de registraties van het totaal).")
        return (f"{head} De schatting per organisatie telt de eigen ruisgetallen van elke organisatie op, zodat iemand "
                "die bij meerdere bekend is vaker telt. Standaardfouten: --format csv of --json; de gezamenlijke "
                "cijfers vóór de consistentiestap: --json.")
    head = ("Joint: distinct people from the joint release (collision-corrected; its cells add up to its total), with "
            "its 95% interval; of whom known: people with a lawful basis (statutory or consent), counted once." if
            cells_joint else
            "Joint: distinct people from the joint release, with its 95% interval; it does not break down by "
            f"{' x '.join(result.by)}, only the total (of whom known individually: the total's records).")
    return (f"{head} The per-organisation estimate adds each organisation's own noisy counts, so a person known to "
            "several of them counts more than once. Standard errors: --format csv or --json; the joint figures before "
            "the consistency step: --json.")


SHORT_HEADERS = {
    "form": ("Form", "Vorm"), "age_band": ("Age", "Leeftijd"), "gender": ("Gender", "Geslacht"),
    "nationality_group": ("Nationality", "Nationaliteit"), "province": ("Province", "Provincie"),
    "kind": ("Kind", "Soort"), "reporter_type": ("Reporter", "Melder"),
}


def label_header(name: str, lang: str) -> str:
    en, nl = SHORT_HEADERS[name]
    return nl if lang == "nl" else en


def _short_label(text: str) -> str:
    """Labels without the words every row repeats ("Sexual exploitation" -> "Sexual")."""
    for word in (" exploitation", " uitbuiting"):
        text = text.replace(word, "")
    return text[:1].upper() + text[1:]


@app.command("budget")
def budget(
    db: Path = DbOption,
    org: Optional[str] = typer.Option(None, "--org", help="Only this organisation."),
    period: Optional[int] = typer.Option(None, "--period", help="Only this period (lists every organisation)."),
    verify: bool = typer.Option(False, "--verify", help="Recompute the ledger's hash chain; exit 1 on a mismatch."),
    export_ledger: Optional[Path] = typer.Option(None, "--export-ledger", help="Write the ledger as JSON lines to this file."),
    json_out: bool = JsonOption,
) -> None:
    """Privacy budget per organisation and period for auditors: epsilon spent (exact), cap, remaining, every release.

    Example:


    \b
        aggregator budget --db national.duckdb --period 2025 --verify --export-ledger ledger.jsonl
    """
    from ..coordinator.budget import budget_report
    from ..coordinator.ledger import export_ledger as do_export, verify_ledger

    report = run(lambda: budget_report(db, org=org, period=period))
    check = run(lambda: verify_ledger(db)) if verify else None
    exported = run(lambda: do_export(db, export_ledger)) if export_ledger is not None else None
    if json_out:
        data = report.as_dict()
        if check is not None:
            data["verify"] = check.as_dict()
        if exported is not None:
            data["exported"] = {"path": str(export_ledger), "entries": exported}
        print_json(data)
    else:
        _render_budget(report)
        out = console()
        if exported is not None:
            out.print(f"Exported {exported} ledger entries to {export_ledger}")
        if check is not None:
            if check.ok:
                out.print(f"[green]ledger verified[/]: {check.entries} entries, head {check.head[:16]}")
            else:
                err = console(stderr=True)
                err.print(f"[bold red]ledger verification failed[/]: {len(check.problems)} problem(s)")
                for problem in check.problems:
                    err.print(f"  {problem}", highlight=False, soft_wrap=True)
    if check is not None and not check.ok:
        raise typer.Exit(1)


def _render_budget(report) -> None:
    from fractions import Fraction

    from rich.table import Table

    out = console()
    table = Table(title="Privacy budget (epsilon) per organisation and period", title_justify="left")
    for name in ("organisation", "period", "spent", "cap", "remaining", "releases"):
        table.add_column(
            name, justify="left" if name in ("organisation", "releases") else "right", no_wrap=name != "releases"
        )
    for b in report.budgets:
        releases = "\n".join(
            f"seq {r.sequence}: {r.epsilon} ({', '.join(' x '.join(m['dimensions']) + ' ' + m['epsilon'] for m in r.marginals) or 'records only'})"
            f" {r.accepted_at[:19]} {r.digest[:12]}" + (" superseded" if r.superseded_by else "")
            + (f" (joint {r.refunded} given back: {r.refund_reason})" if Fraction(r.refunded) else "")
            for r in b.releases
        )
        table.add_row(
            b.org, str(b.period), f"{b.spent} = {b.spent_decimal}", f"{b.cap} = {b.cap_decimal}",
            f"{b.remaining} = {b.remaining_decimal}", releases or "-",
        )
    out.print(table)
