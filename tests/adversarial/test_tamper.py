"""Tampered, forged and replayed bundles: merge refuses each with its own reason and no query result changes.

Already covered in tests/coordinator/test_store.py (not repeated here): unknown key, wrong key, an edited payload without a new
signature, statutory records from a consent organisation, over budget, malformed JSON, unknown schema version,
equivocation across runs, stale sequence, expired, revoked organisation, organisation / kind mismatch, missing cells,
scale too small, duplicate record, retired key. This file adds: a flipped byte in every position class of the
envelope, truncation, non-UTF-8, duplicate keys, NaN / Infinity, oversized files, a payload re-signed by another
registered organisation, an exact replay of a superseded bundle, equivocation inside one run, a revoked key after
rotation, malleable base64 and a re-serialised envelope; and a Hypothesis property: whatever mix of valid,
duplicated, superseding and invalid bundles arrives, the live national table equals the audit's rebuild.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.auditor import audit
from aggregator.contract.envelope import canonical_json, DEFAULT_MAX_BUNDLE_BYTES, sign_payload
from aggregator.coordinator.store import archive_dir, evidence_dir, open_store
from aggregator.coordinator.budget import budget_report
from aggregator.coordinator.merge import merge_bundles
from aggregator.coordinator.registry import register_org, revoke_org, rotate_key
from aggregator.coordinator.national import national_table
from tests import bundlefactory as bf

TABLES = ("organisations", "org_keys", "bundles", "records", "marginals", "noisy_cells", "withdrawals", "ledger")


def observable(db: Path) -> tuple:
    """What anyone can query: the national table, the ledger, the bundles table (and the other tables and archive)."""
    with open_store(db, write=False) as con:
        tables = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}
    # every cell, also where no release covers form x age band (then records only, marked incomplete), as the audit
    table = national_table(db, None, ["form", "age_band"], refuse_uncovered=False).as_dict()
    archive = sorted((p.name, p.read_bytes()) for p in archive_dir(db).glob("*"))
    return tables, table, archive


@pytest.fixture
def world(world):
    """The shared store (conftest.py), each organisation with one accepted bundle (sequence 1)."""
    db, shelter, police, folder = world
    first = [
        bf.bundle_file(folder, shelter, records=[bf.record(1)], marginals=[bf.marginal(["form"], "1/2", fill=1)]),
        bf.bundle_file(folder, police, records=[bf.record(2, basis="statutory")]),
    ]
    assert merge_bundles(db, first).accepted == 2
    return db, shelter, police, folder


def good_bytes(shelter, sequence=2, **kw) -> bytes:
    return bf.sign(shelter, bf.make_payload(shelter, sequence=sequence, records=[bf.record(7)], **kw))


def refused(db, paths) -> list[tuple[str, str | None]]:
    return [(o.status, o.reason) for o in merge_bundles(db, list(paths)).bundles]


# ------------------------------------------------------------------ a flipped byte in every position class

def _regions(data: bytes) -> dict[str, range]:
    """Byte ranges of the envelope's value strings; everything else is structure (braces, quotes, key names)."""
    envelope = json.loads(data)
    spans = {}
    for name, value in (
        ("payloadType", envelope["payloadType"]),
        ("payload", envelope["payload"]),
        ("keyid", envelope["signatures"][0]["keyid"]),
        ("signature", envelope["signatures"][0]["sig"]),
    ):
        start = data.index(b'"' + value.encode() + b'"') + 1
        spans[name] = range(start, start + len(value))
    return spans


# What a one-bit flip (XOR 0x01, ASCII stays ASCII) in each class can be refused as. A flip in base64 either leaves
# the alphabet (not-an-envelope) or changes the decoded bytes (bad-signature); the only exception is the padding
# bits of the last base64 character, which decode to the same bytes: that copy is not the canonical encoding and is
# refused as such (see test_malleable_base64_is_never_accepted_twice).
FLIP_REASONS = {
    "structure": {"malformed-json", "not-an-envelope"},
    "payloadType": {"unknown-payload-type"},
    "keyid": {"unknown-key"},
    "signature": {"bad-signature", "not-an-envelope", "not-canonical"},
    "payload": {"bad-signature", "not-an-envelope", "not-canonical"},
}


@pytest.mark.parametrize("region", list(FLIP_REASONS))
def test_flipped_byte_is_refused_with_the_reason_of_its_position(world, tmp_path, region):
    db, shelter, _, _ = world
    original = good_bytes(shelter, sequence=1)  # same (org, period, sequence) as the accepted bundle
    # Merge the exact bundle whose bytes we flip, so a flip that changes nothing signed shows as equivocation.
    db2 = tmp_path / "other" / "national.duckdb"
    bf.register(db2, shelter)
    assert refused(db2, [bf.write(tmp_path / "ok", original)]) == [("accepted", None)]
    spans = _regions(original)
    inside = set().union(*spans.values())
    if region == "structure":
        positions = [i for i in range(len(original)) if i not in inside]
    else:
        span = spans[region]
        step = max(1, len(span) // 120)  # long base64: every n-th character and the last four
        positions = sorted(set(span[::step]) | set(span[-4:]))
    folder = tmp_path / f"flip-{region}"
    paths = []
    for i in positions:
        data = bytearray(original)
        data[i] ^= 0x01
        paths.append(bf.write(folder, bytes(data), f"{i:05d}.bundle.json"))
    before = observable(db2)
    outcomes = refused(db2, paths)
    assert all(status == "refused" for status, _ in outcomes), [p.name for p, o in zip(paths, outcomes) if o[0] != "refused"]
    reasons = {reason for _, reason in outcomes}
    assert reasons <= FLIP_REASONS[region], reasons
    assert observable(db2) == before


def test_high_bit_in_the_envelope_is_not_utf8(world):
    db, shelter, _, folder = world
    data = bytearray(good_bytes(shelter))
    data[5] |= 0x80
    before = observable(db)
    assert refused(db, [bf.write(folder, bytes(data))]) == [("refused", "not-utf8")]
    assert observable(db) == before


def test_signed_payload_that_is_not_utf8(world):
    db, shelter, _, folder = world
    payload = bf.payload_bytes(bf.make_payload(shelter, sequence=2)).replace(b'"shelter-a"', b'"shelter-\xff"', 1)
    data = sign_payload(payload, shelter.private_key)
    before = observable(db)
    assert refused(db, [bf.write(folder, data)]) == [("refused", "not-utf8")]
    assert observable(db) == before


@pytest.mark.parametrize("keep", [0, 1, 2, 0.5, -1])
def test_truncated_file(world, keep):
    db, shelter, _, folder = world
    data = good_bytes(shelter)
    cut = data[: int(len(data) * keep)] if isinstance(keep, float) else data[:keep] if keep >= 0 else data[:keep]
    before = observable(db)
    assert refused(db, [bf.write(folder, cut, "cut.bundle.json")]) == [("refused", "malformed-json")]
    assert observable(db) == before


# ------------------------------------------------------------------ strict JSON

def _signed_text(shelter, text: bytes) -> bytes:
    return sign_payload(text, shelter.private_key)


def _payload_text(shelter, **kw) -> bytes:
    return bf.payload_bytes(bf.make_payload(shelter, sequence=2, **kw))


def _cases():
    def dup_key_envelope(shelter):
        data = good_bytes(shelter)
        return data[:-1] + b',"payloadType":"x"}'

    def dup_key_payload(shelter):
        text = _payload_text(shelter)
        return _signed_text(shelter, text[:-1] + b',"period":2024}')

    def nan_payload(shelter):
        text = _payload_text(shelter, marginals=[bf.marginal(["form"], "1/4")])
        return _signed_text(shelter, text.replace(b'"scale":4', b'"scale":NaN', 1))

    def infinity_payload(shelter):
        text = _payload_text(shelter, marginals=[bf.marginal(["form"], "1/4")])
        return _signed_text(shelter, text.replace(b'"scale":4', b'"scale":Infinity', 1))

    def nan_epsilon(shelter):
        text = _payload_text(shelter, marginals=[bf.marginal(["form"], "1/4")])
        return _signed_text(shelter, text.replace(b'"epsilon":"1/4"', b'"epsilon":"NaN"'))

    def deep_nesting(shelter):
        return b"[" * 100_000 + b"]" * 100_000

    def envelope_is_a_list(shelter):
        return b"[" + good_bytes(shelter) + b"]"

    def extra_envelope_field(shelter):
        envelope = json.loads(good_bytes(shelter))
        envelope["note"] = "x"
        return canonical_json(envelope)

    def two_signatures(shelter):
        envelope = json.loads(good_bytes(shelter))
        envelope["signatures"] = envelope["signatures"] * 2
        return canonical_json(envelope)

    def no_signature(shelter):
        envelope = json.loads(good_bytes(shelter))
        envelope["signatures"] = []
        return canonical_json(envelope)

    def other_payload_type(shelter):
        return sign_payload(_payload_text(shelter), shelter.private_key, payload_type="application/json")

    def payload_not_an_object(shelter):
        return _signed_text(shelter, b"[1,2,3]")

    def expires_before_created(shelter):
        created = bf.NOW - dt.timedelta(minutes=5)
        return bf.sign(shelter, bf.make_payload(shelter, sequence=2, created_at=created, expires_at=created - dt.timedelta(seconds=1)))

    def negative_epsilon(shelter):
        text = _payload_text(shelter, marginals=[bf.marginal(["form"], "1/4")])
        return _signed_text(shelter, text.replace(b'"epsilon":"1/4"', b'"epsilon":"-1/4"'))

    return {
        "duplicate key in envelope": (dup_key_envelope, "duplicate-key"),
        "duplicate key in signed payload": (dup_key_payload, "duplicate-key"),
        "NaN in signed payload": (nan_payload, "malformed-json"),
        "Infinity in signed payload": (infinity_payload, "malformed-json"),
        "NaN epsilon string": (nan_epsilon, "malformed-payload"),
        "negative epsilon": (negative_epsilon, "malformed-payload"),
        "deep nesting": (deep_nesting, "malformed-json"),
        "envelope is a list": (envelope_is_a_list, "not-an-envelope"),
        "extra envelope field": (extra_envelope_field, "not-an-envelope"),
        "two signatures": (two_signatures, "bad-signature"),
        "no signature": (no_signature, "bad-signature"),
        "other payload type": (other_payload_type, "unknown-payload-type"),
        "payload not an object": (payload_not_an_object, "malformed-payload"),
        "expires before created": (expires_before_created, "malformed-payload"),
    }


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_bundle_is_refused_with_its_reason(world, case):
    db, shelter, _, folder = world
    build, reason = CASES[case]
    before = observable(db)
    result = merge_bundles(db, [bf.write(folder, build(shelter), "case.bundle.json")])
    outcome = result.bundles[0]
    assert (outcome.status, outcome.reason) == ("refused", reason), outcome.message
    assert "NaN" not in outcome.message or reason != "malformed-json"
    assert observable(db) == before


def test_oversized_file_is_refused_before_reading(world):
    db, _, _, folder = world
    path = folder / "huge.bundle.json"
    with open(path, "wb") as fh:  # sparse: the size check must not read it
        fh.truncate(DEFAULT_MAX_BUNDLE_BYTES + 1)
    before = observable(db)
    assert refused(db, [path]) == [("refused", "oversized")]
    assert observable(db) == before
    assert os.path.getsize(path) > DEFAULT_MAX_BUNDLE_BYTES


# ------------------------------------------------------------------ forgery and replay

def test_payload_resigned_by_another_registered_organisation(world):
    """Police signs the shelter's payload as it is: the key that signed is not the key the payload names."""
    db, shelter, police, folder = world
    text = bf.payload_bytes(bf.make_payload(shelter, sequence=2, records=[bf.record(9)]))
    forged = sign_payload(text, police.private_key)
    before = observable(db)
    assert refused(db, [bf.write(folder, forged)]) == [("refused", "key-mismatch")]
    assert observable(db) == before


def test_exact_replay_of_a_superseded_bundle_changes_nothing(world):
    db, shelter, _, folder = world
    old = sorted(archive_dir(db).glob("*.bundle.json"))
    newer = bf.write(folder, good_bytes(shelter, sequence=2))
    assert refused(db, [newer]) == [("accepted", None)]
    before = observable(db)
    replay = [bf.write(folder / "replay", p.read_bytes(), p.name) for p in old]
    assert [s for s, _ in refused(db, replay)] == ["duplicate", "duplicate"]
    assert observable(db) == before
    assert budget_report(db, org="shelter-a").budgets[0].spent == "1/2"  # a replay spends nothing


def test_equivocation_inside_one_run_accepts_at_most_one(world):
    db, shelter, _, folder = world
    a = bf.write(folder, good_bytes(shelter, sequence=5))
    b = bf.write(folder, bf.sign(shelter, bf.make_payload(shelter, sequence=5, records=[bf.record(8)])))
    outcomes = refused(db, [a, b])
    assert sorted(outcomes, key=str) == sorted([("accepted", None), ("refused", "equivocation")], key=str)
    assert len(list(evidence_dir(db).glob("*.bundle.json"))) == 1
    assert audit.audit_store(db).ok


def test_revoked_key_after_rotation(world):
    """Rotate, then revoke: bundles signed with the old (retired) key or the new key are both refused as revoked."""
    db, shelter, _, folder = world
    new = shelter.rotated()
    rotate_key(db, "shelter-a", new.raw_public)
    revoke_org(db, "shelter-a")
    old_signed = bf.write(folder, good_bytes(shelter, created_at=bf.NOW - dt.timedelta(days=1)))
    new_signed = bf.write(folder, good_bytes(new, sequence=3))
    before = observable(db)
    assert refused(db, [old_signed, new_signed]) == [("refused", "revoked"), ("refused", "revoked")]
    assert observable(db) == before


def test_malleable_base64_is_never_accepted_twice(world):
    """The signature covers the decoded payload; base64 padding bits and a re-serialised envelope would make another
    file with the same signed content. Only the canonical encoding is accepted, so such a copy is refused before it
    can pose as a different bundle (no false equivocation evidence either)."""
    db, shelter, _, folder = world
    original = next(p for p in sorted(archive_dir(db).glob("*.bundle.json"))
                    if json.loads(base64.b64decode(json.loads(p.read_bytes())["payload"]))["organisation"]["id"] == "shelter-a")
    envelope = json.loads(original.read_bytes())
    sig = envelope["signatures"][0]["sig"]
    assert sig.endswith("==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = sig[-3]
    envelope["signatures"][0]["sig"] = sig[:-3] + alphabet[alphabet.index(last) ^ 1] + "=="
    variant = json.dumps(envelope).encode()  # also not canonical: spaces after separators
    assert base64.b64decode(envelope["signatures"][0]["sig"]) == base64.b64decode(sig)
    before = observable(db)
    assert refused(db, [bf.write(folder, variant)]) == [("refused", "not-canonical")]
    padded_only = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
    assert refused(db, [bf.write(folder, padded_only)]) == [("refused", "not-canonical")]
    assert observable(db) == before
    assert not list(evidence_dir(db).glob("*")) if evidence_dir(db).exists() else True


# ------------------------------------------------------------------ property: live table == rebuild from archive

ORGS = ("shelter-a", "police-x")


@st.composite
def actions(draw):
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["valid", "valid", "supersede", "duplicate", "tamper", "stale", "over-budget"]))
        steps.append((
            kind,
            draw(st.sampled_from(ORGS)),
            draw(st.sampled_from([2024, 2025])),
            draw(st.integers(0, 3)),  # which people
            draw(st.booleans()),  # merge now or batch with the next one
        ))
    return steps


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions())
def test_random_bundle_streams_rebuild_to_the_same_table(steps):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = root / "national.duckdb"
        orgs = {"shelter-a": bf.new_org("shelter-a"), "police-x": bf.new_org("police-x", "investigative")}
        for org in orgs.values():
            bf.register(db, org)
        next_seq: dict[tuple[str, int], int] = {}
        sent: list[Path] = []
        batch: list[Path] = []
        for n, (kind, org_id, period, people, flush) in enumerate(steps):
            org = orgs[org_id]
            basis = "statutory" if org.kind == "investigative" else "consent"
            seq = next_seq.get((org_id, period), 1)
            records = [bf.record(p, basis=basis, form=["sexual", "labour"][p % 2]) for p in range(people)]
            eps = "1/8" if kind != "over-budget" else "2"
            margs = [bf.marginal(["form"], eps, {("sexual",): n})] if org.kind != "investigative" or kind == "over-budget" else []
            if kind == "duplicate" and sent:
                path = sent[n % len(sent)]
            elif kind == "stale" and seq > 1:
                path = bf.bundle_file(root / "in", org, period=period, sequence=seq - 1, records=records[:1])
            elif kind == "tamper":
                data = bf.sign(org, bf.make_payload(org, period=period, sequence=seq, records=records, marginals=margs))
                path = bf.write(root / "in", bf.edit_payload(data, lambda p: p.update(period=2023)))
            else:
                payload = bf.make_payload(org, period=period, sequence=seq, records=records, marginals=margs)
                path = bf.write(root / "in", bf.sign(org, payload))
                next_seq[(org_id, period)] = seq + (2 if kind == "supersede" else 1)
                sent.append(path)
            batch.append(path)
            if flush:
                merge_bundles(db, batch)
                batch = []
        if batch:
            merge_bundles(db, batch)
        rebuilt = root / "rebuilt.duckdb"
        assert audit.rebuild_store(db, rebuilt) == []
        for by in ([], ["form", "age_band"]):
            assert (national_table(db, None, by, refuse_uncovered=False).as_dict()
                    == national_table(rebuilt, None, by, refuse_uncovered=False).as_dict())
        with open_store(db, write=False) as con:
            live_ledger = con.execute("SELECT entry, hash FROM ledger ORDER BY idx").fetchall()
        with open_store(rebuilt, write=False) as con:
            assert con.execute("SELECT entry, hash FROM ledger ORDER BY idx").fetchall() == live_ledger
