"""End to end through the CLI: registry -> merge -> table / budget, refusals, idempotence, busy store."""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

import aggregator.cli.coordinator  # noqa: F401  (registers the commands)
from aggregator.cli import app
from aggregator.contract.codelists import codes
from tests import bundlefactory as bf

runner = CliRunner()


def cli(*args: object, code: int | None = 0):
    result = runner.invoke(app, [str(a) for a in args])
    if code is not None:
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def cli_json(*args: object, code: int | None = 0):
    return json.loads(cli(*args, "--json", code=code).stdout)


def register(tmp_path: Path, db: Path, org: bf.TestOrg, cap: str = "1") -> None:
    cli("registry", "add", org.id, "--kind", org.kind, "--reporter-type", org.reporter_type,
        "--public-key", org.public_key_file(tmp_path), "--cap", cap, "--db", db)


def view(db: Path, *, with_times: bool = True) -> tuple:
    """What a coordinator or auditor can query: the table per breakdown (or its refusal, when no release covers
    the breakdown) and the budget."""
    tables = tuple(_table_view(db, by) for by in ("form,age_band", "kind,reporter_type"))
    budget = cli_json("budget", "--db", db)
    if not with_times:  # another store received the same bundles at another moment
        for b in budget["budgets"]:
            for r in b["releases"]:
                r.pop("accepted_at")
    return tables, json.dumps(budget, sort_keys=True)


def _table_view(db: Path, by: str) -> str:
    result = cli("table", "--db", db, "--by", by, "--json", code=None)
    assert result.exit_code in (0, 2), (result.stdout, result.stderr)
    data = json.loads(result.stdout)
    return json.dumps(data["rows"] if result.exit_code == 0 else data, sort_keys=True)


@pytest.fixture
def setup(tmp_path):
    db = tmp_path / "national.duckdb"
    shelter = bf.new_org("shelter-a")
    helpline = bf.new_org("help-b", reporter_type="help_line")
    police = bf.new_org("police-x", "investigative")
    for org in (shelter, helpline, police):
        register(tmp_path, db, org)
    return db, shelter, helpline, police, tmp_path / "in"


def test_end_to_end_table_equals_records_plus_noisy_cells(setup):
    db, shelter, helpline, police, folder = setup
    rng = random.Random(11)
    cells = list(itertools.product(codes("form"), codes("age_band")))
    people = {org.id: [(f"{org.id}-{i}", rng.choice(cells)) for i in range(30)] for org in (shelter, helpline, police)}
    people[helpline.id] += [(f"{police.id}-0", people[police.id][0][1])]  # one person known to two organisations
    noisy = {org.id: {c: rng.randint(-2, 9) for c in cells} for org in (shelter, helpline)}
    paths = []
    for org in (shelter, helpline, police):
        basis = "statutory" if org is police else "consent"
        records = [bf.record(seed, basis=basis, form=f, age_band=a) for seed, (f, a) in people[org.id]]
        marginals = [bf.marginal(["form", "age_band"], "1/2", noisy[org.id])] if org.id in noisy else []
        paths.append(bf.bundle_file(folder, org, records=records, marginals=marginals))

    merged = cli_json("merge", *paths, "--db", db)
    assert (merged["accepted"], merged["refused"], merged["duplicate"]) == (3, 0, 0)

    table = cli_json("table", "--db", db, "--period", 2025, "--by", "form,age_band")
    unique = {seed: cell for recs in people.values() for seed, cell in recs}
    rows = [r for r in table["rows"] if not r["total"]]
    assert len(rows) == len(cells)
    for row in rows:
        cell = (row["dims"]["form"], row["dims"]["age_band"])
        assert row["individual"] == sum(1 for c in unique.values() if c == cell)
        assert row["noisy"] == noisy[shelter.id][cell] + noisy[helpline.id][cell]
        assert row["raw_estimate"] == row["individual"] + row["noisy"]  # raw sums kept next to the consistent figure
        assert row["consistent"] and row["estimate"] >= row["individual"]
    total = table["rows"][-1]
    assert total["total"] and total["individual"] == 90  # 91 records, one person counted once
    for key in ("individual", "noisy", "estimate"):
        assert total[key] == sum(r[key] for r in rows)
    assert total["variance"] == pytest.approx(sum(r["variance"] for r in rows))
    # margins: --by form equals the two-way table summed over age band, and has the same total
    by_form = cli_json("table", "--db", db, "--period", 2025, "--by", "form")
    for row in by_form["rows"][:-1]:
        part = [r for r in rows if r["dims"]["form"] == row["dims"]["form"]]
        assert row["estimate"] == sum(r["estimate"] for r in part)
    assert by_form["rows"][-1]["estimate"] == total["estimate"]


def test_merge_twice_in_any_order_gives_the_same_table_and_supersede_counts_both(setup, tmp_path):
    db, shelter, helpline, police, folder = setup
    s1 = bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(1), bf.record(2)],
                        marginals=[bf.marginal(["form"], "1/4", fill=3)])
    s2 = bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(2)],
                        marginals=[bf.marginal(["form"], "1/2", fill=1)])
    h1 = bf.bundle_file(folder, helpline, records=[bf.record(1)], marginals=[bf.marginal(["form", "age_band"], "1/2", fill=1)])
    p1 = bf.bundle_file(folder, police, records=[bf.record(3, basis="statutory")])
    bundles = [s1, s2, h1, p1]

    cli("merge", *bundles, "--db", db)
    first = view(db)
    again = cli_json("merge", *reversed(bundles), "--db", db)
    assert again["duplicate"] == 4 and again["accepted"] == 0
    assert view(db) == first

    for seed in (1, 2):  # fresh stores, shuffled order, one run: same table and budget
        other = tmp_path / f"other{seed}.duckdb"
        for org in (shelter, helpline, police):
            register(tmp_path, other, org)
        shuffled = bundles[:]
        random.Random(seed).shuffle(shuffled)
        cli("merge", *shuffled, "--db", other)
        assert view(other, with_times=False) == view(db, with_times=False)

    table = cli_json("table", "--db", db, "--by", "form")
    assert table["rows"][-1]["individual"] == 3  # shelter's seq 2 replaced seq 1: persons 1 (helpline), 2, 3
    assert table["rows"][-1]["noisy"] == 5 * 1 + 25 * 1
    budget = cli_json("budget", "--db", db, "--org", "shelter-a")["budgets"][0]
    assert (budget["spent"], budget["remaining"]) == ("3/4", "1/4")
    assert [(r["sequence"], r["superseded_by"] is not None) for r in budget["releases"]] == [(1, True), (2, False)]


def _refusal(kind: str, db: Path, shelter: bf.TestOrg, police: bf.TestOrg, folder: Path, tmp_path: Path) -> Path:
    import datetime as dt

    if kind == "unknown org":
        return bf.bundle_file(folder, bf.new_org("ghost-org"), records=[bf.record(1)])
    if kind == "wrong key":
        impostor = bf.new_org("shelter-a")
        return bf.write(folder, bf.sign(impostor, bf.make_payload(impostor, sequence=3, key_id=shelter.keyid), keyid=shelter.keyid))
    if kind == "edited payload":
        signed = bf.sign(shelter, bf.make_payload(shelter, sequence=3, records=[bf.record(5)]))
        return bf.write(folder, bf.edit_payload(signed, lambda p: p["records"][0].update(form="labour")))
    if kind == "statutory from non-investigative":
        return bf.bundle_file(folder, shelter, sequence=3, records=[bf.record(5, basis="statutory")])
    if kind == "over budget":
        return bf.bundle_file(folder, shelter, sequence=3, marginals=[bf.marginal(["form"], "3/4")])
    if kind == "malformed json":
        return bf.write(folder, b"{not json")
    if kind == "unknown schema version":
        payload = bf.make_payload(shelter, sequence=3).model_dump(mode="json")
        payload["schema_version"] = 9
        return bf.write(folder, bf.sign(shelter, payload))
    if kind == "equivocation":
        return bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(99)])
    if kind == "stale":
        return bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(99)])
    if kind == "expired":
        created = bf.NOW - dt.timedelta(days=100)
        return bf.bundle_file(folder, shelter, sequence=3, created_at=created, expires_at=created + dt.timedelta(days=90))
    if kind == "revoked":
        gone = bf.new_org("muni-gone", reporter_type="municipality")
        register(tmp_path, db, gone)
        path = bf.bundle_file(folder, gone, records=[bf.record(5)])
        cli("registry", "revoke", "muni-gone", "--db", db)
        return path
    raise AssertionError(kind)


REFUSALS = {
    "unknown org": "unknown-key",
    "wrong key": "bad-signature",
    "edited payload": "bad-signature",
    "statutory from non-investigative": "statutory-from-non-investigative",
    "over budget": "over-budget",
    "malformed json": "malformed-json",
    "unknown schema version": "unknown-schema-version",
    "equivocation": "equivocation",
    "stale": "stale-sequence",
    "expired": "expired",
    "revoked": "revoked",
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_refusal_names_its_reason_and_leaves_query_results_unchanged(setup, tmp_path, kind):
    db, shelter, _, police, folder = setup
    cli("merge", bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(1)],
                                marginals=[bf.marginal(["form"], "1/2", fill=2)]), "--db", db)
    bad = _refusal(kind, db, shelter, police, folder, tmp_path)
    before = view(db)
    result = cli("merge", bad, "--db", db, code=1)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"refused {bad.name}: {REFUSALS[kind]}: ")
    assert view(db) == before
    data = cli_json("merge", bad, "--db", db, code=1)
    assert data["refused"] == 1 and data["reasons"] == {REFUSALS[kind]: 1}
    assert view(db) == before


def test_one_refusal_does_not_stop_the_others(setup):
    db, shelter, helpline, police, folder = setup
    good = bf.bundle_file(folder, helpline, records=[bf.record(1)])
    bad = bf.write(folder, b"[]")
    result = cli("merge", bad, good, "--db", db, code=1)
    assert "accepted 1, duplicate 0, superseded 0, refused 1 (not-an-envelope: 1)" in result.stdout
    assert "refused" in result.stderr and bad.name in result.stderr


def test_second_merge_while_the_store_is_held_is_busy(setup):
    db, shelter, _, _, folder = setup
    path = bf.bundle_file(folder, shelter, records=[bf.record(1)])
    with bf.store_held(db):
        result = cli("merge", path, "--db", db, code=1)
        assert result.stderr.strip() == "error: store is busy: another aggregator process is using national.duckdb"
        assert result.stdout == ""
    assert cli_json("merge", path, "--db", db)["accepted"] == 1


def test_table_formats_csv_md_and_dutch_labels(setup, tmp_path):
    db, shelter, _, _, folder = setup
    cli("merge", bf.bundle_file(folder, shelter, records=[bf.record(1, gender="male")],
                                marginals=[bf.marginal(["gender"], "1/2", fill=-3)]), "--db", db)
    out = tmp_path / "table.csv"
    cli("table", "--db", db, "--by", "gender", "--format", "csv", "--lang", "nl", "--out", out)
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert rows[0][:2] == ["Periode", "Geslacht"]
    assert [r[1] for r in rows[1:]] == ["Vrouw", "Man", "Anders", "Onbekend", "Totaal"]
    assert rows[2][2:5] == ["1", "-3", "1"]  # raw noisy sum kept; the estimate never counts fewer than 0 noisy people
    md = cli("table", "--db", db, "--by", "gender", "--format", "md").stdout
    assert md.startswith("| Period | Gender |") and "| 2025 | Male | 1 | -3 | 1 |" in md
    rich_out = cli("table", "--db", db, "--by", "gender", "--lang", "nl").stdout
    assert "Nationale tabel" in rich_out and "Totaal" in rich_out
    assert cli("table", "--db", db, "--format", "xml", code=2).stderr.startswith("error: --format")
    assert "--by: unknown breakdown dimension" in cli("table", "--db", db, "--by", "shoe", code=2).stderr
    # The only release has no marginal by form: the table is refused (it would be the records alone, passed off as
    # estimates with zero-width intervals), naming what was released (tests/coordinator/test_national_honest.py).
    refused = cli_json("table", "--db", db, "--by", "form", code=2)["error"]
    assert refused["code"] == "breakdown-not-released" and "released marginals are gender" in refused["message"]


def test_budget_shows_exact_fractions_verifies_and_exports(setup, tmp_path):
    db, shelter, _, _, folder = setup
    cli("merge",
        bf.bundle_file(folder, shelter, sequence=1, marginals=[bf.marginal(["form"], "1/7"), bf.marginal(["gender"], "1/7")]),
        bf.bundle_file(folder, shelter, sequence=2, marginals=[bf.marginal(["form"], "1/7")]),
        "--db", db)
    ledger = tmp_path / "ledger.jsonl"
    data = cli_json("budget", "--db", db, "--org", "shelter-a", "--period", 2025, "--verify", "--export-ledger", ledger)
    (b,) = data["budgets"]
    assert (b["spent"], b["spent_decimal"], b["cap"], b["remaining"], b["remaining_decimal"]) == ("3/7", "0.428571", "1", "4/7", "0.571429")
    assert [r["epsilon"] for r in b["releases"]] == ["2/7", "1/7"]
    assert b["releases"][0]["marginals"] == [{"dimensions": ["form"], "epsilon": "1/7"}, {"dimensions": ["gender"], "epsilon": "1/7"}]
    assert data["verify"]["ok"] is True and data["exported"]["entries"] == 5
    assert len(ledger.read_text().splitlines()) == 5
    text = cli("budget", "--db", db, "--verify").stdout
    assert "3/7 = 0.428571" in text and "ledger verified" in text
    # every registered organisation gets a line for the period asked about
    assert {x["org"] for x in cli_json("budget", "--db", db, "--period", 2025)["budgets"]} == {"shelter-a", "help-b", "police-x"}

    import duckdb

    con = duckdb.connect(str(db))
    con.execute("UPDATE bundles SET epsilon = '1/70' WHERE sequence = 2")
    con.close()
    result = cli("budget", "--db", db, "--verify", code=1)
    assert "ledger verification failed" in result.stderr
    assert cli_json("budget", "--db", db, "--verify", code=1)["verify"]["ok"] is False


def test_registry_commands(setup, tmp_path):
    db, shelter, _, _, _ = setup
    listed = cli_json("registry", "list", "--db", db)["organisations"]
    assert [o["id"] for o in listed] == ["help-b", "police-x", "shelter-a"]
    new = shelter.rotated()
    rotated = cli_json("registry", "rotate", "shelter-a", "--public-key", new.public_key_file(tmp_path), "--db", db)
    assert [(k["keyid"], k["status"]) for k in rotated["keys"]] == [(shelter.keyid, "retired"), (new.keyid, "active")]
    assert "revoked" in cli("registry", "revoke", "shelter-a", "--db", db).stdout
    assert cli_json("registry", "list", "--db", db)["organisations"][2]["status"] == "revoked"
    bad_kind = cli("registry", "add", "x-org", "--kind", "spy", "--reporter-type", "other",
                   "--public-key", new.public_key_file(tmp_path), "--db", db, code=2)
    assert bad_kind.stderr.startswith("error: --kind: organisation kind must be one of")
    missing = cli("registry", "add", "x-org", "--kind", "non_investigative", "--reporter-type", "other",
                  "--public-key", tmp_path / "nope.pub", "--db", db, code=1)
    assert "public key file not found" in missing.stderr
    assert "no coordinator store" in cli("registry", "list", "--db", tmp_path / "none.duckdb", code=1).stderr


def test_every_coordinator_command_has_an_example():
    for args in (["registry", "add"], ["registry", "rotate"], ["registry", "revoke"], ["registry", "list"],
                 ["merge"], ["table"], ["budget"]):
        assert "Example:" in cli(*args, "--help").stdout


def test_merge_shows_progress_only_for_people(setup):
    db, shelter, _, _, folder = setup
    paths = [bf.bundle_file(folder, shelter, sequence=s, records=[bf.record(s)]) for s in range(1, 7)]
    shown = cli("merge", *paths, "--db", db)  # six bundles: the progress path, then the summary
    assert "accepted 6, duplicate 0, superseded 5, refused 0" in shown.stdout
    result = cli("merge", *paths, "--db", db, "--quiet")
    assert result.stdout == "" and result.stderr == ""
    data = cli_json("merge", *paths, "--db", db)
    assert data["duplicate"] == 6


# ------------------------------------------------------------------ with real bundles from `aggregator submit`

def test_real_submitted_bundles_merge_into_the_table(tmp_path, monkeypatch):
    organisation = pytest.importorskip("aggregator.cli.organisation")
    from tests.orgfactory import row, write_export

    assert organisation
    key = tmp_path / "linkage.key"
    key.write_text("a shared linkage key of enough length\n")
    db = tmp_path / "national.duckdb"
    rows = [row(i) for i in range(1, 31)]
    submitted = {}
    for org_id, kind, reporter in (("shelter-a", "non_investigative", "shelter"), ("police-x", "investigative", "police")):
        home = tmp_path / org_id
        cli("org", "init", "--org", org_id, "--kind", kind, "--reporter-type", reporter, "--home", home)
        export, mapping = write_export(tmp_path / f"{org_id}-export", rows if kind != "investigative" else rows[:6])
        result = cli_json("submit", export, "--mapping", mapping, "--period", 2025, "--epsilon", "1/2",
                          "--out", tmp_path / "outbox", "--home", home, "--linkage-key", key,
                          "--export-date", "2025-12-31")
        submitted[org_id] = result
        cli("registry", "add", org_id, "--kind", kind, "--reporter-type", reporter,
            "--public-key", home / "org.pub", "--db", db)
    merged = cli_json("merge", *(r["path"] for r in submitted.values()), "--db", db)
    assert merged["accepted"] == 2 and merged["refused"] == 0

    table = cli_json("table", "--db", db, "--period", 2025, "--by", "form,age_band")
    assert table["uncovered"] == []
    total = table["rows"][-1]
    consent = submitted["shelter-a"]["records_by_basis"]["consent"]
    statutory = submitted["police-x"]["records_by_basis"]["statutory"]
    assert statutory == 6
    # the six people the police know are the shelter's persons 1-6: shelter's consented ones among them count once
    shared_consent = sum(1 for i in range(1, 7) if i % 3 == 0)
    assert total["individual"] == consent + statutory - shared_consent
    assert table["linked_people"] == shared_consent
    budget = cli_json("budget", "--db", db, "--verify")
    # the coordinator's budget agrees with each organisation's own ledger (exactly)
    from fractions import Fraction

    assert {b["org"]: Fraction(b["spent"]) for b in budget["budgets"]} == {
        org_id: Fraction(r["epsilon_spent"]) for org_id, r in submitted.items()
    }
    assert Fraction(submitted["shelter-a"]["epsilon_spent"]) == Fraction(1, 2)
    assert budget["verify"]["ok"]
    # an exact replay of the submitted file changes nothing
    again = cli_json("merge", submitted["shelter-a"]["path"], "--db", db)
    assert again["duplicate"] == 1


def test_unwritable_outputs_are_error_lines(setup, tmp_path):
    db = setup[0]
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert cli("table", "--db", db, "--format", "csv", "--out", folder, code=1).stderr.startswith("error: cannot write")
    assert cli("budget", "--db", db, "--export-ledger", folder, code=1).stderr.startswith("error: cannot write")


def test_table_has_one_way_to_json_and_a_dutch_excel_csv(setup, tmp_path):
    db, shelter, _, _, folder = setup
    cli("merge", bf.bundle_file(folder, shelter, records=[bf.record(1, gender="male")],
                                marginals=[bf.marginal(["gender"], "1/2", fill=-3)]), "--db", db)
    refused = cli("table", "--db", db, "--format", "json", code=2)
    assert refused.stdout == "" and "use --json" in refused.stderr
    assert json.loads(cli("table", "--db", db, "--format", "json", "--json", code=2).stdout)["error"]["code"] == "usage-error"
    text = cli("table", "--db", db, "--by", "gender", "--format", "csv-nl", "--lang", "nl").stdout_bytes
    assert text.startswith(b"\xef\xbb\xbf")  # a BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(text.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["Periode", "Geslacht", "Individuele registraties"]
    assert all(len(r) == len(rows[0]) for r in rows)
    se = [r[6] for r in rows[1:]]
    assert any("," in v for v in se) and not any("." in v for v in se)  # decimal commas, no decimal points
    plain = list(csv.reader(io.StringIO(cli("table", "--db", db, "--by", "gender", "--format", "csv").stdout)))
    assert [r[6] for r in plain[1:]] == [v.replace(",", ".") for v in se]


def test_excel_nl_csv_stays_formula_safe():
    from aggregator.util.csvsafe import excel_safe_csv

    data = excel_safe_csv(["a", "b"], [["=1+1", -2.5], ["-x", 3]], delimiter=";", decimal_comma=True)
    assert data.decode("utf-8-sig").splitlines() == ["a;b", "'=1+1;-2,5", "'-x;3"]


def test_json_errors_are_an_object_on_stdout_with_the_exit_code(tmp_path):
    missing = cli("table", "--db", tmp_path / "none.duckdb", "--json", code=1)
    error = json.loads(missing.stdout)["error"]
    assert error["exit_code"] == 1 and error["code"] == "config-error" and "no coordinator store" in error["message"]
    assert missing.stderr == ""
    usage = cli("table", "--db", tmp_path / "none.duckdb", "--by", "shoe", "--json", code=2)
    assert json.loads(usage.stdout)["error"] == {
        "code": "usage-error", "exit_code": 2, "message": json.loads(usage.stdout)["error"]["message"]}
    assert json.loads(usage.stdout)["error"]["message"].startswith("--by: ")
    unknown_option = cli("merge", "x.bundle.json", "--bogus", "--json", code=2)
    assert json.loads(unknown_option.stdout)["error"]["code"] == "usage-error"
    plain = cli("merge", "x.bundle.json", "--bogus", code=2)
    assert plain.stdout == "" and "error: No such option: --bogus" in plain.stderr and "Error:" not in plain.stderr


def test_merge_into_a_missing_store_is_an_error_and_creates_nothing(setup, tmp_path):
    db, shelter, _, _, folder = setup
    bundle = bf.bundle_file(folder, shelter, records=[bf.record(1)])
    typo = tmp_path / "natonal.duckdb"
    refused = cli("merge", bundle, "--db", typo, code=1)
    unwrapped = refused.stderr.replace("\n", "")  # rich wraps a long path anywhere, also inside a word
    assert "no coordinator store at" in refused.stderr and "natonal.duckdb" in unwrapped
    assert not typo.exists() and refused.stdout == ""
    created = cli_json("merge", bundle, "--db", typo, "--create", code=1)  # explicit: a new, empty store
    assert typo.exists() and created["bundles"][0]["reason"] == "unknown-key"
    assert cli_json("merge", bundle, "--db", db)["accepted"] == 1


def test_a_bundle_of_an_unregistered_organisation_names_the_organisation(setup):
    db, shelter, _, _, folder = setup
    stranger = bf.new_org("shelter-z")
    result = cli_json("merge", bf.bundle_file(folder, stranger, records=[bf.record(1)]), "--db", db, code=1)
    (refusal,) = result["bundles"]
    assert refusal["reason"] == "unknown-key"
    assert "claims to be from shelter-z, which is not registered" in refusal["message"]
    rotated = bf.new_org("shelter-a")  # a registered id, but a key the registry does not hold
    result = cli_json("merge", bf.bundle_file(folder, rotated, records=[bf.record(2)]), "--db", db, code=1)
    assert "shelter-a, which is registered, but is signed with key" in result["bundles"][0]["message"]


def test_table_of_a_period_without_bundles_says_there_is_nothing(tmp_path):
    """No table of zeros with 0.0-0.0 intervals for a period nobody reported: one line and exit code 1."""
    db = tmp_path / "national.duckdb"
    shelter = bf.new_org("shelter-a")
    register(tmp_path, db, shelter)
    empty = cli("table", "--db", db, "--period", 2025, code=1)
    assert empty.stderr.startswith("error: nothing to show: no bundles for period 2025") and not empty.stdout
    cli("merge", bf.bundle_file(tmp_path / "in", shelter, records=[bf.record(1)]), "--db", db)
    for fmt in ("table", "csv", "md"):
        result = cli("table", "--db", db, "--period", 2030, "--format", fmt, code=1)
        assert result.stderr.startswith("error: nothing to show: no bundles for period 2030"), fmt
        assert "0.0" not in result.stdout and not result.stdout
    as_json = json.loads(cli("table", "--db", db, "--period", 2030, "--json", code=1).stdout)
    assert as_json["error"]["message"].startswith("nothing to show: no bundles for period 2030")
    assert cli_json("table", "--db", db, "--period", 2025)["rows"]  # a period with bundles still shows


def test_table_fits_80_columns_without_cutting_a_value(setup, monkeypatch):
    """The terminal view never shows '...' in place of a number, a label or a header at 80 columns."""
    db, shelter, helpline, police, folder = setup
    cli("merge", bf.bundle_file(folder, shelter, records=[bf.record(1)],
                                marginals=[bf.marginal(["form", "age_band"], "1/2", fill=1234)]), "--db", db)
    monkeypatch.setenv("COLUMNS", "80")
    for by in ("form", "form,age_band", "reporter_type"):
        for lang in ("en", "nl"):
            out = cli("table", "--db", db, "--period", 2025, "--by", by, "--lang", lang).stdout
            assert "…" not in out and "..." not in out, (by, lang, out)
            assert max(len(line) for line in out.splitlines()) <= 80, (by, lang)
            assert "Total" in out or "Totaal" in out


def test_merge_at_80_columns_shows_every_path_organisation_and_note_whole(setup, monkeypatch):
    db, shelter, helpline, police, folder = setup
    deep = folder
    first = bf.bundle_file(deep, shelter, records=[bf.record(1)], sequence=1)
    second = bf.bundle_file(deep, shelter, records=[bf.record(1), bf.record(2)], sequence=2)
    stranger = bf.bundle_file(deep, bf.new_org("an-organisation-nobody-registered"), records=[bf.record(3)])
    cli("merge", first, "--db", db)
    monkeypatch.setenv("COLUMNS", "80")
    shown = cli("merge", second, stranger, "--db", db, code=1)
    out = shown.stdout
    assert "…" not in out and "..." not in out, out
    lines = out.splitlines()
    for path in (second, stranger):
        assert any(line.strip() == path.name for line in lines), out
    assert "shelter-a, period 2025, sequence 2" in out
    assert "an-organisation-nobody-registered" in " ".join(shown.stderr.split())  # the refusal names it
    assert any(line.strip() == "supersedes 1" for line in lines) and any(line.strip() == "unknown-key" for line in lines)
