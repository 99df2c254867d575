"""Coordinator store: migrations, registry, merge rules (replay, rollback, budget), archive and hash-chained ledger."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from aggregator.contract.envelope import canonical_json, open_envelope, parse_payload, sha256_hex, verify_envelope
from aggregator.coordinator.ledger import export_ledger, GENESIS_HASH, ledger_entries, verify_ledger, verify_ledger_file
from aggregator.coordinator.migrations import MIGRATIONS
from aggregator.coordinator import merge as merge_module
from aggregator.coordinator.admission import _key_info
from aggregator.util.clock import store_now
from aggregator.coordinator.store import archive_dir, evidence_dir, open_store, schema_version
from aggregator.coordinator.budget import budget_report
from aggregator.coordinator.registry import list_orgs, register_org, revoke_org, rotate_key
from aggregator.coordinator.merge import merge_bundles
from aggregator.contract.keys import read_public_key_file
from aggregator.errors import ConfigError, InputError, StoreBusy, UsageError
from aggregator.auditor import audit
from tests import bundlefactory as bf

TABLES = ("organisations", "org_keys", "bundles", "records", "marginals", "noisy_cells", "withdrawals", "ledger")


def snapshot(db: Path) -> tuple:
    """Everything a query could see: every table and the archive folder."""
    with open_store(db, write=False) as con:
        tables = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}
    archive = sorted((p.name, p.read_bytes()) for p in archive_dir(db).glob("*"))
    return tables, archive


def merge(db, *paths, **kw):
    return merge_bundles(db, list(paths), **kw)


# ------------------------------------------------------------------ store basics

def test_store_is_created_with_versioned_schema(tmp_path):
    db = tmp_path / "sub" / "national.duckdb"
    bf.register(db, bf.new_org("shelter-a"))
    assert db.exists()
    assert schema_version(db) == len(MIGRATIONS)
    with open_store(db) as con:  # reopening applies nothing twice
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


def test_reading_a_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no coordinator store"):
        list_orgs(tmp_path / "absent.duckdb")


def test_store_from_a_newer_version_is_refused(tmp_path):
    db = tmp_path / "national.duckdb"
    bf.register(db, bf.new_org("shelter-a"))
    with open_store(db) as con:
        con.execute("INSERT INTO schema_version VALUES (99, now()::timestamp)")
    with pytest.raises(ConfigError, match="newer"):
        list_orgs(db)


# ------------------------------------------------------------------ registry

def test_registry_add_list_and_errors(tmp_path):
    db = tmp_path / "national.duckdb"
    org = bf.new_org("shelter-a")
    entry = register_org(db, org.id, kind="non_investigative", reporter_type="shelter", public_key=org.raw_public, cap="0.5")
    assert (entry.cap, entry.status, [k.keyid for k in entry.keys]) == ("1/2", "active", [org.keyid])
    with pytest.raises(ConfigError, match="already registered"):
        bf.register(db, org)
    other = bf.new_org("shelter-b")
    with pytest.raises(ConfigError, match="already registered"):  # the same key for a second organisation
        register_org(db, "shelter-b", kind="non_investigative", reporter_type="shelter", public_key=org.raw_public)
    with pytest.raises(UsageError, match="organisation kind must be one of"):
        register_org(db, "x-1", kind="police", reporter_type="police", public_key=other.raw_public)
    with pytest.raises(UsageError, match="does not fit"):
        register_org(db, "x-1", kind="non_investigative", reporter_type="police", public_key=other.raw_public)
    with pytest.raises(UsageError, match="epsilon cap") as refused:
        register_org(db, "x-1", kind="non_investigative", reporter_type="shelter", public_key=other.raw_public, cap="0")
    assert refused.value.option == "cap" and "--" not in refused.value.message
    assert [o.id for o in list_orgs(db)] == ["shelter-a"]


def test_public_key_file_round_trip(tmp_path):
    org = bf.new_org("shelter-a")
    assert read_public_key_file(org.public_key_file(tmp_path)) == org.raw_public
    with pytest.raises(ConfigError):
        read_public_key_file(tmp_path / "missing.pub")


# ------------------------------------------------------------------ accepting

def test_accepted_bundle_is_archived_byte_for_byte_and_ingested(world):
    db, shelter, police, folder = world
    path = bf.bundle_file(
        folder, shelter, records=[bf.record(1), bf.record(2)],
        withdrawals=[(bf.pseudonym(9), 2024)],
        marginals=[bf.marginal(["form"], "1/2", {("labour",): 4})],
    )
    result = merge(db, path)
    assert result.as_dict()["accepted"] == 1 and result.ok
    digest = sha256_hex(path.read_bytes())
    archived = archive_dir(db) / f"{digest}.bundle.json"
    assert archived.read_bytes() == path.read_bytes()
    with open_store(db, write=False) as con:
        assert con.execute("SELECT count(*) FROM records WHERE digest = ?", [digest]).fetchone()[0] == 2
        assert con.execute("SELECT count(*) FROM noisy_cells WHERE digest = ?", [digest]).fetchone()[0] == 5
        assert con.execute("SELECT count FROM noisy_cells WHERE form = 'labour'").fetchone()[0] == 4
        assert con.execute("SELECT pseudonym, period FROM withdrawals").fetchall() == [(bf.pseudonym(9), 2024)]
        # a withdrawal of a record never sent is accepted but flagged for auditors
        assert "withdrawal" in con.execute("SELECT flagged FROM bundles").fetchone()[0]


def test_same_bundle_twice_is_a_duplicate_that_changes_nothing(world):
    db, shelter, _, folder = world
    path = bf.bundle_file(folder, shelter, records=[bf.record(1)], marginals=[bf.marginal(["form"], "1/2")])
    merge(db, path)
    before = snapshot(db)
    result = merge(db, path, path)
    assert [b.status for b in result.bundles] == ["duplicate", "duplicate"]
    assert snapshot(db) == before
    assert budget_report(db, org="shelter-a").budgets[0].spent == "1/2"


def test_higher_sequence_supersedes_but_both_spend(world):
    db, shelter, _, folder = world
    one = bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(1)], marginals=[bf.marginal(["form"], "1/4")])
    two = bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(2)], marginals=[bf.marginal(["form"], "1/2")])
    result = merge(db, two, one)  # command-line order does not matter within a run
    assert [b.status for b in result.bundles] == ["accepted", "accepted"]
    assert result.superseded == 1
    d1, d2 = (sha256_hex(p.read_bytes()) for p in (one, two))
    with open_store(db, write=False) as con:
        assert con.execute("SELECT digest, superseded_by FROM bundles ORDER BY sequence").fetchall() == [(d1, d2), (d2, None)]
    budget = budget_report(db, org="shelter-a").budgets[0]
    assert (budget.spent, budget.remaining) == ("3/4", "1/4")
    assert [r.sequence for r in budget.releases] == [1, 2]


def test_lower_sequence_in_a_later_run_is_a_refused_rollback(world):
    db, shelter, _, folder = world
    one = bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(1)])
    two = bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(2)])
    merge(db, two)
    before = snapshot(db)
    result = merge(db, one)
    assert (result.bundles[0].status, result.bundles[0].reason) == ("refused", "stale-sequence")
    assert snapshot(db) == before


def test_budget_is_exact_fractions_not_floats(world, tmp_path):
    db, _, _, folder = world
    org = bf.new_org("help-line")
    bf.register(db, org, cap="0.3")
    # 0.1 + 0.1 + 0.1 > 0.3 in floating point; exactly 3/10 here
    paths = [
        bf.bundle_file(folder, org, sequence=s, marginals=[bf.marginal(["form"], "0.1")]) for s in (1, 2, 3)
    ]
    assert merge(db, *paths).accepted == 3
    budget = budget_report(db, org="help-line").budgets[0]
    assert (budget.spent, budget.spent_decimal, budget.remaining) == ("3/10", "0.3", "0")
    extra = bf.bundle_file(folder, org, sequence=4, marginals=[bf.marginal(["form"], "1/1000000")])
    assert merge(db, extra).bundles[0].reason == "over-budget"


def test_sevenths_fill_a_cap_of_one_exactly(world):
    db, _, _, folder = world
    org = bf.new_org("muni-z", reporter_type="municipality")
    bf.register(db, org)
    paths = [bf.bundle_file(folder, org, sequence=s, marginals=[bf.marginal(["gender"], "1/7")]) for s in range(1, 8)]
    assert merge(db, *paths).accepted == 7
    budget = budget_report(db, org="muni-z", period=2025).budgets[0]
    assert (budget.spent, budget.remaining) == ("1", "0")


def test_release_epsilon_text_forms_are_normalised(world):
    db, shelter, _, folder = world
    path = bf.bundle_file(folder, shelter, marginals=[bf.marginal(["form"], "0.25"), bf.marginal(["gender"], "1/4")])
    outcome = merge(db, path).bundles[0]
    assert outcome.epsilon == "1/2"
    entry = ledger_entries(db)[-1]
    assert [m["epsilon"] for m in entry["marginals"]] == ["1/4", "1/4"]


# ------------------------------------------------------------------ refusals leave the store unchanged

def _refusal_cases():
    """name -> (build(db, shelter, police, folder) -> bundle path, expected reason)."""

    def unknown_org(db, shelter, police, folder):
        ghost = bf.new_org("ghost-org")
        return bf.bundle_file(folder, ghost, records=[bf.record(1)])

    def wrong_key(db, shelter, police, folder):
        impostor = bf.new_org("shelter-a")  # same id, other key, claims shelter's key id
        payload = bf.make_payload(impostor, sequence=3, key_id=shelter.keyid, records=[bf.record(5)])
        return bf.write(folder, bf.sign(impostor, payload, keyid=shelter.keyid))

    def edited_payload(db, shelter, police, folder):
        signed = bf.sign(shelter, bf.make_payload(shelter, sequence=3, records=[bf.record(5)]))

        def change(p):
            p["records"][0]["form"] = "labour"

        return bf.write(folder, bf.edit_payload(signed, change))

    def statutory_from_consent_org(db, shelter, police, folder):
        return bf.bundle_file(folder, shelter, sequence=3, records=[bf.record(5, basis="statutory")])

    def over_budget(db, shelter, police, folder):
        return bf.bundle_file(folder, shelter, sequence=3, marginals=[bf.marginal(["form"], "3/4")])

    def malformed_json(db, shelter, police, folder):
        return bf.write(folder, b'{"payloadType": "application/vnd.registration-aggregator.bundle+json", ')

    def unknown_schema_version(db, shelter, police, folder):
        payload = bf.make_payload(shelter, sequence=3).model_dump(mode="json")
        payload["schema_version"] = 2
        return bf.write(folder, bf.sign(shelter, payload))

    def equivocation(db, shelter, police, folder):
        return bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(77)])

    def stale_sequence(db, shelter, police, folder):
        return bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(77)])

    def expired(db, shelter, police, folder):
        created = bf.NOW - dt.timedelta(days=60)
        return bf.bundle_file(
            folder, shelter, sequence=3, created_at=created, expires_at=created + dt.timedelta(days=30)
        )

    def revoked(db, shelter, police, folder):
        gone = bf.new_org("shelter-gone")
        bf.register(db, gone)
        path = bf.bundle_file(folder, gone, records=[bf.record(5)])
        revoke_org(db, "shelter-gone")
        return path

    def org_mismatch(db, shelter, police, folder):
        claim = bf.make_payload(shelter, sequence=3, key_id=police.keyid)
        return bf.write(folder, bf.sign(police, claim))

    def kind_mismatch(db, shelter, police, folder):
        payload = bf.make_payload(shelter, sequence=3).model_dump(mode="json")
        payload["organisation"]["kind"] = "investigative"
        return bf.write(folder, bf.sign(shelter, payload))

    def missing_cells(db, shelter, police, folder):
        m = bf.marginal(["form"], "1/4")
        m.cells = m.cells[:-1]
        return bf.bundle_file(folder, shelter, sequence=3, marginals=[m])

    def scale_too_small(db, shelter, police, folder):
        m = bf.marginal(["form"], "1/4")
        m.scale, m.variance = 1.0, bf.dlap_variance(1.0)  # noise for epsilon 1 while claiming 1/4
        return bf.bundle_file(folder, shelter, sequence=3, marginals=[m])

    def created_in_future(db, shelter, police, folder):
        created = bf.NOW + dt.timedelta(days=365 * 30)
        return bf.bundle_file(folder, shelter, sequence=3, created_at=created, expires_at=created + dt.timedelta(days=30))

    def lifetime_too_long(db, shelter, police, folder):
        return bf.bundle_file(folder, shelter, sequence=3, expires_at=dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc))

    def retired_key(db, shelter, police, folder):
        rotate_key(db, "shelter-a", shelter.rotated().raw_public, now=bf.NOW - dt.timedelta(days=1))
        return bf.bundle_file(folder, shelter, sequence=3, records=[bf.record(5)])

    return {
        "unknown org": (unknown_org, "unknown-key"),
        "wrong key": (wrong_key, "bad-signature"),
        "edited payload": (edited_payload, "bad-signature"),
        "statutory from non-investigative": (statutory_from_consent_org, "statutory-from-non-investigative"),
        "over budget": (over_budget, "over-budget"),
        "malformed json": (malformed_json, "malformed-json"),
        "unknown schema version": (unknown_schema_version, "unknown-schema-version"),
        "equivocation": (equivocation, "equivocation"),
        "stale sequence": (stale_sequence, "stale-sequence"),
        "expired": (expired, "expired"),
        "revoked": (revoked, "revoked"),
        "org mismatch": (org_mismatch, "org-mismatch"),
        "kind mismatch": (kind_mismatch, "kind-mismatch"),
        "missing cells": (missing_cells, "malformed-release"),
        "scale too small": (scale_too_small, "scale-too-small"),
        "retired key": (retired_key, "retired-key"),
        "created in future": (created_in_future, "created-in-future"),
        "lifetime too long": (lifetime_too_long, "lifetime-too-long"),
    }


REFUSALS = _refusal_cases()


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_bundle_leaves_store_unchanged_and_others_still_merge(world, case):
    db, shelter, police, folder = world
    build, reason = REFUSALS[case]
    base = bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(1)], marginals=[bf.marginal(["form"], "1/2")])
    merge(db, base)
    bad = build(db, shelter, police, folder)
    before = snapshot(db)
    good = bf.bundle_file(folder, police, records=[bf.record(1, basis="statutory")])
    result = merge(db, bad)
    outcome = result.bundles[0]
    assert (outcome.status, outcome.reason) == ("refused", reason), outcome.message
    assert "\n" not in outcome.message and outcome.message
    assert snapshot(db) == before
    # In a run with a good bundle, the good one still merges and the bad one is still refused.
    result = merge(db, bad, good)
    assert [(b.status, b.reason) for b in result.bundles] == [("refused", reason), ("accepted", None)]
    assert result.reasons == {reason: 1}


def test_equivocation_keeps_signed_evidence_outside_the_store(world):
    db, shelter, _, folder = world
    merge(db, bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(1)]))
    other = bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(2)])
    outcome = merge(db, other).bundles[0]
    assert outcome.reason == "equivocation" and outcome.message.startswith("EQUIVOCATION")
    kept = evidence_dir(db) / f"{sha256_hex(other.read_bytes())}.bundle.json"
    assert kept.read_bytes() == other.read_bytes()


def test_failure_during_ingest_rolls_back_and_leaves_no_archive(world, monkeypatch):
    db, shelter, _, folder = world
    path = bf.bundle_file(folder, shelter, records=[bf.record(1)], marginals=[bf.marginal(["form"], "1/2")])
    before = snapshot(db)

    def broken_write(path, data, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(merge_module, "write_archive", broken_write)
    with pytest.raises(InputError, match="cannot write to the archive folder national.archive"):
        merge(db, path)
    monkeypatch.undo()
    assert snapshot(db) == before
    assert merge(db, path).accepted == 1


# ------------------------------------------------------------------ keys: rotation and revocation

def test_rotation_keeps_old_bundles_verifiable_and_accepts_the_new_key(world):
    db, shelter, _, folder = world
    old = bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(1)])
    merge(db, old)
    new_shelter = shelter.rotated()
    entry = rotate_key(db, "shelter-a", new_shelter.raw_public)
    assert [k.status for k in entry.keys] == ["retired", "active"]
    # a bundle signed with the old key and received after the rotation is refused, even if it claims to be older
    late = bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(2)], created_at=bf.NOW - dt.timedelta(hours=1))
    fresh = bf.bundle_file(
        folder, new_shelter, sequence=3, records=[bf.record(3)], created_at=store_now(None) + dt.timedelta(seconds=1)
    )
    assert [(b.status, b.reason) for b in merge(db, late, fresh).bundles] == [("refused", "retired-key"), ("accepted", None)]
    # every archived bundle verifies with the registry key named by its envelope
    with open_store(db, write=False) as con:
        for path in archive_dir(db).glob("*.bundle.json"):
            opened = open_envelope(path.read_bytes())
            verify_envelope(opened, _key_info(con, opened.keyid).raw)
    assert verify_ledger(db).ok


def test_revoked_org_keeps_its_accepted_bundles(world):
    db, shelter, _, folder = world
    merge(db, bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(1)], marginals=[bf.marginal(["form"], "1/2")]))
    revoke_org(db, "shelter-a")
    assert list_orgs(db)[1].status == "revoked"
    assert budget_report(db, org="shelter-a").budgets[0].spent == "1/2"
    with pytest.raises(ConfigError, match="already revoked"):
        revoke_org(db, "shelter-a")
    with pytest.raises(ConfigError, match="revoked"):
        rotate_key(db, "shelter-a", bf.new_org("x").raw_public)


# ------------------------------------------------------------------ ledger

def _accepted_world(world):
    db, shelter, police, folder = world
    merge(
        db,
        bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(1)], marginals=[bf.marginal(["form"], "1/4")]),
        bf.bundle_file(folder, shelter, sequence=2, marginals=[bf.marginal(["form", "gender"], "1/2")]),
        bf.bundle_file(folder, police, records=[bf.record(2, basis="statutory")]),
    )
    return db


def test_ledger_chain_links_every_entry(world):
    db = _accepted_world(world)
    entries = ledger_entries(db)
    assert [e["event"] for e in entries] == ["register", "register", "accept", "accept", "accept"]
    prev = GENESIS_HASH
    for e in entries:
        assert e["prev_hash"] == prev
        body = {k: v for k, v in e.items() if k != "hash"}
        assert e["hash"] == sha256_hex(canonical_json(body))
        prev = e["hash"]
    accepts = [e for e in entries if e["event"] == "accept" and e["org"] == "shelter-a"]
    assert [(e["sequence"], e["epsilon"], e["spent"]) for e in accepts] == [(1, "1/4", "1/4"), (2, "1/2", "3/4")]
    assert accepts[1]["supersedes"] == [accepts[0]["digest"]]
    check = verify_ledger(db)
    assert check.ok and check.entries == 5 and check.head == entries[-1]["hash"]


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE ledger SET entry = replace(entry, '\"epsilon\":\"1/4\"', '\"epsilon\":\"1/8\"') WHERE epsilon = '1/4'",
        "UPDATE ledger SET hash = '" + "ab" * 32 + "' WHERE idx = 4",
        "UPDATE bundles SET epsilon = '1/8' WHERE sequence = 1",
        "DELETE FROM ledger WHERE idx = 4",
        "UPDATE ledger SET epsilon = '0' WHERE epsilon = '1/4'",
    ],
)
def test_verify_detects_tampering(world, tamper):
    db = _accepted_world(world)
    with open_store(db) as con:
        con.execute(tamper)
    check = verify_ledger(db)
    assert not check.ok and check.problems


def test_verify_detects_a_changed_archive_file(world):
    db = _accepted_world(world)
    victim = sorted(archive_dir(db).glob("*.bundle.json"))[0]
    victim.write_bytes(victim.read_bytes() + b" ")
    check = verify_ledger(db)
    assert not check.ok and any("archive" in p for p in check.problems)


def test_exported_ledger_verifies_and_detects_edits(world, tmp_path):
    db = _accepted_world(world)
    out = tmp_path / "ledger.jsonl"
    assert export_ledger(db, out) == 5
    lines = out.read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [1, 2, 3, 4, 5]
    assert verify_ledger_file(out).ok
    edited = json.loads(lines[2])
    edited["epsilon"] = "1/100"
    out.write_text("\n".join([*lines[:2], json.dumps(edited), *lines[3:]]) + "\n")
    check = verify_ledger_file(out)
    assert not check.ok and any("entry 3" in p for p in check.problems)


# ------------------------------------------------------------------ concurrency and scale

def test_second_writer_gets_store_busy(world):
    db = world[0]
    with bf.store_held(db):
        with pytest.raises(StoreBusy) as exc:
            merge(db, bf.write(world[3], b"{}"))
        assert exc.value.message == "store is busy: another aggregator process is using national.duckdb"
        with pytest.raises(StoreBusy):
            budget_report(db)


def test_large_bundle_merges_as_set_operations(world):
    db, _, police, folder = world
    records = [bf.record(i, form=("sexual", "labour")[i % 2]) for i in range(20_000)]
    records = [r.model_copy(update={"basis": "statutory"}) for r in records]
    path = bf.bundle_file(folder, police, records=records)
    import time

    started = time.perf_counter()
    assert merge(db, path).accepted == 1
    assert time.perf_counter() - started < 20
    with open_store(db, write=False) as con:
        assert con.execute("SELECT count(*), count(DISTINCT pseudonym) FROM records").fetchone() == (20_000, 20_000)


def test_unreadable_and_missing_files_are_refused_not_crashes(world, tmp_path, monkeypatch):
    db, shelter, _, folder = world
    locked = bf.bundle_file(folder, shelter, records=[bf.record(1)])
    real_read = Path.read_bytes

    def read_bytes(self):
        if self == locked:
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = merge(db, tmp_path / "missing.bundle.json", folder, locked)
    assert [(b.status, b.reason) for b in result.bundles] == [("refused", "not-found")] * 3
    assert "Permission" not in result.bundles[2].message


# ------------------------------------------------------------------ one run of many bundles

def _two_stores(tmp_path):
    """Two empty stores with the same registry, registered at the same time (so their ledgers can match)."""
    at = bf.NOW - dt.timedelta(days=1)
    orgs = (bf.new_org("shelter-a"), bf.new_org("police-x", "investigative"))
    dbs = []
    for name in ("batch", "single"):
        db = tmp_path / name / "national.duckdb"
        for org in orgs:
            register_org(
                db, org.id, kind=org.kind, reporter_type=org.reporter_type, public_key=org.raw_public, cap="1", now=at
            )
        dbs.append(db)
    return dbs, orgs


def test_one_run_of_many_bundles_equals_merging_them_one_by_one_in_order(tmp_path):
    (batch_db, single_db), (shelter, police) = _two_stores(tmp_path)
    folder = tmp_path / "in"
    quarter = lambda dims=("form",): bf.marginal(list(dims), "1/4", fill=1)  # noqa: E731
    run1 = [
        bf.bundle_file(folder, shelter, sequence=3, marginals=[quarter(("form", "gender"))]),
        bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(1), bf.record(2)], marginals=[quarter()]),
        # withdraws a record of sequence 1 (same run: matched) and one never sent (flagged)
        bf.bundle_file(
            folder, shelter, sequence=2, records=[bf.record(1)], marginals=[quarter()],
            withdrawals=[(bf.pseudonym(2), 2025), (bf.pseudonym(99), 2025)],
        ),
        bf.bundle_file(folder, shelter, period=2024, sequence=1, marginals=[bf.marginal(["gender"], "1/2")]),
        bf.bundle_file(folder, shelter, period=2024, sequence=2, marginals=[bf.marginal(["gender"], "3/4")]),
        bf.bundle_file(folder, shelter, period=2023, sequence=2, records=[bf.record(5)]),
        bf.bundle_file(folder, police, records=[bf.record(7, basis="statutory")]),
        bf.bundle_file(folder, police, records=[bf.record(8, basis="statutory")]),  # equivocation
    ]
    run1.append(bf.write(folder / "copy", run1[1].read_bytes(), "again.bundle.json"))  # the same bytes twice
    run2 = [
        bf.bundle_file(folder, shelter, period=2023, sequence=1, records=[bf.record(6)]),  # stale
        bf.bundle_file(folder, shelter, sequence=4, marginals=[bf.marginal(["form"], "1/2")]),  # 3/4 spent: over
        bf.bundle_file(folder, police, sequence=2, withdrawals=[(bf.pseudonym(7), 2025)]),
    ]
    now = bf.NOW
    steps: list[list[float]] = []
    batch = [merge(batch_db, *run, now=now, progress=lambda s, d, t: steps.append([s, d, t])) for run in (run1, run2)]

    def order(path):
        p = parse_payload(open_envelope(path.read_bytes()))
        return (p.organisation.id, p.period, p.sequence, sha256_hex(path.read_bytes()))

    single = {}
    for run in (run1, run2):
        for path in sorted(run, key=order):
            single[path] = merge(single_db, path, now=now).bundles[0]
    got = [b for result in batch for b in result.bundles]
    want = [single[p] for p in run1 + run2]
    # (a duplicate within one run carries the bundle's details, one merged earlier only its digest, as before)
    fields = ("file", "status", "reason", "message", "digest", "supersedes", "flagged")
    assert [[getattr(b, f) for f in fields] for b in got] == [[getattr(b, f) for f in fields] for b in want]
    statuses = [(b.status, b.reason) for b in got]
    assert statuses[:6] == [("accepted", None)] * 4 + [("refused", "over-budget"), ("accepted", None)]
    assert sorted(statuses[6:8]) == [("accepted", None), ("refused", "equivocation")]  # the digests decide
    assert statuses[8:] == [
        ("duplicate", None), ("refused", "stale-sequence"), ("refused", "over-budget"), ("accepted", None)
    ]
    assert got[2].flagged == "1 withdrawal(s) match no record this organisation sent"
    assert got[0].supersedes == [got[2].digest] and got[2].supersedes == [got[1].digest]
    assert snapshot(batch_db) == snapshot(single_db)
    assert sorted(p.name for p in evidence_dir(batch_db).iterdir()) == sorted(
        p.name for p in evidence_dir(single_db).iterdir()
    )
    assert verify_ledger(batch_db).ok
    # progress: every bundle once while verifying, every staged bundle once while checking the rules
    verify = [s for s in steps if s[0] == "verify"]
    assert [d for _, d, _ in verify[: len(run1)]] == list(range(1, len(run1) + 1))
    assert any(s[0] == "ingest" for s in steps)


def test_archive_failure_part_way_leaves_no_files_and_no_rows(world, monkeypatch):
    db, shelter, police, folder = world
    paths = [
        bf.bundle_file(folder, shelter, sequence=n, records=[bf.record(n)]) for n in (1, 2, 3)
    ] + [bf.bundle_file(folder, police, records=[bf.record(9, basis="statutory")])]
    before = snapshot(db)
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(InputError, match="nothing of this run was merged"):
        merge(db, *paths)
    monkeypatch.undo()
    assert snapshot(db) == before
    assert not any(archive_dir(db).iterdir())  # neither archive files nor temp files remain
    assert merge(db, *paths).accepted == 4
    assert verify_ledger(db).ok


def test_merge_turns_off_duckdb_progress_bars(world):
    db = world[0]
    with open_store(db) as con:
        assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] is False


# ------------------------------------------------------------------ times are judged at receipt (issue 15, item 1)

def test_retired_key_refused_even_when_created_at_is_backdated(world):
    """A key retired by a rotation merges nothing received after the rotation, whatever created_at claims."""
    db, shelter, _, folder = world
    rotate_key(db, "shelter-a", shelter.rotated().raw_public)
    for backdate in (dt.timedelta(hours=1), dt.timedelta(days=60), dt.timedelta(days=365 * 20)):
        created = bf.NOW - backdate
        path = bf.bundle_file(folder, shelter, sequence=5, records=[bf.record(1)], created_at=created,
                              expires_at=created + dt.timedelta(days=90))
        result = merge(db, path, now=store_now(None) + dt.timedelta(seconds=1))
        assert [(b.status, b.reason) for b in result.bundles] == [("refused", "retired-key")], backdate


def test_retired_key_bundles_received_before_the_rotation_stay_merged(world):
    db, shelter, _, folder = world
    assert merge(db, bf.bundle_file(folder, shelter, sequence=1, records=[bf.record(1)])).accepted == 1
    rotate_key(db, "shelter-a", shelter.rotated().raw_public)
    with open_store(db, write=False) as con:
        assert con.execute("SELECT count(*) FROM records").fetchone()[0] == 1


def test_created_at_in_the_future_is_refused_beyond_the_clock_skew(world):
    from aggregator.contract.validity import CLOCK_SKEW

    db, shelter, _, folder = world
    now = store_now(None)
    for ahead, expected in (
        (dt.timedelta(days=365 * 30), ("refused", "created-in-future")),
        (dt.timedelta(days=1), ("refused", "created-in-future")),
        (CLOCK_SKEW + dt.timedelta(seconds=1), ("refused", "created-in-future")),
    ):
        created = (now + ahead).replace(tzinfo=dt.timezone.utc)
        path = bf.bundle_file(folder, shelter, sequence=4, records=[bf.record(1)], created_at=created,
                              expires_at=created + dt.timedelta(days=30))
        assert [(b.status, b.reason) for b in merge(db, path, now=now).bundles] == [expected], ahead
    created = (now + CLOCK_SKEW - dt.timedelta(seconds=1)).replace(tzinfo=dt.timezone.utc)
    within = bf.bundle_file(folder, shelter, sequence=4, records=[bf.record(1)], created_at=created)
    assert merge(db, within, now=now).accepted == 1


def test_bundle_lifetime_is_capped_at_ninety_days(world):
    db, shelter, _, folder = world
    now = store_now(None)
    created = bf.NOW - dt.timedelta(minutes=1)
    far = bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(1)], created_at=created,
                         expires_at=dt.datetime(2099, 12, 31, tzinfo=dt.timezone.utc))
    backdated = bf.bundle_file(folder, shelter, sequence=3, records=[bf.record(1)],
                               created_at=dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc),
                               expires_at=dt.datetime(2099, 12, 31, tzinfo=dt.timezone.utc))
    one_day_more = bf.bundle_file(folder, shelter, sequence=4, records=[bf.record(1)], created_at=created,
                                  expires_at=created + dt.timedelta(days=90, seconds=1))
    result = merge(db, far, backdated, one_day_more, now=now)
    assert [(b.status, b.reason) for b in result.bundles] == [("refused", "lifetime-too-long")] * 3
    exact = bf.bundle_file(folder, shelter, sequence=5, records=[bf.record(1)], created_at=created,
                           expires_at=created + dt.timedelta(days=90))
    assert merge(db, exact, now=now).accepted == 1


def test_expiry_is_judged_at_the_receipt_time(world):
    db, shelter, _, folder = world
    created = bf.NOW - dt.timedelta(minutes=1)
    path = bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(1)], created_at=created,
                          expires_at=created + dt.timedelta(days=90))
    late = store_now(created + dt.timedelta(days=91))
    assert [(b.status, b.reason) for b in merge(db, path, now=late).bundles] == [("refused", "expired")]
    assert merge(db, path, now=store_now(created + dt.timedelta(days=89))).accepted == 1


# ------------------------------------------------------------------ pseudonym collisions (issue 15, item 3)

def test_records_sharing_a_pseudonym_merge_as_one_linked_person_with_a_note(world):
    """Two consented people with the same names and date of birth share a pseudonym: the bundle is never refused for
    it; they count as one person (the national dedupe rule) and the outcome says how many were linked."""
    db, shelter, _, folder = world
    path = bf.bundle_file(folder, shelter, sequence=2, records=[
        bf.record(5), bf.record(5, form="labour"), bf.record(6), bf.record(5, gender="male"),
    ])
    result = merge(db, path)
    (b,) = result.bundles
    assert (b.status, b.records, b.linked) == ("accepted", 2, 2)
    assert "2 record(s) share a pseudonym" in b.message and b.flagged and "2 record(s)" in b.flagged
    assert b.as_dict()["linked"] == 2
    with open_store(db, write=False) as con:
        rows = con.execute("SELECT pseudonym, form, gender FROM records ORDER BY pseudonym").fetchall()
    assert sorted(rows) == sorted([(bf.pseudonym(5), "sexual", "female"), (bf.pseudonym(6), "sexual", "female")])
    assert audit.audit_store(db).ok  # the rebuild links them the same way


def test_a_key_is_retired_from_the_instant_of_its_rotation(world):
    """Received at the very instant of the rotation: refused; one microsecond before: accepted."""
    db, shelter, _, folder = world
    at = store_now(None) - dt.timedelta(minutes=1)
    rotate_key(db, "shelter-a", shelter.rotated().raw_public, now=at)
    created = bf.NOW - dt.timedelta(minutes=10)
    same = bf.bundle_file(folder, shelter, sequence=2, records=[bf.record(1)], created_at=created)
    assert [(b.status, b.reason) for b in merge(db, same, now=at).bundles] == [("refused", "retired-key")]
    assert merge(db, same, now=at - dt.timedelta(microseconds=1)).accepted == 1
