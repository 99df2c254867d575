"""Receipts (issue 15, item 3): a coordinator that drops an archived bundle and rebuilds its store with the project's
own rebuild passes `audit` and `budget --verify`, and can then accept a new bundle on the freed budget; the
organisations' receipts, signed by the coordinator under a chain head, catch it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.auditor import audit
from aggregator.cli import app, register_commands
from aggregator.contract.envelope import canonical_json, sign_payload
from aggregator.contract.keys import generate_keypair, read_public_key_file
from aggregator.contract.receipt import RECEIPT_TYPE, read_receipt_file, receipt_filename
from aggregator.coordinator.ledger import verify_ledger
from aggregator.coordinator.merge import merge_bundles
from aggregator.coordinator.store import archive_dir
from aggregator.errors import ReceiptRefused
from aggregator.organisation.home import init_org, load_org
from aggregator.organisation.receipts import keep_receipts
from tests import bundlefactory as bf

register_commands()


def build(tmp_path: Path):
    """A store in which three bundles were merged one run each, every run handing out receipts:
    shelter-a 2025 (a), police-x 2025 (b, spends police-x's whole cap), shelter-a 2024 (c)."""
    db = tmp_path / "coordinator" / "national.duckdb"
    receipts = tmp_path / "receipts"
    shelter, police = bf.new_org("shelter-a"), bf.new_org("police-x", "investigative")
    bf.register(db, shelter, police)
    folder = tmp_path / "in"
    files = {
        "a": bf.bundle_file(folder, shelter, records=[bf.record(1), bf.record(2, form="labour")],
                            marginals=[bf.marginal(["form"], "1/2", {("sexual",): 3})]),
        "b": bf.bundle_file(folder, police, records=[bf.record(3, basis="statutory")],
                            marginals=[bf.marginal(["gender"], "1", fill=2)]),
        "c": bf.bundle_file(folder, shelter, period=2024, records=[bf.record(4)]),
    }
    digests = {}
    for name, path in files.items():
        result = merge_bundles(db, [path], receipts=receipts)
        assert result.accepted == 1
        digests[name] = result.bundles[0].digest
    key = read_public_key_file(db.parent / "coordinator.pub")
    return db, receipts, key, digests, (shelter, police), folder


def drop_and_rebuild(db: Path, digest: str, tmp_path: Path) -> list[str]:
    """The attack: delete one archived bundle, rebuild the store with audit.rebuild_store, put the rebuild in place."""
    (archive_dir(db) / f"{digest}.bundle.json").unlink()
    rebuilt = tmp_path / "rebuilt" / db.name
    problems = audit.rebuild_store(db, rebuilt)
    db.unlink()
    shutil.rmtree(archive_dir(db))
    shutil.move(rebuilt, db)
    shutil.move(archive_dir(rebuilt), archive_dir(db))
    return problems


@pytest.fixture
def store(tmp_path):
    return build(tmp_path)


def test_merge_writes_a_signed_receipt_per_accepted_bundle(store):
    db, receipts, key, digests, _, _ = store
    assert sorted(p.name for p in receipts.iterdir()) == sorted(receipt_filename(d) for d in digests.values())
    r = read_receipt_file(receipts / receipt_filename(digests["b"]), key)
    assert (r.org, r.period, r.digest) == ("police-x", 2025, digests["b"])
    assert r.index == r.head_index == 4  # register x2, a, then b; signed right after its own merge
    key_file = db.parent / "coordinator.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not any(p.name.startswith("coordinator") for p in archive_dir(db).iterdir())


def test_receipts_verify_on_an_honest_store(store):
    db, receipts, key, digests, _, _ = store
    report = audit.audit_store(db, receipts=[receipts], coordinator_key=key)
    assert report.ok, report.as_dict()
    assert report.check(audit.RECEIPTS_CHECK).summary.startswith("3 receipt(s)")


def test_an_honest_rebuild_keeps_every_receipt(store, tmp_path):
    db, receipts, key, _, _, _ = store
    rebuilt = tmp_path / "honest" / db.name
    assert audit.rebuild_store(db, rebuilt) == []
    assert audit.audit_store(rebuilt, receipts=[receipts], coordinator_key=key).check(audit.RECEIPTS_CHECK).ok


def test_dropped_bundle_after_a_rebuild_passes_audit_but_not_audit_with_receipts(store, tmp_path):
    db, receipts, key, digests, (_, police), folder = store
    problems = drop_and_rebuild(db, digests["b"], tmp_path)
    assert problems and "missing" in problems[0]  # the rebuild said so, but the coordinator ran it
    # The gap: the rebuilt store agrees with itself, so audit and budget --verify pass...
    assert audit.audit_store(db).ok
    assert verify_ledger(db).ok
    # ... and police-x's budget for 2025 is free again: a new bundle spending all of it is accepted.
    again = bf.bundle_file(folder, police, sequence=2, marginals=[bf.marginal(["gender"], "1", fill=5)])
    assert merge_bundles(db, [again]).accepted == 1
    assert audit.audit_store(db).ok and verify_ledger(db).ok
    # The receipts catch it: b's receipt (its entry is gone) and c's (signed under a head after b) fail; a's
    # receipt was signed before b was merged and still holds.
    report = audit.audit_store(db, receipts=[receipts], coordinator_key=key)
    assert report.failed == [audit.RECEIPTS_CHECK]
    found = report.check(audit.RECEIPTS_CHECK).problems
    named = {name: any(receipt_filename(digests[name]) in p for p in found) for name in digests}
    assert named == {"a": False, "b": True, "c": True}, found
    assert any("no longer" in p for p in found if receipt_filename(digests["b"]) in p)


def test_audit_cli_with_receipts_fails_with_exit_1_naming_the_dropped_bundles_receipt(store, tmp_path):
    db, receipts, key, digests, _, _ = store
    args = ["audit", "--db", str(db), "--receipts", str(receipts), "--coordinator-key", str(db.parent / "coordinator.pub")]
    assert CliRunner().invoke(app, args, env={"COLUMNS": "300"}).exit_code == 0
    drop_and_rebuild(db, digests["b"], tmp_path)
    assert CliRunner().invoke(app, ["audit", "--db", str(db)]).exit_code == 0
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert receipt_filename(digests["b"])[:12] in result.output and "receipts" in result.output
    shown = CliRunner().invoke(app, [*args, "--json"])
    assert shown.exit_code == 1
    checks = {c["name"]: c for c in json.loads(shown.stdout)["checks"]}
    assert any(receipt_filename(digests["b"]) in p for p in checks["receipts"]["problems"])


def _forged(receipt_path: Path, change, signer) -> bytes:
    from aggregator.contract.envelope import open_envelope

    document = json.loads(open_envelope(receipt_path.read_bytes(), payload_type=RECEIPT_TYPE).payload_bytes)
    change(document)
    return sign_payload(canonical_json(document), signer, payload_type=RECEIPT_TYPE)


def test_a_forged_receipt_is_refused(store, tmp_path):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    db, receipts, key, digests, _, _ = store
    original = receipts / receipt_filename(digests["a"])
    attacker = load_pem_private_key(generate_keypair()[0], password=None)
    forged = tmp_path / "forged" / original.name
    forged.parent.mkdir()
    forged.write_bytes(_forged(original, lambda d: None, attacker))  # the same words, another signer
    with pytest.raises(ReceiptRefused, match="signature does not verify"):
        read_receipt_file(forged, key)
    # An edited receipt with the coordinator's signature kept: the signature no longer covers it.
    data = json.loads(original.read_bytes())
    payload = json.loads(__import__("base64").b64decode(data["payload"]))
    payload["index"] = 1
    data["payload"] = __import__("base64").b64encode(canonical_json(payload)).decode()
    edited = tmp_path / "forged" / "edited.receipt.json"
    edited.write_bytes(canonical_json(data))
    report = audit.audit_store(db, receipts=[forged, edited], coordinator_key=key)
    problems = report.check(audit.RECEIPTS_CHECK).problems
    assert not report.ok and len(problems) == 2
    assert all("signature does not verify" in p for p in problems), problems


def test_a_receipt_for_another_store_is_refused(store, tmp_path):
    db, receipts, key, digests, (shelter, _), _ = store
    # A second store run by the same coordinator with the same key, with the same organisation and bundle.
    other = tmp_path / "other" / "national.duckdb"
    bf.register(other, shelter)
    shutil.copy(db.parent / "coordinator.key", tmp_path / "other" / "coordinator.key")
    other_receipts = tmp_path / "other-receipts"
    bundle = archive_dir(db) / f"{digests['a']}.bundle.json"
    assert merge_bundles(other, [bundle], receipts=other_receipts).accepted == 1
    report = audit.audit_store(db, receipts=[other_receipts], coordinator_key=key)
    (problem,) = report.check(audit.RECEIPTS_CHECK).problems
    assert "another store" in problem and receipt_filename(digests["a"]) in problem
    # And the other way round, with another coordinator's key: the signature does not verify.
    other_key = read_public_key_file(tmp_path / "other" / "coordinator.pub")
    assert other_key == key
    (tmp_path / "third").mkdir()
    third = tmp_path / "third" / "national.duckdb"
    bf.register(third, shelter)
    third_receipts = tmp_path / "third-receipts"
    merge_bundles(third, [bundle], receipts=third_receipts)
    report = audit.audit_store(db, receipts=[third_receipts], coordinator_key=key)
    assert "signature does not verify" in report.check(audit.RECEIPTS_CHECK).problems[0]


def test_a_duplicate_merge_hands_out_the_receipt_again(store, tmp_path):
    db, _, key, digests, _, _ = store
    again = tmp_path / "again"
    result = merge_bundles(db, [archive_dir(db) / f"{digests['a']}.bundle.json"], receipts=again)
    assert result.duplicate == 1 and list(result.receipts) == [digests["a"]]
    r = read_receipt_file(again / receipt_filename(digests["a"]), key)
    assert (r.index, r.head_index) == (3, 5)


def test_the_organisation_keeps_verified_receipts_beside_its_kept_bundles(store, tmp_path):
    db, receipts, key, digests, (shelter, _), _ = store
    home = tmp_path / "home"
    init_org("shelter-a", "non_investigative", reporter_type="shelter", home=home)
    org = load_org(home)
    (home / "releases").mkdir()
    for name in ("a", "c"):  # what submit kept
        shutil.copy(archive_dir(db) / f"{digests[name]}.bundle.json", home / "releases")
    kept = keep_receipts(org, [receipts / receipt_filename(digests[n]) for n in ("a", "c")], key)
    assert [k.status for k in kept] == ["kept", "kept"]
    assert (home / "releases" / receipt_filename(digests["a"])).is_file()
    with pytest.raises(ReceiptRefused, match="not shelter-a"):  # police-x's receipt
        keep_receipts(org, [receipts / receipt_filename(digests["b"])], key)
    # The CLI: a receipt that does not verify is refused with exit code 1 and no traceback.
    stranger = tmp_path / "stranger.pub"
    stranger.write_text(bf.new_org("x-y").public_key_file(tmp_path).read_text())
    result = CliRunner().invoke(app, ["org", "receipt", "add", str(receipts), "--coordinator-key", str(stranger),
                                      "--home", str(home)])
    assert result.exit_code == 1 and "signature does not verify" in result.output
    assert "Traceback" not in result.output
    # The auditor takes the home's releases folder as it is.
    assert audit.audit_store(db, receipts=[home / "releases"], coordinator_key=key).ok
