"""release.py: per-person dedupe, lawful-basis split, pseudonyms, fixed cell sets, a bundle without identifying data."""

from __future__ import annotations

import base64
import datetime as dt
import json
from fractions import Fraction
from pathlib import Path

import pytest

from aggregator.contract.envelope import canonical_json, open_envelope, parse_payload, verify_envelope
from aggregator.contract.codelists import codes
from aggregator.errors import BudgetExceeded, ValidationFailed
from aggregator.organisation.home import init_org, load_org
from aggregator.organisation.release import build_people, submit
from aggregator.organisation.pseudonyms import pseudonym
from aggregator.organisation.validate import validate_export
from tests.orgfactory import CANARIES, canary_rows, row, write_export

EXPORT_DATE = dt.date(2025, 12, 31)
KEY = b"test-linkage-key-0123456789"


def people(tmp_path, rows, kind="non_investigative"):
    home = tmp_path / "home"
    init_org("org-a", kind, reporter_type="police" if kind == "investigative" else "shelter", home=home)
    export, mapping = write_export(tmp_path, rows)
    _, con = validate_export(export, mapping, export_date=EXPORT_DATE)
    build_people(con, load_org(home), 2025, EXPORT_DATE, KEY)
    return con


def test_one_record_per_person_and_the_latest_row_wins(tmp_path):
    rows = [row(1, report_date="01-02-2025", form="arbeidsuitbuiting"), row(1, report_date="01-09-2025", form="seksuele uitbuiting"), row(2)]
    con = people(tmp_path, rows, kind="investigative")
    got = con.execute("SELECT count(*), count(DISTINCT pseudonym) FROM people").fetchone()
    assert got == (2, 2)
    forms = con.execute("SELECT form FROM people ORDER BY pseudonym").fetchall()
    assert ("sexual",) in forms and ("labour",) not in forms


def test_on_the_same_latest_day_the_last_row_of_the_file_describes_the_person(tmp_path):
    rows = [
        row(1, report_date="01-09-2025", form="arbeidsuitbuiting"),
        row(1, report_date="01-02-2025", form="criminele uitbuiting"),
        row(1, report_date="01-09-2025", form="seksuele uitbuiting"),  # same latest day, later in the file: wins
        row(2, report_date="01-09-2025", form="seksuele uitbuiting"),
        row(2, report_date="01-09-2025", form="arbeidsuitbuiting"),
    ]
    con = people(tmp_path, rows, kind="investigative")
    assert con.execute("SELECT person_id, form FROM people ORDER BY person_id").fetchall() == [
        ("P00001", "sexual"), ("P00002", "labour")]


def test_only_records_that_leave_get_a_pseudonym(tmp_path):
    con = people(tmp_path, [row(3, consent="ja", consent_date="01-03-2025"), row(4, consent="nee", consent_date="")])
    assert sorted(con.execute("SELECT basis, pseudonym IS NULL FROM people").fetchall(), key=str) == [
        ("consent", False), (None, True)]


def test_other_periods_are_left_out(tmp_path):
    con = people(tmp_path, [row(1), row(2, report_date="05-05-2024")])
    assert con.execute("SELECT count(*) FROM people").fetchone()[0] == 1


@pytest.mark.parametrize(
    "overrides, basis",
    [
        ({"consent": "ja", "consent_date": "01-03-2025"}, "consent"),
        ({"consent": "nee", "consent_date": ""}, None),
        ({"consent": "ja", "consent_date": ""}, None),  # consent without a date is not valid consent
        ({"consent": "ja", "consent_date": "01-03-2025", "consent_withdrawn_date": "01-06-2025"}, None),
    ],
)
def test_lawful_basis_split(tmp_path, overrides, basis):
    con = people(tmp_path, [row(3, **overrides)])
    assert con.execute("SELECT basis FROM people").fetchone()[0] == basis


def test_investigative_records_are_statutory(tmp_path):
    con = people(tmp_path, [row(1, consent="nee", consent_date=""), row(2)], kind="investigative")
    assert {r[0] for r in con.execute("SELECT basis FROM people").fetchall()} == {"statutory"}


def test_sql_pseudonym_equals_python_hmac(tmp_path):
    rows = [
        row(1, family_name="  Ëlsa ", given_names="DE Vries", date_of_birth="03-04-1990"),
        row(2, family_name="", given_names="", date_of_birth="", person_id="ANON-7"),
        row(3, family_name="", given_names="Eva", date_of_birth="03-04-1990", person_id="PART-8"),
    ]
    con = people(tmp_path, rows, kind="investigative")
    got = {r[0] for r in con.execute("SELECT pseudonym FROM people").fetchall()}
    expected = {
        pseudonym(KEY, "org-a", "P00001", "Ëlsa", "de vries", dt.date(1990, 4, 3)),
        pseudonym(KEY, "org-a", "ANON-7", None, None, None),
        pseudonym(KEY, "org-a", "PART-8", None, "Eva", dt.date(1990, 4, 3)),
    }
    assert got == expected


def test_same_person_links_across_organisations_anonymous_ones_do_not():
    a = pseudonym(KEY, "org-a", "1", "Jansen", "Eva", dt.date(2001, 1, 1))
    b = pseudonym(KEY, "org-b", "99", "JANSEN ", "eva", dt.date(2001, 1, 1))
    assert a == b
    assert pseudonym(KEY, "org-a", "1", None, None, None) != pseudonym(KEY, "org-b", "1", None, None, None)
    assert pseudonym(b"another-key-0123456789", "org-a", "1", "Jansen", "Eva", dt.date(2001, 1, 1)) != a
    # Length prefixes keep field boundaries: "ab"+"c" differs from "a"+"bc".
    dob = dt.date(2001, 1, 1)
    assert pseudonym(KEY, "o", "1", "ab", "c", dob) != pseudonym(KEY, "o", "1", "a", "bc", dob)
    # A partial identity (no family name, or no date of birth) never links across organisations.
    assert pseudonym(KEY, "org-a", "1", None, "Eva", dob) != pseudonym(KEY, "org-b", "2", None, "Eva", dob)
    assert pseudonym(KEY, "org-a", "1", "Jansen", "Eva", None) != pseudonym(KEY, "org-b", "2", "Jansen", "Eva", None)


def _submit(tmp_path, rows, *, epsilon="1", **kw):
    home = tmp_path / "home"
    if not (home / "org.toml").exists():
        init_org("shelter-a", "non_investigative", reporter_type="shelter", home=home)
    export, mapping = write_export(tmp_path / "in", rows)
    return submit(
        export, mapping, period=2025, epsilon=Fraction(epsilon), out=tmp_path / "out", home=home,
        linkage_key=KEY, export_date=EXPORT_DATE, **kw,
    )


def _payload(path):
    data = Path(path).read_bytes()
    opened = open_envelope(data)
    return data, opened, parse_payload(opened)


def test_bundle_is_signed_and_carries_only_minimised_records_and_full_cell_sets(tmp_path):
    result = _submit(tmp_path, [row(i) for i in range(60)])
    data, opened, payload = _payload(result.path)
    pub = (tmp_path / "home" / "org.pub").read_text()
    from aggregator.contract.keys import parse_public_key

    verify_envelope(opened, parse_public_key(pub))
    assert result.digest in result.path
    assert payload.release.epsilon == "1" and sum(Fraction(m.epsilon) for m in payload.release.marginals) == 1
    for m in payload.release.marginals:
        expected_cells = 1
        for d in m.dimensions:
            expected_cells *= len(codes(d))
        assert len(m.cells) == expected_cells
    assert set(payload.records[0].model_dump()) == {"pseudonym", "basis", "form", "age_band", "gender", "nationality_group", "province"}
    assert len(payload.records) == result.records_by_basis["consent"] == 20
    # the signed bytes are exactly the canonical JSON of the whole payload as the model dumps it (submit writes the
    # validated records without dumping them through the model)
    dumped = payload.model_dump(mode="json", exclude={"joint"} if payload.joint is None else set())
    assert opened.payload_bytes == canonical_json(dumped)


def test_only_sexual_rows_still_release_every_form_cell(tmp_path):
    rows = [row(i, form="seksuele uitbuiting", consent="nee", consent_date="") for i in range(10)]
    _, _, payload = _payload(_submit(tmp_path, rows).path)
    table = next(m for m in payload.release.marginals if m.dimensions == ["form", "age_band"])
    assert [c.key for c in table.cells] == [[f, a] for f in codes("form") for a in codes("age_band")]
    _, _, payload = _payload(_submit(tmp_path / "eq", rows, workload="equal").path)
    form = next(m for m in payload.release.marginals if m.dimensions == ["form"])
    assert [c.key[0] for c in form.cells] == codes("form")


def test_canaries_never_reach_the_bundle(tmp_path):
    result = _submit(tmp_path, [row(i) for i in range(20)] + canary_rows(), skip_invalid=True)
    data = Path(result.path).read_bytes()
    payload_text = base64.b64decode(json.loads(data)["payload"]).decode()
    for canary in CANARIES + ("Testnaam", "Voornaam", "P000", "D000", "vrije tekst"):
        assert canary not in payload_text and canary not in data.decode()
    assert canary not in json.dumps(result.as_dict())


def test_invalid_rows_refuse_submit_unless_skipped(tmp_path):
    with pytest.raises(ValidationFailed, match="--skip-invalid"):
        _submit(tmp_path, [row(1), row(2, age="999")])
    assert not (tmp_path / "out").exists()


def test_no_exact_count_of_unconsented_people_is_released(tmp_path):
    """Across releases the noisy form cells differ from the exact counts, and no total of them is written anywhere."""
    rows = [row(i, consent="nee", consent_date="") for i in range(40)]  # 10 per form, nobody consented
    exact = {"sexual": 10, "labour": 10, "criminal": 10, "organ_removal": 0, "other_unknown": 10}
    equal_all = 0
    for i in range(5):
        result = _submit(tmp_path / f"r{i}", rows, workload="equal")
        _, _, payload = _payload(result.path)
        form = next(m for m in payload.release.marginals if m.dimensions == ["form"])
        noisy = {c.key[0]: c.count for c in form.cells}
        equal_all += noisy == exact
        text = Path(result.path).read_text()
        assert '"40"' not in text and ":40," not in text
        assert result.records_by_basis == {"statutory": 0, "consent": 0}
        shown = {k: v for k, v in result.as_dict().items() if k not in ("marginals", "digest", "path", "rows_read", "rows_valid")}
        assert "40" not in json.dumps(shown)
    assert equal_all == 0


def test_budget_refusal_writes_nothing(tmp_path):
    _submit(tmp_path, [row(i) for i in range(10)], epsilon="0.75")
    ledger = (tmp_path / "home" / "spending.jsonl").read_bytes()
    listing = sorted(p.name for p in (tmp_path / "out").iterdir())
    with pytest.raises(BudgetExceeded):
        _submit(tmp_path, [row(i) for i in range(10)], epsilon="0.5")
    assert (tmp_path / "home" / "spending.jsonl").read_bytes() == ledger
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == listing


def test_dry_run_writes_and_spends_nothing(tmp_path):
    result = _submit(tmp_path, [row(i) for i in range(10)], dry_run=True)
    assert result.path is None and result.dry_run
    assert not (tmp_path / "out").exists() and not (tmp_path / "home" / "spending.jsonl").exists()


def test_resubmission_takes_the_next_sequence(tmp_path):
    first = _submit(tmp_path, [row(i) for i in range(10)], epsilon="0.25")
    second = _submit(tmp_path, [row(i) for i in range(12)], epsilon="0.25")
    assert (first.sequence, second.sequence) == (1, 2)
    assert second.epsilon_spent == "1/2"


def test_consent_withdrawn_later_is_withdrawn_from_the_earlier_period_at_the_coordinator(tmp_path):
    """2025: person 3 consents and is sent. 2026: the export shows the consent withdrawn; the 2026 bundle carries a
    withdrawal for 2025 and the coordinator removes that record from the 2025 national table."""
    from aggregator.coordinator.national import national_table
    from aggregator.coordinator.merge import merge_bundles
    from aggregator.coordinator.registry import register_org
    from aggregator.contract.keys import read_public_key_file

    home = tmp_path / "home"
    init_org("shelter-w", "non_investigative", reporter_type="shelter", home=home)
    consented = dict(consent="ja", consent_date="01-03-2025")
    rows_2025 = [row(3, **consented), row(6, **consented), row(4, consent="nee", consent_date="")]
    export, mapping = write_export(tmp_path / "in25", rows_2025)
    first = submit(export, mapping, period=2025, epsilon=Fraction(1, 2), out=tmp_path / "out", home=home,
                   linkage_key=KEY, export_date=dt.date(2025, 12, 31))
    assert first.records_by_basis["consent"] == 2 and first.withdrawals == 0
    rows_2026 = [row(3, **consented, consent_withdrawn_date="01-02-2026"), row(6, **consented),
                 row(7, report_date="05-05-2026")]
    export, mapping = write_export(tmp_path / "in26", rows_2026)
    second = submit(export, mapping, period=2026, epsilon=Fraction(1, 2), out=tmp_path / "out", home=home,
                    linkage_key=KEY, export_date=dt.date(2026, 12, 31))
    payload = _payload(second.path)[2]
    gone = pseudonym(KEY, "shelter-w", "P00003", "Testnaam3", "Voornaam3", dt.date(1973, 4, 4))
    assert [(w.pseudonym, w.period) for w in payload.withdrawals] == [(gone, 2025)]

    db = tmp_path / "national.duckdb"
    register_org(db, "shelter-w", kind="non_investigative", reporter_type="shelter",
                       public_key=read_public_key_file(home / "org.pub"))
    merge_bundles(db, [first.path])
    assert national_table(db, 2025, []).total(2025).individual == 2
    merge_bundles(db, [second.path])
    assert national_table(db, 2025, []).total(2025).individual == 1


def test_people_sharing_names_and_birth_date_are_sent_as_one_record_with_a_warning(tmp_path):
    """Two local people (other person ids) with the same names and date of birth, both consented, get one
    pseudonym: the bundle carries one record for them and submit counts the linked person."""
    same = {"family_name": "Jansen", "given_names": "Eva", "date_of_birth": "01-01-1990",
            "consent": "ja", "consent_date": "01-03-2025"}
    rows = [row(1, **same), row(2, **same, form="arbeidsuitbuiting"), row(3, consent="ja", consent_date="01-03-2025")]
    result = _submit(tmp_path, rows)
    _, _, payload = _payload(result.path)
    pseudonyms = [r.pseudonym for r in payload.records]
    assert len(pseudonyms) == len(set(pseudonyms)) == 2
    assert result.records_linked == 1 and result.records_by_basis["consent"] == 2


def _home_state(tmp_path):
    home = tmp_path / "home"
    return sorted((p.name, p.read_bytes()) for p in home.rglob("*") if p.is_file() and p.suffix != ".lock")


def test_a_period_after_the_export_date_is_refused_and_nothing_is_spent(tmp_path):
    from aggregator.errors import UsageError

    rows = [row(i) for i in range(5)]
    _submit(tmp_path, rows, epsilon="1/2")  # a real 2025 release first
    before = _home_state(tmp_path)
    export, mapping = write_export(tmp_path / "in", rows)
    with pytest.raises(UsageError, match="after the export date") as caught:
        submit(export, mapping, period=2030, epsilon=Fraction(1), out=tmp_path / "out2", home=tmp_path / "home",
               linkage_key=KEY, export_date=EXPORT_DATE)
    assert caught.value.option == "period"
    assert _home_state(tmp_path) == before and not (tmp_path / "out2").exists()


def test_a_period_without_rows_in_the_export_is_refused_and_nothing_is_spent(tmp_path):
    from aggregator.errors import InputError
    from aggregator.organisation.spending import SpendingFile

    init_org("shelter-a", "non_investigative", reporter_type="shelter", home=tmp_path / "home")
    export, mapping = write_export(tmp_path / "in", [row(i) for i in range(5)])  # every row reported in 2025
    for dry_run in (True, False):
        with pytest.raises(InputError, match="no valid rows with a report date in 2024"):
            submit(export, mapping, period=2024, epsilon=Fraction(1), out=tmp_path / "out", home=tmp_path / "home",
                   linkage_key=KEY, export_date=EXPORT_DATE, dry_run=dry_run)
    assert SpendingFile(load_org(tmp_path / "home").spending_path).entries() == []
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
