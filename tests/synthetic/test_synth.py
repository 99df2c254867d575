"""aggregator.synthetic: a deterministic synthetic nation whose exports read and validate with their own mappings, whose
truth is several times what consent-only registration shows, and whose people link across organisations."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from aggregator.synthetic.nation import Nation, consent_only_counts, make_nation, true_counts, truth_counts
from aggregator.contract.codelists import age_band, codes, nationality_group
from aggregator.errors import UsageError
from aggregator.organisation.readers import read_export
from aggregator.organisation.pseudonyms import pseudonym
from aggregator.organisation.mapping import load_mapping
from aggregator.organisation.validate import validate_export

YEAR = 2025
EXPORT_DATE = dt.date(YEAR, 12, 31)
KEY = b"synthetic-linkage-key-for-tests!"


@pytest.fixture(scope="module")
def nation(tmp_path_factory) -> tuple[Nation, Path]:
    out = tmp_path_factory.mktemp("nation")
    return make_nation(YEAR, 7, out), out


@pytest.fixture(scope="module")
def manifest(nation) -> dict:
    return json.loads((nation[1] / "nation.json").read_text(encoding="utf-8"))


def people_in(path) -> list[dict]:
    with duckdb.connect() as con:
        cursor = con.execute("SELECT * FROM read_parquet($p) ORDER BY person_key", {"p": str(path)})
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def truth(nation) -> list[dict]:
    return people_in(nation[1] / "truth.parquet")


@pytest.fixture(scope="module")
def unseen(nation) -> list[dict]:
    """The victims no organisation knows."""
    return people_in(nation[1] / "unseen.parquet")


@pytest.fixture(scope="module")
def everyone(truth, unseen) -> list[dict]:
    """Every victim of the year: known to an organisation or not (the public figures describe all of them)."""
    return truth + unseen


@pytest.fixture(scope="module")
def validated(nation, manifest) -> dict[str, list[dict]]:
    """Every export validated with its mapping: org id -> valid rows as dicts."""
    out = nation[1]
    result = {}
    for org in manifest["orgs"]:
        report, con = validate_export(out / org["export"], out / org["mapping"], export_date=EXPORT_DATE)
        assert report.valid, (org["id"], report.as_dict())
        cursor = con.execute("SELECT * FROM valid_rows")
        names = [d[0] for d in cursor.description]
        result[org["id"]] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        con.close()
    return result


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- determinism and layout


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    first = make_nation(YEAR, 11, tmp_path / "a", scale=0.2)
    second = make_nation(YEAR, 11, tmp_path / "b", scale=0.2)
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a.keys() == b.keys()
    assert [name for name in a if a[name] != b[name]] == []
    assert first.as_dict() | {"out": ""} == second.as_dict() | {"out": ""}
    other = files_of((make_nation(YEAR, 12, tmp_path / "c", scale=0.2), tmp_path / "c")[1])
    assert other["truth.parquet"] != a["truth.parquet"]


def test_rerun_into_the_same_folder_replaces_the_nation(tmp_path):
    make_nation(YEAR, 1, tmp_path / "n", scale=0.1)
    before = files_of(tmp_path / "n")
    make_nation(YEAR, 1, tmp_path / "n", scale=0.1)
    assert files_of(tmp_path / "n") == before


def test_manifest_lists_every_organisation_and_its_files(nation, manifest):
    result, out = nation
    assert manifest["year"] == YEAR and manifest["seed"] == 7
    assert manifest["export_date"] == "2025-12-31"
    assert manifest["truth"] == "truth.parquet"
    orgs = manifest["orgs"]
    kinds = [o["kind"] for o in orgs]
    assert kinds.count("investigative") == 12
    assert 35 <= kinds.count("non_investigative") <= 45
    assert len({o["id"] for o in orgs}) == len(orgs)
    investigative = {o["reporter_type"] for o in orgs if o["kind"] == "investigative"}
    assert investigative == {"police", "military_police", "labour_inspectorate"}
    assert {"shelter", "care_coordination", "municipality", "help_line"} <= {o["reporter_type"] for o in orgs}
    for org in orgs:
        assert (out / org["export"]).is_file() and (out / org["mapping"]).is_file()
        assert org["export"] == f"orgs/{org['id']}/export-{YEAR}.{org['export'].rsplit('.', 1)[1]}"
        assert org["rows"] >= org["people"] >= 1
    assert manifest["totals"]["truth"] == result.truth_total
    assert manifest["totals"]["consent_only"] == result.consent_only_total
    assert sum(o["rows"] for o in orgs) == result.rows_total


def test_refuses_bad_arguments_and_foreign_folders(tmp_path):
    with pytest.raises(UsageError):
        make_nation(1999, 1, tmp_path / "x")
    with pytest.raises(UsageError):
        make_nation(YEAR, -1, tmp_path / "x")
    with pytest.raises(UsageError):
        make_nation(YEAR, 1, tmp_path / "x", scale=0)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(UsageError, match="not empty"):
        make_nation(YEAR, 1, tmp_path / "busy", scale=0.1)
    assert (tmp_path / "busy" / "keep.txt").read_text(encoding="utf-8") == "mine"


# ---------------------------------------------------------------- the population


def share(people: list[dict], **where) -> float:
    return sum(1 for p in people if all(p[k] == v for k, v in where.items())) / len(people)


def test_population_has_the_shape_of_the_public_figures(everyone):
    truth = everyone  # the public figures are estimates of all victims, seen or not
    assert 6_000 <= len(truth) <= 8_000  # docs/figures.md: 5,000-7,500 victims a year (F10), ~3,000 Dutch sexual (F3)
    assert 0.17 <= share(truth, form="labour") <= 0.43  # docs/figures.md: 17% (2019) to 43% (2020) of reports
    forms = {f: share(truth, form=f) for f in codes("form")}
    assert max(forms, key=forms.get) == "sexual"
    assert 0 < forms["organ_removal"] < 0.02
    assert 0.03 < forms["criminal"] and 0.03 < forms["other_unknown"]
    dutch_sexual = [p for p in truth if p["form"] == "sexual" and p["nationality_group"] == "NL"]
    assert len(dutch_sexual) / share(truth, form="sexual") / len(truth) > 0.6  # Dutch victims dominate sexual exploitation
    minors = sum(1 for p in dutch_sexual if p["age_band"] in ("under_15", "15_17")) / len(dutch_sexual)
    assert 0.30 <= minors <= 0.55  # docs/figures.md: ~1,300 of ~3,000
    labour = [p for p in truth if p["form"] == "labour"]
    assert sum(1 for p in labour if p["nationality_group"] in ("EU", "non_EU")) / len(labour) > 0.8
    for group in codes("nationality_group"):
        assert share(truth, nationality_group=group) > 0
    assert share(truth, gender="female") > share(truth, gender="male") > 0.2
    assert {p["province"] for p in truth} == set(codes("province"))


def test_derived_dimensions_use_the_codelists(truth):
    for person in truth:
        assert person["age_band"] == age_band(person["age"])
        assert person["nationality_group"] == nationality_group(person["nationality"])
        for dim in ("form", "age_band", "gender", "nationality_group", "province"):
            assert person[dim] in codes(dim)


def test_help_line_matches_the_chat_service(nation, truth, manifest):
    chatters = [p for p in truth if p["help_line"]]
    assert len(chatters) == 285  # docs/figures.md: 285 victims sought help through the chat in one year
    assert 0.12 <= share(chatters, age_band="under_15") <= 0.28  # "nearly 1 in 5 was younger than 15"
    assert share(chatters, gender="female") > 0.75  # "mostly girls"
    assert share(chatters, gender="male") > 0.02  # "the number of boys is rising"
    assert sum(1 for p in chatters if len(p["orgs"]) == 1) / len(chatters) > 0.6  # known to no other organisation
    help_line = next(o for o in manifest["orgs"] if o["reporter_type"] == "help_line")
    mapping = load_mapping(nation[1] / help_line["mapping"])
    assert not {"family_name", "given_names", "date_of_birth", "consent"} & set(mapping.columns)


def test_consent_only_registration_is_far_below_the_truth(nation):
    result, out = nation
    assert 700 <= result.consent_only_total <= 1_300  # docs/figures.md: 668 (2018) - 1,334 (2019) registrations
    assert result.truth_total >= 3 * result.consent_only_total
    assert result.true_total >= 5 * result.consent_only_total  # docs/figures.md F10: about 1 in 5 is registered
    for form, counts in result.by_form.items():
        assert counts["consent_only"] <= counts["truth"], form
    assert result.by_form["sexual"]["consent_only"] < 0.2 * true_counts(out, ["form"])[("sexual",)]
    # docs/figures.md: only 2-3% of Dutch minor victims of sexual exploitation are visible; allow a little more
    dims = ["form", "nationality_group", "age_band"]
    truth, lawful = true_counts(out, dims), consent_only_counts(out, dims)
    minors_truth = sum(truth[("sexual", "NL", band)] for band in ("under_15", "15_17"))
    minors_seen = sum(lawful[("sexual", "NL", band)] for band in ("under_15", "15_17"))
    assert minors_seen < 0.08 * minors_truth


def test_count_helpers_cover_every_codelist_cell(nation):
    result, out = nation
    by = ["form", "age_band", "gender", "nationality_group", "province"]
    truth, lawful = truth_counts(out, by), consent_only_counts(out, by)
    size = 1
    for dim in by:
        size *= len(codes(dim))
    assert len(truth) == len(lawful) == size
    assert sum(truth.values()) == result.truth_total
    assert sum(lawful.values()) == result.consent_only_total
    assert all(lawful[cell] <= truth[cell] for cell in truth)
    assert truth_counts(out, []) == {(): result.truth_total}
    assert consent_only_counts(out, ["form"]) == {
        (form,): counts["consent_only"] for form, counts in result.by_form.items()
    }
    with pytest.raises(UsageError, match="unknown dimension"):
        truth_counts(out, ["form", "name"])


def test_people_are_known_to_more_than_one_organisation(truth):
    multi = [p for p in truth if len(p["orgs"]) >= 2]
    assert 0.10 <= len(multi) / len(truth) <= 0.40
    # consent at one organisation and none at another: the double counting docs/figures.md and SECURITY.md name
    assert any(0 < len(p["lawful_orgs"]) < len(p["orgs"]) for p in multi)
    assert all(set(p["lawful_orgs"]) <= set(p["orgs"]) for p in truth)
    assert all(set(p["statutory_orgs"]) <= set(p["lawful_orgs"]) for p in truth)


# ---------------------------------------------------------------- exports and mappings


def test_every_export_reads_with_its_mapping(nation, manifest):
    out = nation[1]
    seen = {"format": set(), "encoding": set(), "delimiter": set()}
    for org in manifest["orgs"]:
        mapping = load_mapping(out / org["mapping"])
        with duckdb.connect() as con:
            info = read_export(con, out / org["export"], mapping.file)
            assert info.rows == org["rows"], org["id"]
            assert info.columns == list(mapping.columns.values()), org["id"]
            assert con.execute("SELECT count(*) FROM export_raw").fetchone()[0] == org["rows"]
        assert info.format == org["format"]
        seen["format"].add(info.format)
        seen["encoding"].add(info.encoding)
        seen["delimiter"].add(info.delimiter)
        if mapping.file.encoding is not None:
            assert info.encoding == mapping.file.encoding
    assert seen["format"] == {"csv", "xlsx", "parquet", "json"}
    assert {"utf-8", "utf-8-sig", "cp1252"} <= seen["encoding"]
    assert {",", ";", "\t"} <= seen["delimiter"]


def test_mappings_vary_like_real_organisations(nation, manifest):
    out = nation[1]
    mappings = [load_mapping(out / o["mapping"]) for o in manifest["orgs"]]
    formats = {f for m in mappings for f in m.date_formats}
    assert {"%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y"} <= formats
    assert any(len(m.date_formats) > 1 for m in mappings)
    headers = {m.columns["report_date"] for m in mappings}
    assert len(headers) >= 8
    assert any("nationality" in m.values for m in mappings)  # country words mapped to ISO codes
    assert any("form" in m.values for m in mappings)  # the organisation's own codes
    assert any(m.file.sheet for m in mappings)
    assert any(m.file.format is None for m in mappings)  # left to detection


def test_every_export_validates_and_matches_the_truth(nation, manifest, validated, truth):
    """All rows pass the contract; the pseudonyms link each true person across organisations, and the people with a
    lawful basis in the exports are exactly the truth's consent-only population, with the same dimensions."""
    rows_by_org = {o["id"]: o["rows"] for o in manifest["orgs"]}
    kind = {o["id"]: o["kind"] for o in manifest["orgs"]}
    named_dims: dict[str, set[tuple]] = {}
    lawful: set[str] = set()
    duplicates = withdrawn = 0
    for org_id, rows in validated.items():
        assert len(rows) == rows_by_org[org_id]
        duplicates += len(rows) - len({r["person_id"] for r in rows})
        withdrawn += sum(1 for r in rows if r["consent_withdrawn_date"] is not None)
        for r in rows:
            assert r["report_date"].year == YEAR and r["report_date"] <= EXPORT_DATE
            if r["family_name"] is None:  # the anonymous help line
                continue
            key = pseudonym(KEY, org_id, r["person_id"], r["family_name"], r["given_names"], r["date_of_birth"])
            age = r["age"]
            if age is None and r["date_of_birth"] is not None:
                dob, day = r["date_of_birth"], r["report_date"]
                age = day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))
            dims = (r["form"], age_band(age), r["gender"] or "unknown", nationality_group(r["nationality"]),
                    r["province"] or "unknown")
            named_dims.setdefault(key, set()).add(dims)
            consent_valid = bool(r["consent"]) and r["consent_date"] is not None and r["consent_withdrawn_date"] is None
            if kind[org_id] == "investigative" or consent_valid:
                lawful.add(key)
    assert duplicates > 0 and withdrawn > 0
    assert all(len(d) == 1 for d in named_dims.values())  # one person, one set of dimensions everywhere
    known_by_name = [p for p in truth if any(o != "chat-hulplijn" for o in p["orgs"])]

    def copies(p, orgs_key="orgs"):
        """A person links across organisations only with a family name and a date of birth (release.py);
        without a known age there is no date of birth, so each organisation holds its own pseudonym."""
        named_orgs = [o for o in p[orgs_key] if o != "chat-hulplijn"]
        return (1 if named_orgs else 0) if p["age"] is not None else len(named_orgs)

    assert len(named_dims) == sum(copies(p) for p in known_by_name)
    expected = sorted(
        (p["form"], p["age_band"], p["gender"], p["nationality_group"], p["province"])
        for p in known_by_name for _ in range(copies(p))
    )
    assert sorted(next(iter(d)) for d in named_dims.values()) == expected
    assert len(lawful) == sum(copies(p, "lawful_orgs") for p in truth if p["lawful_orgs"])
    lawful_forms = sorted(next(iter(named_dims[k]))[0] for k in lawful)
    assert lawful_forms == sorted(p["form"] for p in truth if p["lawful_orgs"] for _ in range(copies(p, "lawful_orgs")))


def test_same_person_carries_the_same_identity_at_every_organisation(nation, manifest):
    """Raw exports differ in case and Unicode form, but not in the person's names and date of birth."""
    out = nation[1]
    upper = decomposed = False
    for org in manifest["orgs"]:
        text = (out / org["export"]).read_bytes()
        if org["id"].startswith("politie-") and b"DE VRIES" in text:
            upper = True
        if org["format"] == "csv" and "o\u0301".encode() in text:  # ó written as o + combining acute (NFD)
            decomposed = True
    assert upper and decomposed


def test_cli_synth_writes_and_reports(tmp_path):
    from typer.testing import CliRunner

    import importlib

    from aggregator.cli import COMMAND_GROUPS, app

    for group in COMMAND_GROUPS:  # register every command group, as main() does
        try:
            importlib.import_module(f"aggregator.cli.{group}")
        except ModuleNotFoundError as exc:
            if exc.name != f"aggregator.cli.{group}":
                raise

    runner = CliRunner()
    result = runner.invoke(app, ["synth", "--year", "2024", "--seed", "3", "--scale", "0.1", "--out", str(tmp_path / "n"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["year"] == 2024 and data["truth_total"] > data["consent_only_total"] > 0
    assert (tmp_path / "n" / "nation.json").is_file()
    refused = runner.invoke(app, ["synth", "--year", "1900", "--out", str(tmp_path / "m")])
    assert refused.exit_code == 2
    assert "year" in refused.output


def test_some_victims_meet_no_organisation_and_minors_and_dutch_victims_least_often(nation, truth, unseen, manifest):
    result, out = nation
    assert result.unseen_total == len(unseen) > 0 and manifest["totals"]["true_total"] == len(truth) + len(unseen)
    assert all(p["orgs"] == [] for p in unseen) and all(p["orgs"] for p in truth)
    assert not {p["person_key"] for p in unseen} & {p["person_key"] for p in truth}

    def visible(minor: bool, dutch: bool) -> float:
        def inside(p):
            return (p["age_band"] in ("under_15", "15_17")) == minor and (p["nationality_group"] == "NL") == dutch
        seen, missed = sum(map(inside, truth)), sum(map(inside, unseen))
        return seen / (seen + missed)

    # NI_RATE: the least visible are Dutch minors, the most visible non-Dutch adults (docs/figures.md F3/F4)
    assert visible(True, True) < visible(False, True) < visible(False, False)
    assert visible(True, True) < visible(True, False)
    assert 0.25 <= len(truth) / (len(truth) + len(unseen)) <= 0.8
    dims = ["form"]
    assert {k: v for k, v in true_counts(out, dims).items()} == {
        k: truth_counts(out, dims)[k] + sum(1 for p in unseen if p["form"] == k[0]) for k in truth_counts(out, dims)}
