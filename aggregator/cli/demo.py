"""Synthetic nation and the end-to-end demo: `synth` and `demo`."""


from pathlib import Path

import typer

from . import JsonOption, Lang, QuietOption, app, console, print_json, run


@app.command("synth")
def synth(
    year: int = typer.Option(2025, "--year", help="Reporting period (calendar year) of the synthetic nation."),
    seed: int = typer.Option(7, "--seed", help="Random seed: the same seed writes the same bytes."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (new, empty, or an earlier synthetic nation)."),
    scale: float = typer.Option(1.0, "--scale", help="Population multiplier (1.0 = about 7,000 people)."),
    json_out: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Write a synthetic nation: every organisation's export and mapping, the manifest and the true population.

    Built from public figures (docs/figures.md); all people and organisations are fictional.

    Example:


    \b
        aggregator synth --year 2025 --seed 7 --out out/nation
    """
    from ..synthetic.nation import make_nation

    nation = run(lambda: make_nation(year, seed, out, scale=scale))
    if json_out:
        print_json(nation)
        return
    if quiet:
        return
    from rich.table import Table

    from ..contract.codelists import label

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


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Folder to write (new, empty, or an earlier demo run)."),
    year: int = typer.Option(2025, "--year", help="Reporting period (calendar year) of the synthetic nation."),
    seed: int = typer.Option(7, "--seed", help="Random seed of the synthetic nation."),
    epsilon: str = typer.Option("1.0", "--epsilon", help="Privacy budget each organisation spends (exact, e.g. 1.0 or 1/2)."),
    scale: float = typer.Option(1.0, "--scale", help="Population multiplier (1.0 = about 7,000 people)."),
    workers: int = typer.Option(2, "--workers", min=1, max=32, help="Organisations submitting in parallel processes."),
    workload: str = typer.Option("monitor", "--workload", help="Release workload: monitor (default), published or equal (naive split)."),
    lang: Lang = typer.Option(Lang.en, "--lang", help="Language of labels in the table, CSV and report."),
    lists: str = typer.Option("four", "--lists", help="Lists whose overlaps the joint release opens for the dark "
                              "number: four, dutch-studies, or none."),
    strata: str = typer.Option("age,origin", "--strata", help="Strata of the dark number: age, origin, both or none."),
    json_out: bool = JsonOption,
    quiet: bool = QuietOption,
) -> None:
    """Run a synthetic nation end to end and compare consent-only registration and the hybrid release with the truth.

    Every organisation gets its own home and key, submits its export (statutory and consented records individually,
    everything else as noisy counts), the coordinator registers and merges all bundles, and the national table,
    CSV and HTML report are written into OUT. Re-running into the same OUT starts fresh.

    Example:


    \b
        aggregator demo --out out/demo --epsilon 1.0
    """
    from ..privacy.epsilon import parse_epsilon
    from ..synthetic.demo import run_demo

    eps = run(lambda: parse_epsilon(epsilon))
    options = {"lists": None if lists == "none" else lists,
               "strata": tuple(s.strip() for s in strata.split(",") if s.strip() and "none" not in (strata, lists))}
    if json_out or quiet:
        result = run(lambda: run_demo(out, year=year, seed=seed, epsilon=eps, scale=scale, lang=lang.value,
                                      workers=workers, workload=workload, **options))
        if json_out:
            print_json(result)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    stages = {"nation": "Synthetic nation", "submit": "Organisations submit", "merge": "Coordinator merges",
              "table": "National table and report"}
    err_console = console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stages.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = run(lambda: run_demo(out, year=year, seed=seed, epsilon=eps, scale=scale, lang=lang.value,
                                      workers=workers, workload=workload, progress=tick, **options))
    _render_demo(result, lang.value)


def _render_demo(result, lang: str) -> None:
    from rich import box
    from rich.table import Table

    nl = lang == "nl"
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 0, 0, 1),
        title=(f"Synthetische natie {result.year}: waarheid, alleen-toestemming, per organisatie en gezamenlijk (epsilon {result.epsilon})"
               if nl else f"Synthetic nation {result.year}: truth, consent-only, per-organisation and joint estimate (epsilon {result.epsilon})"),
        title_justify="left",
    )
    joint = any(row.joint for row in result.rows)
    heads = (["", "Waar-\nheid", "Toe-\nstem.", "Per\norg.", "95%-\ninterval", "Dekt"]
             if nl else ["", "Truth", "Con-\nsent", "Per\norg", "95%\ninterval", "Cov-\ners"])
    if joint:
        heads += ["Geza-\nmenlijk", "95%-\ninterval", "Dekt"] if nl else ["Joint", "95%\ninterval", "Cov-\ners"]
    table.add_column(heads[0], no_wrap=True)
    for head in heads[1:]:
        table.add_column(head, justify="right", no_wrap=True)
    for row in result.rows:
        bold = row.key == "total"
        yes, no = ("ja", "[red]nee[/]") if nl else ("yes", "[red]no[/]")
        short = row.label.replace(" exploitation", "").replace(" uitbuiting", "")
        cells = [
            short[:16], f"{row.truth}", f"{row.consent_only}", f"{row.estimate}",
            f"{row.lower:.0f}-{row.upper:.0f}", yes if row.covered else no,
        ]
        if joint and row.joint:
            j = row.joint
            cells += [f"{j['estimate']}", f"{j['lower']:.0f}-{j['upper']:.0f}", yes if j["covered"] else no]
        table.add_row(*(f"[bold]{c}[/]" if bold else c for c in cells))
    out_console = console()
    out_console.print(table)
    out_console.print(
        f"{result.organisations} organisations, {result.bundles_accepted} bundles merged "
        f"({result.bundles_refused} refused), {result.individual_records:,} individual records sent, "
        f"{result.linked_people:,} people linked across organisations; {result.seconds:.1f} s.\n"
        "The per-organisation estimate counts a person known to several organisations without consent at each of them "
        "(see SECURITY.md): its 95% interval covers that release count in "
        f"{sum(r.target_covered for r in result.rows)} of {len(result.rows)} rows."
        + (" The joint estimate counts distinct people across all organisations (three computing parties, noise drawn "
           f"inside the computation); it covers the truth in {sum(bool(r.joint and r.joint['covered']) for r in result.rows)}"
           f" of {len(result.rows)} rows. A person known somewhere only without a name or date of birth (as at the help "
           "line) cannot be matched there, so its interval spans from none to all of those people being known "
           "elsewhere too, and its estimate takes a quarter of them to be."
           if joint else "")
    )
    if result.dark_number:
        _render_dark_number(result, nl)
    for name, path in result.files.items():
        out_console.print(f"  {name}: {path}")
    for note in result.notes:
        out_console.print(f"[yellow]note:[/] {note}")


def _render_dark_number(result, nl: bool) -> None:
    """Registered (known to some organisation, deduplicated) against the estimated total per stratum, with the
    synthetic truth beside it: the people known and every victim, also those no organisation knows."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 1), title_justify="left",
                  title=("Donker getal per stratum: geregistreerd en geschat totaal" if nl
                         else "Dark number per stratum: registered and estimated total"))
    heads = (["", "Bekend", "Geregi-\nstreerd", "Waar\ntotaal", "Schat-\nting", "95%-\ninterval", "Dekt",
              "Zicht-\nbaar"]
             if nl else ["", "Known", "Regis-\ntered", "True\ntotal", "Esti-\nmate", "95%\ninterval", "Cov-\ners",
                         "Vis-\nible"])
    table.add_column(heads[0], no_wrap=True)
    for head in heads[1:]:
        table.add_column(head, justify="right", no_wrap=True)
    yes, no = ("ja", "[red]nee[/]") if nl else ("yes", "[red]no[/]")
    for row in result.dark_number:
        if row["estimate"] is None or row["lower"] is None:
            estimate, interval, covers, share = ("niet te schatten" if nl else "not estimable"), "-", "-", "-"
        else:
            estimate, interval = f"{row['estimate']}", f"{row['lower']:.0f}-{row['upper']:.0f}"
            covers = yes if row["covered"] else no
            share = f"{100 * row['share_visible']:.0f}%" if row["share_visible"] is not None else "-"
        table.add_row(row["stratum"][:16], f"{row['known']}", f"{row['registered']}", f"{row['true_total']}",
                      estimate, interval, covers, share)
    out = console()
    out.print(table)
    out.print("Known and True total are the synthetic truth (True total also counts victims no organisation knows); "
              "Registered and the estimate come from the joint release's noisy list overlaps (multiple-systems "
              "estimation; `aggregator estimate` shows the models and caveats). The estimate assumes a closed "
              "population within the year and allows for pairwise list dependence; people hard to see for every "
              "list make it too low.")
