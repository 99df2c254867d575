"""Crash safety: SIGKILL a merge or a submit at random moments, then finish the work and check nothing is lost or
counted twice.

merge   a subprocess merges ~40 signed bundles of 8 organisations and is killed after a random delay spread over the
        time a full merge takes; merging the same files again must then give a store whose audit passes, with every
        bundle exactly once and the national table of one clean merge.
submit  `aggregator submit` is killed at random moments; every ledger entry must have its kept bundle, a kept bundle
        without a ledger entry (an orphan) must never have reached --out, and the next submit spends exactly once more.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from aggregator.auditor import audit
from aggregator.coordinator.national import national_table
from aggregator.coordinator.store import archive_dir, open_store
from aggregator.coordinator.merge import merge_bundles
from aggregator.coordinator.registry import register_org
from aggregator.coordinator.ledger import verify_ledger
from aggregator.contract.envelope import bundle_filename, read_bundle_file, sha256_hex
from tests import bundlefactory as bf
from tests.orgfactory import row, write_export

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".venv" / "bin" / "aggregator"
ORGS = 8
PER_ORG = 5
MERGE_TRIALS = 30  # killed trials required
MAX_MERGE_TRIALS = 45  # a trial whose merge finished before the kill does not count
SUBMIT_TRIALS = 10
BY = ["form", "age_band"]
# audit_store rebuilds the store from the archive (~9 s for 40 bundles), so it runs in full on the first trial of
# these states only; every trial gets the cheap equivalents (ledger, derived tables, archive = rows).
FULL_AUDIT_STATES = ("committed", "archive-without-rows")
# What a merge derives, without the receive times (a re-merge happens at another moment than the reference).
DERIVED = {
    "bundles": "SELECT * EXCLUDE (received_at) FROM bundles ORDER BY ALL",
    "records": "SELECT * FROM records ORDER BY ALL",
    "marginals": "SELECT * FROM marginals ORDER BY ALL",
    "noisy_cells": "SELECT * FROM noisy_cells ORDER BY ALL",
    "withdrawals": "SELECT * FROM withdrawals ORDER BY ALL",
    "ledger": "SELECT idx, event, org_id, period, digest, epsilon FROM ledger ORDER BY idx",
}

MERGER = """
import sys

from aggregator.coordinator.merge import merge_bundles

paths = open(sys.argv[2], encoding="utf-8").read().split()
print("ready", flush=True)
merge_bundles(sys.argv[1], paths)
print("done", flush=True)
"""


def _orgs() -> list[bf.TestOrg]:
    orgs = []
    for i in range(ORGS):
        if i % 4 == 3:
            orgs.append(bf.new_org(f"police-{i}", "investigative"))
        else:
            orgs.append(bf.new_org(f"shelter-{i}"))
    return orgs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A registered template store, the bundle files, the reference national table and the merge time."""
    base = tmp_path_factory.mktemp("crash-corpus")
    orgs = _orgs()
    template = base / "template" / "national.duckdb"
    for org in orgs:
        register_org(template, org.id, kind=org.kind, reporter_type=org.reporter_type, public_key=org.raw_public)
    paths: list[Path] = []
    rng = random.Random(7)
    forms = ["sexual", "labour", "criminal", "other_unknown"]
    bands = ["15_17", "18_24", "25_plus"]
    for o, org in enumerate(orgs):
        investigative = org.kind == "investigative"
        for seq in range(1, PER_ORG + 1):
            # People overlap across organisations (cross-organisation dedupe) and across sequences.
            records = [
                bf.record(
                    f"p{(o * 7 + seq * 3 + k) % 60}",
                    basis="statutory" if investigative else "consent",
                    form=forms[(o + k) % 4], age_band=bands[(seq + k) % 3],
                )
                for k in range(6)
            ]
            marginals = [] if investigative else [
                bf.marginal(BY, "1/8", {(f, b): rng.randint(-3, 9) for f in forms for b in bands}, fill=rng.randint(-2, 2))
            ]
            paths.append(bf.bundle_file(base / "bundles", org, period=2025, sequence=seq,
                                        records=records, marginals=marginals))
    rng.shuffle(paths)  # command-line order must not matter
    listing = base / "bundles.txt"
    listing.write_text("\n".join(str(p) for p in paths), encoding="utf-8")

    reference = base / "reference" / "national.duckdb"
    reference.parent.mkdir()
    shutil.copy(template, reference)
    result = merge_bundles(reference, paths)
    assert result.accepted == len(paths) and result.refused == 0
    rows = national_table(reference, 2025, BY).as_dict()["rows"]
    derived = _derived(reference)

    # How long a full merge takes in the subprocess, counted from "ready" (imports done) to the end.
    timing = base / "timing" / "national.duckdb"
    timing.parent.mkdir()
    shutil.copy(template, timing)
    times = []
    for _ in range(2):
        proc = _start_merge(timing, listing)
        start = time.perf_counter()
        proc.communicate(timeout=60)
        times.append(time.perf_counter() - start)
        assert proc.returncode == 0
        timing.unlink()
        shutil.rmtree(archive_dir(timing))
        shutil.copy(template, timing)
    digests = sorted(sha256_hex(p.read_bytes()) for p in paths)
    return {"template": template, "paths": paths, "listing": listing, "rows": rows,
            "merge_seconds": max(times), "digests": digests,
            "derived": derived}


def _start_merge(db: Path, listing: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", MERGER, str(db), str(listing)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _derived(db: Path) -> dict[str, list]:
    with open_store(db, write=False) as con:
        return {name: con.execute(sql).fetchall() for name, sql in DERIVED.items()}


def _state(db: Path) -> tuple[int, int]:
    """(bundle rows, archive files) of a store after a crash."""
    with open_store(db, write=False) as con:
        rows = con.execute("SELECT count(*) FROM bundles").fetchone()[0]
    archive = archive_dir(db)
    files = len(list(archive.glob("*.bundle.json"))) if archive.exists() else 0
    return rows, files


def test_merge_killed_at_random_moments_loses_and_doubles_nothing(corpus, tmp_path):
    rng = random.Random()
    window = corpus["merge_seconds"] * 0.85  # (the measured time includes the process exit)
    killed = 0
    kinds: dict[str, int] = {}
    audited: set[str] = set()
    litter = 0
    trial = 0
    while killed < MERGE_TRIALS:
        assert trial < MAX_MERGE_TRIALS, f"only {killed} of {trial} merges were killed before they finished"
        trial += 1
        db = tmp_path / f"t{trial}" / "national.duckdb"
        db.parent.mkdir()
        shutil.copy(corpus["template"], db)
        proc = _start_merge(db, corpus["listing"])
        time.sleep(rng.uniform(0, window))
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        if finished:
            assert proc.returncode == 0 and "done" in out
            continue
        killed += 1
        rows, files = _state(db)
        state = "nothing" if rows == files == 0 else "committed" if rows == len(corpus["paths"]) else (
            "archive-without-rows" if rows == 0 else f"partial-{rows}")
        kinds[state] = kinds.get(state, 0) + 1
        # One transaction: after a kill the store holds none of the run or all of it.
        assert rows in (0, len(corpus["paths"])), f"trial {trial}: {rows} bundle rows after the kill"

        result = merge_bundles(db, corpus["paths"])
        assert result.refused == 0, result.reasons
        assert result.accepted + result.duplicate == len(corpus["paths"])
        with open_store(db, write=False) as con:
            digests = [d for (d,) in con.execute("SELECT digest FROM bundles ORDER BY digest").fetchall()]
            accepts = con.execute("SELECT count(*) FROM ledger WHERE event = 'accept'").fetchone()[0]
        assert digests == corpus["digests"], f"trial {trial}: a bundle is missing or counted twice"
        assert accepts == len(corpus["paths"])
        assert national_table(db, 2025, BY).as_dict()["rows"] == corpus["rows"]
        assert verify_ledger(db).ok
        # The audit's checks, cheaply: derived tables equal the clean merge's, archive = bundle rows, names = hashes.
        assert _derived(db) == corpus["derived"], f"trial {trial}: store differs from a clean merge"
        # A kill during an archive write leaves a `.<name>.<random>.tmp` file; the re-merge clears it away.
        files = list(archive_dir(db).iterdir())
        litter += len(list(archive_dir(db).glob(".*.tmp")))
        assert sorted(p.name for p in files) == [bundle_filename(d) for d in corpus["digests"]], f"trial {trial}"
        assert all(sha256_hex(p.read_bytes()) + ".bundle.json" == p.name for p in files)
        if state in FULL_AUDIT_STATES and state not in audited:
            audited.add(state)
            report = audit.audit_store(db)
            assert report.ok, (trial, state, report.failed)
        shutil.rmtree(db.parent)
    print(f"\nmerge crash: {trial} trials, {killed} killed and survived, window {window:.2f}s, states {kinds}, fully audited {sorted(audited)}, "
          f"archive temp files left behind {litter}")


# ------------------------------------------------------------------ submit

LINKAGE_KEY = b"crash-test-linkage-key-0123456789abcdef"
SUBMIT_EPSILON = Fraction(1, 16)


def _submit_cmd(home: Path, export: Path, mapping: Path, out: Path) -> list[str]:
    return [str(CLI), "submit", str(export), "-m", str(mapping), "--period", "2025", "--epsilon", "1/16",
            "--out", str(out), "--home", str(home), "--export-date", "2026-01-15", "--json"]


def _submit_env() -> dict[str, str]:
    return {**os.environ, "AGGREGATOR_LINKAGE_KEY": LINKAGE_KEY.decode()}


def _ledger(home: Path) -> list[dict]:
    path = home / "spending.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _kept(home: Path) -> set[str]:
    folder = home / "releases"
    return {p.name.removesuffix(".bundle.json") for p in folder.glob("*.bundle.json")} if folder.exists() else set()


def _home(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    from aggregator.organisation.home import init_org

    home = tmp_path / "home"
    init_org("shelter-a", "non_investigative", reporter_type="shelter", home=home)
    export, mapping = write_export(tmp_path / "in", [row(i) for i in range(30)])
    return home, export, mapping, tmp_path / "out"


def test_submit_killed_at_random_moments_spends_once_and_keeps_every_ledgered_bundle(tmp_path):
    from aggregator.organisation.release import submit

    rng = random.Random()
    setup = _home(tmp_path / "timing")
    start = time.perf_counter()
    done = subprocess.run(_submit_cmd(*setup), env=_submit_env(), capture_output=True, text=True, timeout=60)
    full = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    outcomes = {"nothing": 0, "orphan": 0, "ledgered": 0, "finished": 0}
    trial = 0
    while trial - outcomes["finished"] < SUBMIT_TRIALS:  # trials whose submit finished before the kill do not count
        assert trial < 2 * SUBMIT_TRIALS, f"only {trial - outcomes['finished']} of {trial} submits were killed"
        trial += 1
        home, export, mapping, out = _home(tmp_path / f"s{trial}")
        # One earlier release, so a damaged rewrite of the ledger would show.
        submit(export, mapping, period=2025, epsilon=SUBMIT_EPSILON, out=out, home=home, linkage_key=LINKAGE_KEY)
        before = _ledger(home)
        proc = subprocess.Popen(_submit_cmd(home, export, mapping, out), env=_submit_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Most kills in the last part (after the imports, where the release is written), some anywhere.
        time.sleep(rng.uniform(0, full) if trial % 3 == 0 else rng.uniform(full * 0.5, full * 0.95))
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err

        entries = _ledger(home)  # a damaged ledger would raise here
        assert entries[: len(before)] == before and len(entries) - len(before) in (0, 1)
        ledgered = {e["digest"] for e in entries}
        kept = _kept(home)
        assert ledgered <= kept, f"trial {trial}: a ledger entry lost its kept bundle"
        orphans = kept - ledgered
        sent = {p.name.removesuffix(".bundle.json") for p in out.glob("*.bundle.json")}
        assert not (sent - ledgered), f"trial {trial}: a bundle left through --out without a ledger entry"
        assert len(orphans) <= 1
        state = "finished" if finished else "ledgered" if len(entries) > len(before) else "orphan" if orphans else "nothing"
        outcomes[state] += 1

        result = submit(export, mapping, period=2025, epsilon=SUBMIT_EPSILON, out=out, home=home,
                        linkage_key=LINKAGE_KEY)
        after = _ledger(home)
        assert after[:-1] == entries and after[-1]["digest"] == result.digest
        assert after[-1]["sequence"] == entries[-1]["sequence"] + 1
        assert sum(Fraction(e["epsilon"]) for e in after) == SUBMIT_EPSILON * len(after)
        assert Fraction(result.epsilon_spent) == SUBMIT_EPSILON * len(after)
        assert {e["digest"] for e in after} <= _kept(home)
        # An orphan is never spent and never sent: it stays out of the ledger and out of --out.
        assert not (orphans & {e["digest"] for e in after})
        assert (out / bundle_filename(result.digest)).exists()
    print(f"\nsubmit crash: {trial} trials, full submit {full:.2f}s, outcomes {outcomes}")


def test_next_submit_removes_an_orphan_kept_bundle(tmp_path):
    from aggregator.organisation.release import submit

    home, export, mapping, out = _home(tmp_path)
    first = submit(export, mapping, period=2025, epsilon=SUBMIT_EPSILON, out=out, home=home, linkage_key=LINKAGE_KEY)
    # What a kill between keeping the bundle and appending the ledger entry leaves: the bundle, no entry.
    orphan = home / "releases" / bundle_filename("0" * 64)
    orphan.write_bytes(read_bundle_file(Path(first.path)))
    submit(export, mapping, period=2025, epsilon=SUBMIT_EPSILON, out=out, home=home, linkage_key=LINKAGE_KEY)
    assert not orphan.exists()
