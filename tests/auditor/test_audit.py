"""Audit: a healthy store passes every check; direct edits to the database, the archive or the ledger fail the
check that names them."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from aggregator.contract.envelope import canonical_json, sha256_hex
from typer.testing import CliRunner

from aggregator.auditor import audit
from aggregator.errors import ConfigError
from aggregator.coordinator.ledger import entry_hash, GENESIS_HASH
from aggregator.coordinator.store import archive_dir, open_store
from aggregator.coordinator.merge import merge_bundles
from aggregator.contract.keys import read_public_key_file
from aggregator.coordinator.registry import register_org, revoke_org, rotate_key
from aggregator.cli import app
from tests import bundlefactory as bf


def build_store(tmp_path):
    """A store with two organisations, records, noisy releases, a superseding bundle, a withdrawal, a key rotation,
    a revoked organisation and two periods."""
    db = tmp_path / "national.duckdb"
    folder = tmp_path / "in"
    shelter = bf.new_org("shelter-a")
    police = bf.new_org("police-x", "investigative")
    gone = bf.new_org("help-gone", reporter_type="help_line")
    for org in (shelter, police, gone):
        bf.register(db, org)
    first = [
        bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(1), bf.record(2, form="labour")],
                       marginals=[bf.marginal(["form"], "1/4", {("sexual",): 3}),
                                  bf.marginal(["form", "age_band"], "1/4", fill=1)]),
        bf.bundle_file(folder, police, records=[bf.record(1, basis="statutory"), bf.record(3, basis="statutory")]),
        bf.bundle_file(folder, gone, period=2024, marginals=[bf.marginal(["gender"], "1/2", fill=2)]),
    ]
    assert merge_bundles(db, first).accepted == 3
    second = bf.bundle_file(
        folder, shelter, sequence=2, records=[bf.record(4, age_band="15_17")], withdrawals=[(bf.pseudonym(2), 2025)],
        marginals=[bf.marginal(["nationality_group"], "1/3", {("EU",): 5})],
    )
    assert merge_bundles(db, [second]).accepted == 1
    revoke_org(db, "help-gone")
    new_police = police.rotated()
    rotate_key(db, "police-x", new_police.raw_public)
    third = bf.bundle_file(folder, new_police, sequence=2, records=[bf.record(9, basis="statutory", form="criminal")])
    assert merge_bundles(db, [third]).accepted == 1
    return db


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("healthy"))


@pytest.fixture
def fresh(tmp_path):
    return build_store(tmp_path)


def test_healthy_store_passes_every_check(healthy):
    report = audit.audit_store(healthy)
    assert [c.name for c in report.checks] == list(audit.CHECKS)
    assert report.ok, report.as_dict()
    assert report.failed == []
    assert (report.bundles, report.archive_files) == (5, 5)
    assert report.ledger_entries == 3 + 5 + 2  # register x3, accept x5, revoke, rotate


def test_the_rebuild_reproduces_the_national_table(healthy, tmp_path):
    rebuilt = tmp_path / "rebuilt.duckdb"
    assert audit.rebuild_store(healthy, rebuilt) == []
    live = audit.national_snapshot(healthy)
    assert live == audit.national_snapshot(rebuilt)
    # The comparison sees real content: period 2025 has individual and noisy counts.
    totals = [v for (period, _, total), v in live[("nationality_group",)].items() if total and period == 2025]
    assert totals and totals[0][0] > 0 and totals[0][1] != 0


def test_empty_store_passes(tmp_path):
    db = tmp_path / "national.duckdb"
    bf.register(db, bf.new_org("shelter-a"))
    assert audit.audit_store(db).ok


def _sql(db, statement, params=()):
    with open_store(db) as con:
        con.execute(statement, list(params))


def test_edited_record_fails_rebuild_store_and_national(fresh):
    _sql(fresh, "UPDATE records SET form = 'organ_removal' WHERE pseudonym = ?", [bf.pseudonym(4)])
    report = audit.audit_store(fresh)
    assert not report.ok
    assert set(report.failed) == {"rebuild-store", "rebuild-national"}
    assert "records" in report.check("rebuild-store").summary
    assert "form" in report.check("rebuild-national").summary


def test_edited_noisy_count_fails_national(fresh):
    _sql(fresh, "UPDATE noisy_cells SET count = count + 100 WHERE gender = 'female'")  # a live 2024 release
    report = audit.audit_store(fresh)
    assert set(report.failed) == {"rebuild-store", "rebuild-national"}


def test_deleted_archive_file_fails_coverage_and_rebuild(fresh):
    victim = sorted(archive_dir(fresh).glob("*.bundle.json"))[0]
    victim.unlink()
    report = audit.audit_store(fresh)
    assert {"archive-coverage", "rebuild"} <= set(report.failed)
    assert victim.name[:12] in report.check("archive-coverage").summary
    assert "missing" in report.check("rebuild").summary


def test_archive_file_without_bundle_row_fails_coverage(fresh, tmp_path):
    shelter_like = bf.new_org("ghost-org")
    data = bf.sign(shelter_like, bf.make_payload(shelter_like, records=[bf.record(1)]))
    (archive_dir(fresh) / f"{sha256_hex(data)}.bundle.json").write_bytes(data)
    report = audit.audit_store(fresh)
    assert {"archive-coverage", "archive-signatures", "rebuild"} <= set(report.failed)
    assert "not in the registry" in report.check("archive-signatures").summary


def test_changed_archive_bytes_fail_signatures(fresh):
    victim = sorted(archive_dir(fresh).glob("*.bundle.json"))[0]
    envelope = json.loads(victim.read_bytes())
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[0] ^= 1
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    victim.write_bytes(canonical_json(envelope))
    report = audit.audit_store(fresh)
    assert "archive-signatures" in report.failed
    problems = " ".join(report.check("archive-signatures").problems)
    assert "hash to" in problems and "bad-signature" in problems


def test_edited_ledger_entry_fails_chain(fresh):
    with open_store(fresh) as con:
        idx, text = con.execute("SELECT idx, entry FROM ledger WHERE event = 'accept' ORDER BY idx LIMIT 1").fetchone()
        entry = json.loads(text)
        entry["spent"] = "1/100"
        con.execute("UPDATE ledger SET entry = ? WHERE idx = ?", [canonical_json(entry).decode(), idx])
    report = audit.audit_store(fresh)
    assert "ledger-chain" in report.failed
    assert f"ledger entry {idx}" in report.check("ledger-chain").summary
    assert "rebuild-ledger" in report.failed


def test_rehashed_ledger_still_fails_against_the_rebuild(fresh):
    """Someone who rewrites the chain consistently (new hashes) still cannot match the rebuild from the archive."""
    with open_store(fresh) as con:
        rows = con.execute("SELECT idx, entry FROM ledger ORDER BY idx").fetchall()
        prev = GENESIS_HASH
        for idx, text in rows:
            entry = json.loads(text)
            if entry["event"] == "register" and entry["org"] == "shelter-a":
                entry["cap"] = "5"
            entry["prev_hash"] = prev
            h = entry_hash(entry)
            con.execute(
                "UPDATE ledger SET entry = ?, prev_hash = ?, hash = ? WHERE idx = ?",
                [canonical_json(entry).decode(), prev, h, idx],
            )
            prev = h
        con.execute("UPDATE organisations SET cap = '5' WHERE id = 'shelter-a'")
    report = audit.audit_store(fresh)
    # The chain and the registry are consistent with each other now; only the replay of the archived bundles
    # shows that the accept entries were written under another cap.
    assert report.failed == ["rebuild-ledger"]


def test_edited_registry_fails_rebuild_registry(fresh):
    _sql(fresh, "UPDATE organisations SET cap = '7' WHERE id = 'police-x'")
    report = audit.audit_store(fresh)
    assert report.failed == ["rebuild-registry"]
    assert "organisations" in report.check("rebuild-registry").summary


def test_deleted_bundle_row_fails(fresh):
    with open_store(fresh) as con:
        digest = con.execute("SELECT digest FROM bundles ORDER BY ledger_index DESC LIMIT 1").fetchone()[0]
        con.execute("DELETE FROM records WHERE digest = ?", [digest])
        con.execute("DELETE FROM bundles WHERE digest = ?", [digest])
    report = audit.audit_store(fresh)
    assert {"ledger-chain", "archive-coverage", "rebuild-store", "rebuild-national"} <= set(report.failed)


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError):
        audit.audit_store(tmp_path / "none.duckdb")


# ------------------------------------------------------------------ CLI

runner = CliRunner()


def _load_cli():
    """Register every command group, as `aggregator.cli.main()` does."""
    import importlib

    from aggregator import cli

    for group in cli.COMMAND_GROUPS:
        try:
            importlib.import_module(f"aggregator.cli.{group}")
        except ModuleNotFoundError as exc:
            if exc.name != f"aggregator.cli.{group}":
                raise


def test_cli_healthy_table(healthy):
    _load_cli()
    result = runner.invoke(app, ["audit", "--db", str(healthy)])
    assert result.exit_code == 0, result.output
    for name in audit.CHECKS:
        assert name in result.output
    assert "PASS" in result.output and "FAIL" not in result.output and "all checks pass" in result.output


def test_cli_json_and_table_on_tamper(fresh):
    _load_cli()
    _sql(fresh, "UPDATE records SET age_band = 'under_15'")
    as_json = runner.invoke(app, ["audit", "--db", str(fresh), "--json"])
    assert as_json.exit_code == 1
    data = json.loads(as_json.output)
    assert data["ok"] is False and [c["name"] for c in data["checks"]] == list(audit.CHECKS)
    assert data["failed"] == ["rebuild-store", "rebuild-national"]
    bad = runner.invoke(app, ["audit", "--db", str(fresh)])
    assert bad.exit_code == 1
    assert "FAIL" in bad.output and "2 check(s) failed" in bad.output


def test_cli_missing_store(tmp_path):
    _load_cli()
    result = runner.invoke(app, ["audit", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 1
    assert "no coordinator store" in result.output


def test_real_submit_bundles_audit_clean(tmp_path):
    """Bundles from `submit` (OpenDP noise, SQL pseudonyms), one organisation resubmitting: audit passes."""
    from fractions import Fraction

    from aggregator.organisation import home as orgmod
    from aggregator.organisation.release import submit
    from tests import orgfactory

    db = tmp_path / "national.duckdb"
    key = b"a shared linkage key of enough length"
    export, mapping = orgfactory.write_export(tmp_path / "export", [orgfactory.row(i) for i in range(1, 30)])
    paths = []
    for org_id, kind, reporter in (("shelter-noord", "non_investigative", "shelter"), ("police-oost", "investigative", "police")):
        home = tmp_path / org_id
        config = orgmod.init_org(org_id, kind, reporter_type=reporter, home=home)
        register_org(db, org_id, kind=kind, reporter_type=reporter,
                           public_key=read_public_key_file(config.public_key_path))
        for eps in ("1/2", "1/4"):  # a corrected resubmission spends again
            result = submit(export, mapping, period=2025, epsilon=Fraction(eps), out=tmp_path / "outbox",
                                    home=home, linkage_key=key, export_date=dt.date(2025, 12, 31))
            paths.append(result.path)
    merged = merge_bundles(db, paths)
    assert merged.accepted == 4, merged.as_dict()
    report = audit.audit_store(db)
    assert report.ok, report.failed
    assert report.bundles == 4


def test_runs_at_the_same_instant_replay_in_ledger_order(tmp_path):
    """Two merge runs with the same clock: the rebuild must not fold them into one run (which would re-sort them)."""
    db = tmp_path / "national.duckdb"
    folder = tmp_path / "in"
    shelter, police = bf.new_org("shelter-a"), bf.new_org("police-x", "investigative")
    bf.register(db, shelter)
    bf.register(db, police)
    now = bf.NOW
    assert merge_bundles(db, [bf.bundle_file(folder, shelter, records=[bf.record(1)])], now=now).accepted == 1
    assert merge_bundles(
        db, [bf.bundle_file(folder, police, records=[bf.record(1, basis="statutory")])], now=now
    ).accepted == 1
    assert audit.rebuild_store(db, tmp_path / "rebuilt.duckdb") == []
    report = audit.audit_store(db)
    assert report.ok, report.failed


def test_rebuild_flags_history_that_breaks_the_receipt_time_rules(tmp_path, monkeypatch):
    """A store merged by a coordinator that judged times by the signer's claims (a retired key with a backdated
    created_at, a lifetime to 2099) fails the audit: the rebuild replays at the recorded receipt times."""
    from aggregator.coordinator import admission

    db = tmp_path / "national.duckdb"
    folder = tmp_path / "in"
    shelter = bf.new_org("shelter-a")
    bf.register(db, shelter)
    rotate_key(db, "shelter-a", shelter.rotated().raw_public, now=bf.NOW - dt.timedelta(hours=2))
    created = bf.NOW - dt.timedelta(days=1)
    backdated = bf.bundle_file(folder, shelter, records=[bf.record(1)], created_at=created)
    monkeypatch.setattr(admission, "check_times", lambda *a, **k: None)  # the lax rule of earlier versions
    assert merge_bundles(db, [backdated]).accepted == 1
    monkeypatch.undo()
    problems = audit.rebuild_store(db, tmp_path / "rebuilt.duckdb")
    assert any("replays as refused (retired-key)" in p for p in problems), problems
    assert not audit.audit_store(db).ok
