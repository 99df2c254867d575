"""explain.py / `aggregator explain`: exactly what a real bundle carries, and whether its signature verifies."""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.contract.keys import key_id, parse_public_key
from aggregator.contract.envelope import open_envelope, parse_payload
from aggregator.cli import app
from aggregator.contract.codelists import codes
from aggregator.errors import BundleRejected, ConfigError
from aggregator.organisation.explain import explain_bundle
from aggregator.organisation.home import init_org
from aggregator.privacy.workload import DEFAULT_WORKLOAD
from aggregator.organisation.release import submit
from tests import bundlefactory as bf
from tests.orgfactory import CANARIES, canary_rows, row, write_export

import aggregator.cli.report  # noqa: F401  (registers report and explain on the app)

EXPORT_DATE = dt.date(2025, 12, 31)
KEY = b"test-linkage-key-0123456789"
ROWS = 30  # row(i): consent "ja" with a date when i % 3 == 0, so 10 consented people


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explain")
    home = tmp / "home"
    init_org("shelter-a", "non_investigative", reporter_type="shelter", home=home)
    export, mapping = write_export(tmp / "export", [row(i) for i in range(ROWS)] + canary_rows())
    result = submit(export, mapping, period=2025, epsilon=Fraction(1, 2), out=tmp / "out", home=home,
                    linkage_key=KEY, export_date=EXPORT_DATE, skip_invalid=True)
    return home, Path(result.path), result


def test_explains_every_part_of_a_real_bundle(submitted):
    home, path, result = submitted
    e = explain_bundle(path, home=home)
    assert e.organisation == {"id": "shelter-a", "kind": "non_investigative", "reporter_type": "shelter"}
    assert (e.period, e.sequence, e.digest) == (2025, 1, result.digest)
    assert e.bytes == path.stat().st_size
    assert e.records_by_basis == result.records_by_basis and e.records_by_basis["statutory"] == 0
    assert e.records_total == sum(result.records_by_basis.values()) > 0
    assert e.record_fields == ["pseudonym", "basis", "form", "age_band", "gender", "nationality_group", "province"]
    assert set(e.payload_fields) == {
        "schema_version", "codelist_version", "organisation", "key_id", "period", "sequence", "created_at",
        "expires_at", "records", "withdrawals", "release",
    }
    assert e.withdrawals == 0
    assert e.epsilon == "1/2"
    assert sum(Fraction(m["epsilon"]) for m in e.marginals) == Fraction(1, 2)
    assert [tuple(m["dimensions"]) for m in e.marginals] == list(DEFAULT_WORKLOAD)
    for m in e.marginals:
        expected_cells = 1
        for d in m["dimensions"]:
            expected_cells *= len(codes(d))
        assert m["cells"] == expected_cells
        assert m["scale"] == pytest.approx(float(1 / Fraction(m["epsilon"])))
        assert m["expected_error_95"] > 0
    assert e.key_id == key_id(parse_public_key((home / "org.pub").read_text()))
    assert e.signature_verified is True and e.public_key_source == str(home / "org.pub")
    assert e.warnings == []


def test_explanation_never_carries_identifying_values(submitted):
    home, path, _ = submitted
    text = json.dumps(explain_bundle(path, home=home).as_dict())
    for canary in CANARIES:
        assert canary not in text
    payload = parse_payload(open_envelope(path.read_bytes()))
    for record in payload.records:
        assert record.pseudonym not in text


def test_signature_with_another_key_does_not_verify(submitted, tmp_path):
    _, path, _ = submitted
    other = bf.new_org("other-org").public_key_file(tmp_path)
    e = explain_bundle(path, public_key=other, home=tmp_path / "no-home")
    assert e.signature_verified is False
    assert any("not with this public key" in w for w in e.warnings)


def test_without_a_public_key_the_signature_is_not_checked(submitted, tmp_path):
    _, path, _ = submitted
    e = explain_bundle(path, home=tmp_path / "no-home")
    assert e.signature_verified is None and e.public_key_source is None


def test_tampered_bundle_fails_verification(tmp_path):
    org = bf.new_org("shelter-b")
    signed = bf.sign(org, bf.make_payload(org, records=[bf.record(1)], withdrawals=[(bf.pseudonym(9), 2025)],
                                          marginals=[bf.marginal(["form"], "1/4")]))
    tampered = bf.write(tmp_path, bf.edit_payload(signed, lambda p: p["records"].append(
        {**p["records"][0], "pseudonym": bf.pseudonym(2)})))
    e = explain_bundle(tampered, public_key=org.public_key_file(tmp_path))
    assert e.signature_verified is False and e.records_total == 2 and e.withdrawals == 1
    assert any("does not verify" in w for w in e.warnings)
    good = explain_bundle(bf.write(tmp_path, signed), public_key=org.public_key_file(tmp_path))
    assert good.signature_verified is True and good.withdrawals == 1 and good.records_by_basis == {"statutory": 0, "consent": 1}


def test_not_a_bundle_is_refused(tmp_path):
    path = tmp_path / "x.bundle.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(BundleRejected):
        explain_bundle(path)
    with pytest.raises(ConfigError):
        explain_bundle(bf.bundle_file(tmp_path, bf.new_org("shelter-c")), public_key=tmp_path / "missing.pub")


def test_cli_json_equals_library(submitted):
    home, path, _ = submitted
    res = CliRunner().invoke(app, ["explain", str(path), "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == json.loads(json.dumps(explain_bundle(path, home=home).as_dict()))


def test_cli_text_and_refusal(submitted, tmp_path):
    home, path, _ = submitted
    res = CliRunner().invoke(app, ["explain", str(path), "--home", str(home)])
    assert res.exit_code == 0, res.output
    assert "shelter-a" in res.stdout and "verifies" in res.stdout and "Total epsilon" in res.stdout
    assert "form x age_band" in res.stdout
    bad = tmp_path / "bad.bundle.json"
    bad.write_text("not json")
    res = CliRunner().invoke(app, ["explain", str(bad)])
    assert res.exit_code == 1 and "error" in res.output
