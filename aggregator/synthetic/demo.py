"""`aggregator demo`: a synthetic nation run end to end, from every organisation's export to the national table.

`run_demo(out)` writes into `out`
  nation/            the synthetic nation (exports, mappings, truth, manifest; see nation.py)
  linkage.key        one demo linkage key shared by all organisations (fixed for the run, never in a bundle)
  orgs-home/<id>/    each organisation's home: its own signing key, local ledger and kept bundles
  bundles/           the signed bundle files that "leave" the organisations
  national.duckdb    the coordinator's store: registry, merged bundles, ledger (plus its archive folder)
  national.csv       the national table by form of exploitation (Excel-safe CSV)
  report.html        the HTML report, when the report module is available
  .aggregator-demo   marker: a later run may clear exactly the entries above and start fresh

and compares, per form of exploitation, for minors (under_15 + 15_17) and in total:
  truth         distinct people known to any organisation (the synthetic nation's truth)
  consent_only  distinct people with a statutory basis or valid consent: what consent-only registration shows
  hybrid        the national estimate (individual records + noisy counts) with its 95% interval
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from ..contract.codelists import MINOR_BANDS
from ..errors import UsageError
from ..util.files import clear_marked_folder

MARKER = ".aggregator-demo"
NATION_DIR = "nation"
HOMES_DIR = "orgs-home"
BUNDLES_DIR = "bundles"
LINKAGE_FILE = "linkage.key"
DB_FILE = "national.duckdb"
CSV_FILE = "national.csv"
REPORT_FILE = "report.html"
PARTIES_DIR = "parties"
PLAN_FILE = "plan.json"
COORDINATOR_KEY = "coordinator.key"
PARTY_NAMES = ("coordinator-party", "rapporteur", "trusted-third-party")
# Everything a demo run may create directly in OUT; only these are removed on a re-run.
DEMO_ENTRIES = (
    NATION_DIR, HOMES_DIR, BUNDLES_DIR, LINKAGE_FILE, DB_FILE, f"{DB_FILE}.wal", "national.archive",
    "national.evidence", CSV_FILE, REPORT_FILE, PARTIES_DIR, PLAN_FILE, COORDINATOR_KEY, MARKER,
)
ROW_LABELS = {
    "minors": {"en": "Minors (under 18)", "nl": "Minderjarigen (onder 18)"},
    "total": {"en": "Total", "nl": "Totaal"},
}

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class DemoRow:
    key: str  # a form code, "minors" or "total"
    label: str
    truth: int
    consent_only: int
    estimate: int
    se: float
    lower: float
    upper: float
    covered: bool  # lower <= truth <= upper
    release_target: int  # what the release counts: lawful people once + each organisation's other people
    target_covered: bool  # lower <= release_target <= upper
    joint: dict[str, Any] | None = None  # the joint release: estimate, lower, upper, covered (of the truth)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DemoResult:
    out: str
    year: int
    seed: int
    scale: float
    epsilon: str
    workload: str
    lang: str
    organisations: int
    bundles_accepted: int
    bundles_refused: int
    individual_records: int  # lawful records sent, before cross-organisation dedupe
    linked_people: int
    rows: list[DemoRow]
    files: dict[str, str]
    seconds: float
    notes: list[str] = field(default_factory=list)
    # per stratum of a plan with lists: registered, estimated total with its interval, and the synthetic truth
    # (`known`: known to some organisation; `true_total`: also the victims no organisation knows)
    dark_number: list[dict[str, Any]] = field(default_factory=list)

    def row(self, key: str) -> DemoRow:
        return next(r for r in self.rows if r.key == key)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [r.as_dict() for r in self.rows]
        return data


def _prepare(out: Path) -> None:
    """Start fresh: refuse a folder the demo did not make; clear only what an earlier demo run created."""
    clear_marked_folder(out, MARKER, DEMO_ENTRIES, "earlier demo run")
    (out / MARKER).write_text(
        json.dumps({"created_by": "aggregator demo", "entries": list(DEMO_ENTRIES)}, indent=2) + "\n", encoding="utf-8"
    )


def _jobs(out: Path, orgs: list[dict], epsilon: Fraction, year: int, export_date: dt.date, key: bytes, workload: str,
          plan: Path | None) -> list[tuple]:
    """One submission job per organisation (see _submit_one)."""
    return [(org, out / NATION_DIR, out / HOMES_DIR / org["id"], out / BUNDLES_DIR, epsilon, year, export_date, key,
             workload, plan) for org in orgs]


def _submit_one(args: tuple) -> tuple[str, int]:
    """Submit one organisation's export from its home; returns (id, lawful records sent)."""
    from ..organisation.release import submit

    org, nation_dir, home, bundles, epsilon, year, export_date, key, workload, plan_file = args
    plan = None
    if plan_file is not None:
        from ..joint.plan import read_plan_file

        plan = read_plan_file(plan_file)
    result = submit(
        nation_dir / org["export"], nation_dir / org["mapping"], period=year, epsilon=epsilon, out=bundles,
        home=home, linkage_key=key, export_date=export_date, workload=workload, plan=plan,
    )
    return org["id"], sum(result.records_by_basis.values())


def run_demo(
    out: Path,
    *,
    year: int = 2025,
    seed: int = 7,
    epsilon: Fraction = Fraction(1),
    scale: float = 1.0,
    lang: str = "en",
    workers: int = 1,
    workload: str = "monitor",
    joint: bool = True,
    lists: str | None = None,
    strata: tuple[str, ...] = (),
    progress: Progress | None = None,
) -> DemoResult:
    """Synthetic nation -> every organisation submits -> coordinator registers and merges -> comparison with the truth.

    `progress(stage, done, total)` is called per organisation for the stages "submit" and "merge" (and once for
    "nation", "table"). `workers` > 1 submits organisations in parallel processes (each has its own home).
    `workload` names the release's marginals and epsilon split (release.workload_named: "monitor", "published" or "equal").
    With `joint`, three computing parties run here as local processes: every organisation also puts encrypted
    bucket shares in its bundle for one plan at the same epsilon (so each organisation's cap is twice `epsilon`: one
    for its own noisy marginals, one for the joint release, to show both side by side), and the coordinator runs
    the joint computation after the merge (stage "joint").
    """
    from ..util.files import atomic_write
    from ..contract.codelists import label
    from ..coordinator.national import national_table
    from ..coordinator.render import to_csv
    from ..organisation.home import init_org
    from ..contract.keys import read_public_key_file
    from ..coordinator.merge import merge_bundles
    from ..coordinator.registry import register_org
    from .nation import MANIFEST_FILE, consent_only_counts, make_nation, truth_counts

    if lang not in ("en", "nl"):
        raise UsageError("language must be en or nl", "lang")
    if not isinstance(epsilon, Fraction) or epsilon <= 0:
        raise UsageError("epsilon must be an exact number greater than zero")
    from ..privacy.workload import workload_named

    workload_named(workload)
    started = time.perf_counter()
    out = Path(out)
    _prepare(out)
    tick = progress or (lambda stage, done, total: None)

    nation_dir = out / NATION_DIR
    nation = make_nation(year, seed, nation_dir, scale=scale)
    manifest = json.loads((nation_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    export_date = dt.date.fromisoformat(manifest["export_date"])
    tick("nation", 1, 1)

    key = secrets.token_hex(32).encode("ascii")
    atomic_write(out / LINKAGE_FILE, key + b"\n", mode=0o600)
    bundles = out / BUNDLES_DIR
    bundles.mkdir()
    # an organisation that met nobody this year (possible at a small --scale) has nothing to submit
    orgs = [org for org in manifest["orgs"] if org["rows"] > 0]
    idle = len(manifest["orgs"]) - len(orgs)
    db = out / DB_FILE
    cap = 2 * epsilon if joint else epsilon
    plan = _joint_plan(out, db, year, epsilon, scale, lists, strata) if joint else None
    jobs = _jobs(out, orgs, epsilon, year, export_date, key, workload, plan)
    for org in orgs:
        init_org(org["id"], org["kind"], reporter_type=org["reporter_type"], cap=str(cap),
                 home=out / HOMES_DIR / org["id"])

    def register_all() -> None:
        for org in orgs:
            register_org(
                db, org["id"], kind=org["kind"], reporter_type=org["reporter_type"],
                public_key=read_public_key_file(out / HOMES_DIR / org["id"] / "org.pub"), cap=str(cap),
            )

    records = 0
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: DuckDB and OpenDP keep threads that a fork would copy mid-state
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_submit_one, job) for job in jobs]
            register_all()  # the coordinator's side, while the organisations work
            for done, future in enumerate(as_completed(futures), start=1):
                records += future.result()[1]
                tick("submit", done, len(jobs))
    else:
        for done, job in enumerate(jobs, start=1):
            records += _submit_one(job)[1]
            tick("submit", done, len(jobs))
        register_all()
    merged = merge_bundles(db, sorted(bundles.glob("*")), progress=lambda stage, d, t: tick("merge", d, t) if stage == "ingest" else None)
    notes: list[str] = [f"{idle} organisation(s) met nobody this year and submitted nothing"] if idle else []
    if merged.refused:
        notes.append(f"{merged.refused} bundle(s) refused by the coordinator: {merged.reasons}")
    joint_tables: dict[tuple[str, ...], Any] = {}
    if plan is not None:
        from ..coordinator.joint import compute_local
        from ..coordinator.national_joint import joint_release
        from ..joint.plan import read_plan_file

        digest = read_plan_file(plan).digest
        run = compute_local(db, digest, [out / PARTIES_DIR / name for name in PARTY_NAMES])
        if run.excluded:
            notes.append(f"{len(run.excluded)} organisation(s) excluded from the joint computation")
        joint_tables = joint_release(db, year)  # consistent: the forms and the age bands add up to its total
        tick("joint", 1, 1)
    dark, dark_report = _dark_number(db, year, seed, nation_dir, strata) if plan is not None and lists else ([], None)

    by_form = national_table(db, period=year, by=("form",))
    by_age = national_table(db, period=year, by=("age_band",))
    notes.extend(by_form.notes)
    truth_form = truth_counts(nation_dir, ["form"])
    consent_form = consent_only_counts(nation_dir, ["form"])
    truth_age = truth_counts(nation_dir, ["age_band"])
    consent_age = consent_only_counts(nation_dir, ["age_band"])
    targets = release_targets(nation_dir)
    joint_targets = _joint_targets(jobs, workers) if plan is not None else {}

    rows: list[DemoRow] = []
    for cell in by_form.cells(year):
        form = cell.dims["form"]
        rows.append(_demo_row(form, label("form", form, lang), truth_form[(form,)], consent_form[(form,)],
                              [cell], by_form.z, targets[form],
                              _joint(joint_tables, ("form",), [(form,)], truth_form[(form,)], joint_targets.get(form))))
    minors = [c for c in by_age.cells(year) if c.dims["age_band"] in MINOR_BANDS]
    rows.append(_demo_row(
        "minors", ROW_LABELS["minors"][lang], sum(truth_age[(b,)] for b in MINOR_BANDS),
        sum(consent_age[(b,)] for b in MINOR_BANDS), minors, by_age.z, targets["minors"],
        _joint(joint_tables, ("age_band",), [(b,) for b in MINOR_BANDS], sum(truth_age[(b,)] for b in MINOR_BANDS),
               joint_targets.get("minors")),
    ))
    rows.append(_demo_row("total", ROW_LABELS["total"][lang], nation.truth_total, nation.consent_only_total,
                          [by_form.total(year)], by_form.z, targets["total"],
                          _joint(joint_tables, (), [()], nation.truth_total, joint_targets.get("total"))))

    files = {"nation": str(nation_dir), "linkage_key": str(out / LINKAGE_FILE), "homes": str(out / HOMES_DIR),
             "bundles": str(bundles), "database": str(db)}
    atomic_write(out / CSV_FILE, to_csv(by_form, lang))
    files["table_csv"] = str(out / CSV_FILE)
    try:
        from ..coordinator.report import render_report
    except ImportError:
        notes.append("HTML report not written: the report module is not available")
    else:
        render_report(db, out / REPORT_FILE, lang=lang, period=year,
                      dark_numbers={year: dark_report} if dark_report else None)
        files["report_html"] = str(out / REPORT_FILE)
    tick("table", 1, 1)

    return DemoResult(
        out=str(out), year=year, seed=seed, scale=float(scale), epsilon=str(epsilon), workload=workload, lang=lang,
        organisations=len(orgs), bundles_accepted=merged.accepted, bundles_refused=merged.refused,
        individual_records=records, linked_people=by_form.linked_people, rows=rows, files=files,
        seconds=round(time.perf_counter() - started, 2), notes=notes, dark_number=dark,
    )


def _dark_number(db: Path, year: int, seed: int, nation_dir: Path, strata: tuple[str, ...]) -> tuple[list, Any]:
    """The coordinator's dark-number estimate per stratum beside the synthetic truth of that stratum (rows for the
    demo's result), and the estimate itself, which the report then shows as is."""
    from ..coordinator.darknumber import REPORT_BOOTSTRAP, dark_number, stratum_label
    from ..joint.plan import STRATIFIERS, stratum_names, stratum_of
    from .nation import true_counts, truth_counts

    dims = [STRATIFIERS[s][0] for s in strata]
    known, everyone = truth_counts(nation_dir, dims), true_counts(nation_dir, dims)
    truth: dict[str, list[int]] = {stratum_label(name): [0, 0] for name, _ in stratum_names(tuple(strata))}
    for cell in known:
        label = stratum_label(stratum_of(tuple(strata), dict(zip(dims, cell))))
        truth[label][0] += known[cell]
        truth[label][1] += everyone[cell]
    out = []
    report = dark_number(db, year, n_bootstrap=REPORT_BOOTSTRAP, seed=seed)
    for row in report.rows:
        seen, total = truth[row.stratum]
        lower, upper = (None, None) if row.lower is None else (round(row.lower), round(row.upper))  # whole people
        covered = lower is not None and lower <= total <= upper
        out.append({"stratum": row.stratum, "registered": row.registered, "registered_lower": row.registered_lower,
                    "registered_upper": row.registered_upper, "known": seen,
                    "estimate": None if row.estimate is None else round(row.estimate),
                    "lower": lower, "upper": upper,
                    "true_total": total, "covered": covered, "share_visible": row.share_visible,
                    "model": row.model, "warnings": row.warnings})
    return out, report


def _demo_row(key: str, text: str, truth: int, consent: int, cells: list, z: float, target: int,
              joint: dict[str, Any] | None = None) -> DemoRow:
    from ..coordinator.national import sum_rows

    estimate, se, lower, upper = sum_rows(cells, z)
    return DemoRow(key, text, int(truth), int(consent), int(estimate), round(se, 2), round(lower, 1), round(upper, 1),
                   lower <= truth <= upper, int(target), lower <= target <= upper, joint)


def _people_of(job: tuple) -> list[tuple[str, str, str, bool]]:
    """(identity digest, form, age band, linkable) of every person of one organisation's period, as its joint
    contribution buckets them (one identity per pseudonym; linkable: known under a name and date of birth, not a
    local pseudonym). Only the demo's evaluation uses this, inside this process: it is the synthetic truth side,
    never a bundle."""
    from ..organisation.home import load_org
    from ..organisation.release import build_people
    from ..organisation.validate import validate_export

    org, nation_dir, home, _, _, year, export_date, key, _, _ = job
    _, con = validate_export(nation_dir / org["export"], nation_dir / org["mapping"], export_date=export_date)
    try:
        build_people(con, load_org(home), year, export_date, key, everyone=True)
        # a digest of the identity (one per pseudonym) is enough to count distinct people; names stay in DuckDB
        return con.execute("SELECT sha256(identity), form, age_band, linkable FROM people").fetchall()
    finally:
        con.close()


def _joint_targets(jobs: list[tuple], workers: int) -> dict[str, int]:
    """What the joint release counts without noise: distinct pseudonyms per form, of minors and in total. Linkage
    errors make it exceed the distinct truth (the help line exports no names; some records lack a date of birth)."""
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            people = [row for rows in pool.map(_people_of, jobs) for row in rows]
    else:
        people = [row for job in jobs for row in _people_of(job)]
    from ..contract.codelists import codes

    targets = {form: len({p for p, f, _, _ in people if f == form}) for form in codes("form")}
    targets["minors"] = sum(len({p for p, _, a, _ in people if a == band}) for band in MINOR_BANDS)
    targets["total"] = len({p for p, _, _, _ in people})
    return targets


def joint_people(out: Path, year: int) -> list[tuple[str, str, str, bool]]:
    """Every organisation's people of the demo run in `out` as its joint contribution sees them: (identity digest,
    form, age band, linkable), see _people_of. For evaluations (benchmarks/utility.py), never a bundle."""
    from .nation import MANIFEST_FILE

    manifest = json.loads((out / NATION_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    key = (out / LINKAGE_FILE).read_bytes().strip()
    jobs = _jobs(out, [org for org in manifest["orgs"] if org["rows"] > 0], Fraction(1), year,
                 dt.date.fromisoformat(manifest["export_date"]), key, "monitor", None)
    return [row for job in jobs for row in _people_of(job)]


def _joint(tables: dict[tuple[str, ...], Any], dims: tuple[str, ...], keys: list[tuple[str, ...]], truth: int,
           target: int | None) -> dict[str, Any] | None:
    """The joint estimate of a cell or a sum of cells of one consistent joint table (national_joint.figures: the
    figure the national table shows, its bounded interval; a sum's variance from the fitted covariance)."""
    from ..coordinator.national_joint import figures

    if not tables or dims not in tables:
        return None
    shown = figures(tables[dims], keys)
    lower, upper = shown["lower"], shown["upper"]
    return {"estimate": int(shown["estimate"]), "lower": round(lower, 1), "upper": round(upper, 1),
            "covered": lower <= truth <= upper, "target": int(target or 0),
            "target_covered": lower <= (target or 0) <= upper}


def _joint_plan(out: Path, db: Path, year: int, epsilon: Fraction, scale: float, lists: str | None = None,
                strata: tuple[str, ...] = ()) -> Path:
    """Three party homes, the coordinator's signed plan for the year (sized from the public prior at the demo's
    scale, never from the synthetic data), registered in the store; returns the plan file."""
    from ..coordinator.joint import publish_plan
    from ..joint.party_home import init_party
    from ..joint.plan import PRIOR_TOTAL, party_ref_from_file
    from ..util.clock import utc_now

    parties = [party_ref_from_file(init_party(out / PARTIES_DIR / name, name).public_file) for name in PARTY_NAMES]
    publish_plan(db, year, epsilon, parties, key=out / COORDINATOR_KEY, out=out / PLAN_FILE,
                 deadline=utc_now() + dt.timedelta(days=30), prior_total=max(100, round(PRIOR_TOTAL * scale)),
                 lists=lists, strata=strata)
    return out / PLAN_FILE


# What the hybrid release estimates without noise, from the truth: a person with a lawful basis somewhere is one
# deduplicated individual record, and every organisation that knows a person WITHOUT a lawful basis there adds one
# to its (noisy) counts. A person known to several organisations is therefore counted more than once (docs/figures.md,
# people known to more than one organisation; SECURITY.md, what is and is not protected); the gap between this target
# and the truth is that double counting, not noise.
_TARGET_EXPR = """count(*) FILTER (WHERE len(lawful_orgs) > 0)
         + coalesce(sum(len(list_distinct(orgs)) - len(list_distinct(lawful_orgs))), 0)"""


def release_target_counts(nation_dir: Path, by: list[str], expr: str = _TARGET_EXPR) -> dict[tuple, int]:
    """Release target per cell of `by` (every codelist cell, zeros too), like nation.truth_counts; `expr` is the
    per-organisation release's (default) or another count over the truth file."""
    import itertools

    import duckdb

    from ..contract.codelists import codes, DIMENSIONS
    from ..util.engine import quote_ident
    from .nation import TRUTH_FILE

    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown or len(set(by)) != len(by):
        raise UsageError(f"release targets are by distinct release dimensions ({', '.join(DIMENSIONS)})")
    select = ", ".join(quote_ident(d) for d in by)
    sql = f"SELECT {select + ', ' if by else ''}{expr} FROM read_parquet($p)"
    if by:
        sql += f" GROUP BY {select}"
    with duckdb.connect(":memory:") as con:
        found = {tuple(r[:-1]): int(r[-1]) for r in con.execute(sql, {"p": str(Path(nation_dir) / TRUTH_FILE)}).fetchall()}
    return {cell: found.get(cell, 0) for cell in itertools.product(*(codes(d) for d in by))}


def release_targets(nation_dir: Path, expr: str = _TARGET_EXPR) -> dict[str, int]:
    """Release target per form code, for "minors" (under_15 + 15_17) and for "total"."""
    by_form = release_target_counts(nation_dir, ["form"], expr)
    by_age = release_target_counts(nation_dir, ["age_band"], expr)
    targets = {form: n for (form,), n in by_form.items()}
    targets["minors"] = sum(by_age[(b,)] for b in MINOR_BANDS)
    targets["total"] = sum(by_form.values())
    return targets
