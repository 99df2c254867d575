"""A synthetic nation built from docs/figures.md: true victims, organisations, their exports and mappings.

`make_nation(year, seed, out)` writes
  out/nation.json                         manifest: year, seed, export date, organisations, totals
  out/orgs/<org-id>/export-<year>.<ext>   each organisation's export in its own columns, values, format and encoding
  out/orgs/<org-id>/mapping.toml          the mapping that turns that export into the Registration schema
  out/truth.parquet                       one row per true person: the five release dimensions, which organisations
                                          know them and which of those have a lawful basis at the export date

Everything is fictional. Shares marked "docs/figures.md" come from the public figures; every other number is a
plausible choice, said so next to it (population.py, organisations.py). Generation uses `random.Random` streams
derived from (seed, year), so the same arguments give the same bytes.

The parts: population.py (who the people are and who knows them), organisations.py (the catalogue), names.py,
styles.py (how each organisation writes its export and mapping), writers.py (the file writers) and this module
(the nation on disk, its truth and the count helpers).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from ..contract.codelists import codes, DIMENSIONS
from ..errors import UsageError
from ..util.files import clear_marked_folder
from .organisations import ORGANISATIONS
from .population import SYNTH_VERSION, Person, _build
from .styles import STYLES, mapping_toml
from .writers import _org_rows, _render, _sql_path, _write_csv, _write_jsonl, _write_parquet, _write_xlsx

TRUTH_FILE = "truth.parquet"
UNSEEN_FILE = "unseen.parquet"  # victims no organisation knows
MANIFEST_FILE = "nation.json"

# ------------------------------------------------------------------------------------------------ the nation

@dataclass(frozen=True)
class OrgFile:
    id: str
    name: str
    kind: str
    reporter_type: str
    export: str  # path relative to the nation folder
    mapping: str
    format: str
    rows: int
    people: int
    consent_rate: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Nation:
    """What make_nation wrote; totals come from truth.parquet."""

    out: str
    year: int
    seed: int
    scale: float
    export_date: str
    orgs: list[OrgFile]
    truth_total: int  # distinct people known to at least one organisation
    consent_only_total: int
    rows_total: int
    by_form: dict[str, dict[str, int]]  # form -> {"truth": n, "consent_only": n}
    unseen_total: int = 0  # victims no organisation knows (unseen.parquet): the dark number

    @property
    def true_total(self) -> int:
        return self.truth_total + self.unseen_total

    def as_dict(self) -> dict:
        data = asdict(self)
        data["orgs"] = [o.as_dict() for o in self.orgs]
        return data


def _check_args(year: int, seed: int, scale: float) -> None:
    if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100:
        raise UsageError("year must be a whole number from 2000 to 2100")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError("seed must be a whole number of 0 or more")
    if not isinstance(scale, (int, float)) or not 0.01 <= float(scale) <= 50:
        raise UsageError("scale must be a number from 0.01 to 50")


def _prepare_out(out: Path) -> None:
    clear_marked_folder(out, MANIFEST_FILE, ("orgs", TRUTH_FILE, UNSEEN_FILE, MANIFEST_FILE), "synthetic nation")


def make_nation(year: int, seed: int, out: Path, *, scale: float = 1.0) -> Nation:
    """Write a synthetic nation (exports, mappings, truth, manifest) into `out` and return its summary.

    The same (year, seed, scale) always writes the same bytes. `scale` multiplies the population and the help line's
    chatters (1.0 = about 7,000 people known to at least one organisation); the organisations stay the same.
    """
    import duckdb

    _check_args(year, seed, scale)
    out = Path(out)
    _prepare_out(out)
    people, consent_rates, unseen = _build(year, seed, float(scale))
    export_date = dt.date(year, 12, 31)

    con = duckdb.connect(":memory:")
    con.execute("SET threads = 1")  # byte-identical Parquet files
    org_files = []
    for org in ORGANISATIONS:
        style = STYLES[org.style]
        rng = random.Random(f"synth:{SYNTH_VERSION}:{year}:{seed}:export:{org.id}")
        rows = _org_rows(org, style, people, year, rng)
        mode = "json" if style.format == "json" else "typed" if style.typed_dates else "text"
        rendered = [_render(style, row, rng, mode) for row in rows]
        folder = out / "orgs" / org.id
        folder.mkdir(parents=True, exist_ok=True)
        export = folder / f"export-{year}.{style.ext}"
        if style.format == "csv":
            _write_csv(export, style, rendered)
        elif style.format == "json":
            _write_jsonl(export, style, rendered)
        elif style.format == "xlsx":
            _write_xlsx(export, style, org, rendered, year)
        else:
            _write_parquet(con, export, style, rendered)
        (folder / "mapping.toml").write_text(mapping_toml(org, style), encoding="utf-8")
        org_files.append(OrgFile(
            org.id, org.name, org.kind, org.reporter_type, export.relative_to(out).as_posix(),
            (folder / "mapping.toml").relative_to(out).as_posix(), style.format, len(rows),
            len({r["person_id"] for r in rows}), consent_rates[org.id]))

    _write_truth(con, out / TRUTH_FILE, people)
    _write_truth(con, out / UNSEEN_FILE, unseen)
    truth_total, consent_total = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE len(lawful_orgs) > 0) FROM read_parquet($p)",
        {"p": str(out / TRUTH_FILE)},
    ).fetchone()
    by_form = {
        form: {"truth": int(t), "consent_only": int(c)}
        for form, t, c in con.execute(
            """
            SELECT form, count(*), count(*) FILTER (WHERE len(lawful_orgs) > 0)
            FROM read_parquet($p) GROUP BY form
            """,
            {"p": str(out / TRUTH_FILE)},
        ).fetchall()
    }
    by_form = {form: by_form.get(form, {"truth": 0, "consent_only": 0}) for form in codes("form")}
    con.close()

    nation = Nation(
        out=str(out), year=year, seed=seed, scale=float(scale), export_date=export_date.isoformat(),
        orgs=org_files, truth_total=int(truth_total), consent_only_total=int(consent_total),
        rows_total=sum(o.rows for o in org_files), by_form=by_form, unseen_total=len(unseen),
    )
    manifest = {
        "synth_version": SYNTH_VERSION,
        "year": year,
        "seed": seed,
        "scale": float(scale),
        "export_date": export_date.isoformat(),
        "truth": TRUTH_FILE,
        "unseen": UNSEEN_FILE,
        "totals": {"truth": nation.truth_total, "consent_only": nation.consent_only_total, "rows": nation.rows_total,
                   "by_form": by_form, "unseen": nation.unseen_total, "true_total": nation.true_total},
        "orgs": [o.as_dict() for o in org_files],
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    return nation


def _write_truth(con, path: Path, people: list[Person]) -> None:
    columns = {
        "person_key": ("VARCHAR", [p.key for p in people]),
        "form": ("VARCHAR", [p.form for p in people]),
        "age_band": ("VARCHAR", [p.age_band for p in people]),
        "gender": ("VARCHAR", [p.gender for p in people]),
        "nationality_group": ("VARCHAR", [p.nationality_group for p in people]),
        "province": ("VARCHAR", [p.province for p in people]),
        "nationality": ("VARCHAR", [p.nationality for p in people]),
        "age": ("INTEGER", [p.age for p in people]),
        "help_line": ("BOOLEAN", [p.chatter for p in people]),
        "orgs": ("VARCHAR[]", [[c.org for c in p.contacts] for p in people]),
        "lawful_orgs": ("VARCHAR[]", [[c.org for c in p.contacts if c.lawful] for p in people]),
        "statutory_orgs": ("VARCHAR[]", [[c.org for c in p.contacts if c.lawful and c.consent is None]
                                         for p in people]),
    }
    selects = [f"unnest(${name}::{sql_type}[]) AS {name}" for name, (sql_type, _) in columns.items()]
    con.execute("CREATE OR REPLACE TEMP TABLE synth_truth AS SELECT " + ", ".join(selects),
                {name: values for name, (_, values) in columns.items()})
    con.execute(f"COPY (SELECT * FROM synth_truth ORDER BY person_key) TO '{_sql_path(path)}' (FORMAT parquet)")
    con.execute("DROP TABLE synth_truth")


# ------------------------------------------------------------------------------------------------ truth helpers

def _checked_dims(by: list[str]) -> list[str]:
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown:
        raise UsageError(f"unknown dimension(s) {', '.join(map(repr, unknown))}; known: {', '.join(DIMENSIONS)}")
    if len(set(by)) != len(by):
        raise UsageError("a dimension is named twice")
    return list(by)


def _counts(out: Path, by: list[str], lawful_only: bool, file: str = TRUTH_FILE) -> dict[tuple, int]:
    import itertools

    import duckdb

    from ..util.engine import quote_ident

    dims = _checked_dims(by)
    path = Path(out) / file
    if not path.is_file():
        raise UsageError(f"{path} not found; run `aggregator synth` first")
    select = ", ".join(quote_ident(d) for d in dims)
    where = "WHERE len(lawful_orgs) > 0" if lawful_only else ""
    sql = f"SELECT {select + ', ' if dims else ''}count(*) FROM read_parquet($p) {where}"
    if dims:
        sql += f" GROUP BY {select}"
    with duckdb.connect(":memory:") as con:
        found = {tuple(row[:-1]): int(row[-1]) for row in con.execute(sql, {"p": str(path)}).fetchall()}
    cells = itertools.product(*(codes(d) for d in dims))
    return {cell: found.get(cell, 0) for cell in cells}


def truth_counts(out: Path, by: list[str]) -> dict[tuple, int]:
    """True number of distinct people known to any organisation, per cell of `by` (every codelist cell, zeros too)."""
    return _counts(out, by, lawful_only=False)


def true_counts(out: Path, by: list[str]) -> dict[tuple, int]:
    """Every victim of the synthetic year per cell of `by`: those known to an organisation and those known to none."""
    known, unseen = _counts(out, by, lawful_only=False), _counts(out, by, lawful_only=False, file=UNSEEN_FILE)
    return {cell: known[cell] + unseen[cell] for cell in known}


def consent_only_counts(out: Path, by: list[str]) -> dict[tuple, int]:
    """Distinct people with a lawful basis (statutory, or consent valid at the export date) at >= 1 organisation."""
    return _counts(out, by, lawful_only=True)
