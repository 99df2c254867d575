"""Withdrawals: matched by local person id against what the kept bundles recorded (kept in the home, never sent),
and applied by the coordinator whatever the order of the bundles' clocks."""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction

import pytest

from aggregator.contract.envelope import open_envelope, parse_payload, read_bundle_file
from aggregator.organisation.home import init_org
from aggregator.organisation.pseudonyms import pseudonym
from aggregator.organisation.release import submit
from tests.orgfactory import CANARY_ID, CANARY_NAME, row, write_export

KEY = b"test-linkage-key-0123456789"
YES = dict(consent="ja", consent_date="01-03-2025")
SENT = pseudonym(KEY, "shelter-w", "P00003", "Testnaam3", "Voornaam3", dt.date(1973, 4, 4))


def _payload(path):
    from pathlib import Path

    return parse_payload(open_envelope(read_bundle_file(Path(path))))


def _two_submits(tmp_path, rows_2026, *, monkeypatch=None, second_clock=None):
    home = tmp_path / "home"
    init_org("shelter-w", "non_investigative", reporter_type="shelter", home=home)
    export, mapping = write_export(tmp_path / "in25", [row(3, **YES), row(6, **YES)])
    first = submit(export, mapping, period=2025, epsilon=Fraction(1, 2), out=tmp_path / "out", home=home,
                   linkage_key=KEY, export_date=dt.date(2025, 12, 31))
    assert SENT in {r.pseudonym for r in _payload(first.path).records}
    if second_clock is not None:
        import aggregator.organisation.release as release

        monkeypatch.setattr(release, "utc_now", lambda: second_clock)
    export, mapping = write_export(tmp_path / "in26", [*rows_2026, row(7, report_date="05-05-2026")])
    second = submit(export, mapping, period=2026, epsilon=Fraction(1, 2), out=tmp_path / "out", home=home,
                    linkage_key=KEY, export_date=dt.date(2026, 12, 31))
    return home, first, second


WITHDRAWN = dict(consent="ja", consent_date="01-03-2025", consent_withdrawn_date="01-02-2026")


@pytest.mark.parametrize(
    "changed",
    [
        {"date_of_birth": "05-04-1973"},  # a corrected date of birth
        {"given_names": "Anna"},  # a new given name
        {"date_of_birth": ""},  # the date of birth is gone
        {"family_name": "", "given_names": "", "date_of_birth": ""},  # no identifying field left but the person id
    ],
)
def test_a_withdrawal_is_found_by_the_local_person_id_when_the_names_or_birth_date_changed(tmp_path, changed):
    _, first, second = _two_submits(tmp_path, [row(3, **WITHDRAWN, **changed), row(6, **YES)])
    withdrawals = _payload(second.path).withdrawals
    assert [(w.pseudonym, w.period, w.sequence) for w in withdrawals] == [(SENT, 2025, 1)]
    assert second.withdrawals == 1


def test_a_newer_row_saying_no_withdraws_the_earlier_record_and_an_absent_person_is_not_withdrawn(tmp_path):
    """Person 3 says no in 2026 (no withdrawal date); person 6, also sent in 2025, is not in the 2026 export."""
    _, _, second = _two_submits(tmp_path, [row(3, report_date="05-05-2026", consent="nee", consent_date="")])
    assert [(w.pseudonym, w.period) for w in _payload(second.path).withdrawals] == [(SENT, 2025)]


def test_the_home_records_local_person_ids_and_the_bundle_never_carries_them(tmp_path):
    home, first, _ = _two_submits(tmp_path, [row(3, **WITHDRAWN), row(6, **YES)])
    sidecars = sorted((home / "releases").glob("*.people.json"))
    assert len(sidecars) == 2
    kept = json.loads((home / "releases" / f"{first.digest}.people.json").read_text(encoding="utf-8"))
    assert kept["period"] == 2025 and kept["sequence"] == 1
    assert kept["people"][SENT] == ["P00003"]
    assert (sidecars[0].stat().st_mode & 0o077) == 0  # readable by the owner only
    out = (tmp_path / "out")
    for path in out.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "P00003" not in text and "people.json" not in text
    assert not list(out.glob("*.people.json"))


def test_canary_person_ids_never_reach_the_bundle_with_a_withdrawal(tmp_path):
    import base64

    home = tmp_path / "home"
    init_org("shelter-w", "non_investigative", reporter_type="shelter", home=home)
    canary = dict(person_id=CANARY_ID, family_name=CANARY_NAME)
    export, mapping = write_export(tmp_path / "a", [row(3, **YES, **canary), row(6, **YES)])
    submit(export, mapping, period=2025, epsilon=Fraction(1, 2), out=tmp_path / "out", home=home,
           linkage_key=KEY, export_date=dt.date(2025, 12, 31))
    export, mapping = write_export(tmp_path / "b", [row(3, **WITHDRAWN, **canary, date_of_birth=""), row(7, report_date="05-05-2026")])
    second = submit(export, mapping, period=2026, epsilon=Fraction(1, 2), out=tmp_path / "out", home=home,
                    linkage_key=KEY, export_date=dt.date(2026, 12, 31))
    assert second.withdrawals == 1
    envelope = json.loads((tmp_path / "out" / f"{second.digest}.bundle.json").read_text(encoding="utf-8"))
    payload = base64.b64decode(envelope["payload"]).decode("utf-8")
    assert CANARY_ID not in payload and CANARY_NAME not in payload


def test_an_orphaned_kept_bundle_takes_its_person_ids_with_it(tmp_path):
    from aggregator.organisation.home import load_org
    from aggregator.organisation.release import remove_orphans
    from aggregator.organisation.spending import SpendingFile

    home, first, _ = _two_submits(tmp_path, [row(6, **YES), row(7, report_date="05-05-2026")])
    org = load_org(home)
    spending = SpendingFile(org.spending_path, org.cap_fraction)
    (home / "releases" / ("0" * 64 + ".people.json")).write_text("{}", encoding="utf-8")
    removed = remove_orphans(org, spending)
    assert removed == ["0" * 64 + ".people.json"]
    assert (home / "releases" / f"{first.digest}.people.json").exists()


def _national_2025(tmp_path, home, *paths):
    from aggregator.contract.keys import read_public_key_file
    from aggregator.coordinator.merge import merge_bundles
    from aggregator.coordinator.national import national_table
    from aggregator.coordinator.registry import register_org

    db = tmp_path / "national.duckdb"
    register_org(db, "shelter-w", kind="non_investigative", reporter_type="shelter",
                 public_key=read_public_key_file(home / "org.pub"))
    for path in paths:
        merge_bundles(db, [path])
    return national_table(db, 2025, []).total(2025).individual


def test_a_withdrawal_signed_with_an_earlier_clock_than_the_bundle_it_withdraws_from_still_applies(tmp_path, monkeypatch):
    """The 2025 bundle was signed with a clock two days ahead of the one that signs the 2026 withdrawal."""
    earlier = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    home, first, second = _two_submits(tmp_path, [row(3, **WITHDRAWN), row(6, **YES)],
                                       monkeypatch=monkeypatch, second_clock=earlier)
    assert _payload(second.path).created_at < _payload(first.path).created_at
    assert _national_2025(tmp_path, home, first.path, second.path) == 1
