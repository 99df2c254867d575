"""Two processes on one store: DuckDB allows one writing process, and while it holds the file no other process can
open it, not even read-only. So a second merge, and a `table` read, during a merge get exit 1 and one clean line
"error: store is busy: ..." (never a traceback, never a half-merged table); once the first is done they work.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aggregator.auditor import audit
from aggregator.coordinator.national import national_table
from aggregator.coordinator.merge import merge_bundles
from aggregator.coordinator.store import open_store
from aggregator.coordinator.registry import register_org
from aggregator.coordinator.ledger import verify_ledger
from aggregator.contract.envelope import sha256_hex
from tests import bundlefactory as bf

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".venv" / "bin" / "aggregator"
BY = "form,age_band"
BUSY = "error: store is busy: another aggregator process is using national.duckdb"


def busy_json(stdout: str, stderr: str) -> bool:
    """With --json the same refusal is one JSON error object on stdout and nothing on stderr (issue 16)."""
    error = json.loads(stdout)["error"]
    return stderr == "" and error == {"code": "store-busy", "exit_code": 1, "message": BUSY.removeprefix("error: ")}

# A real merge that stops while it holds the store, inside its one transaction: the rows are inserted, the
# archive thread waits for a line on stdin, COMMIT has not happened.
HOLDER = textwrap.dedent("""
    import sys

    from aggregator.coordinator import merge as merging
    from aggregator.coordinator.merge import merge_bundles

    real = merging.write_archive
    def held(folder, items):
        print("holding", flush=True)
        sys.stdin.readline()
        return real(folder, items)
    merging.write_archive = held
    paths = sys.argv[2:]
    result = merge_bundles(sys.argv[1], paths)
    print("done", result.accepted, flush=True)
""")


@pytest.fixture
def setup(tmp_path):
    db = tmp_path / "national.duckdb"
    orgs = [bf.new_org(f"shelter-{i}") for i in range(3)] + [bf.new_org("police-x", "investigative")]
    for org in orgs:
        register_org(db, org.id, kind=org.kind, reporter_type=org.reporter_type, public_key=org.raw_public)
    bundles = []
    for o, org in enumerate(orgs):
        for seq in (1, 2):
            basis = "statutory" if org.kind == "investigative" else "consent"
            records = [bf.record(f"p{o}-{seq}-{k}", basis=basis, form=["sexual", "labour"][k % 2]) for k in range(4)]
            marginals = [] if org.kind == "investigative" else [bf.marginal(["form", "age_band"], "1/4", fill=seq)]
            bundles.append(bf.bundle_file(tmp_path / "in", org, sequence=seq, records=records, marginals=marginals))
    return db, bundles


def cli(*args: object) -> subprocess.CompletedProcess:
    result = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def hold(db: Path, paths: list[Path]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), *map(str, paths)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding", proc.stderr.read()
    return proc


def release(proc: subprocess.Popen) -> str:
    out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, err
    return out


def digests(db: Path) -> list[str]:
    with open_store(db, write=False) as con:
        return [d for (d,) in con.execute("SELECT digest FROM bundles ORDER BY digest").fetchall()]


def table(db: Path) -> list:
    return national_table(db, 2025, BY.split(",")).as_dict()["rows"]


def test_second_merge_during_a_merge_is_busy_then_retry_merges_everything_once(setup):
    db, bundles = setup
    first, second = bundles[:5], bundles[3:]  # overlapping: three only in the first, three only in the second
    holder = hold(db, first)
    try:
        loser = cli("merge", *second, "--db", db)
        assert loser.returncode == 1
        assert loser.stderr.strip() == BUSY and loser.stdout == ""
        loser_json = cli("merge", *second, "--db", db, "--json")
        assert loser_json.returncode == 1 and busy_json(loser_json.stdout, loser_json.stderr)
    finally:
        out = release(holder)
    assert out.split() == ["done", "5"]
    retry = cli("merge", *second, "--db", db, "--json")
    assert retry.returncode == 0, retry.stderr
    data = json.loads(retry.stdout)
    assert (data["accepted"], data["duplicate"], data["refused"]) == (3, 2, 0)
    assert digests(db) == sorted(sha256_hex(p.read_bytes()) for p in bundles)
    with open_store(db, write=False) as con:
        assert con.execute("SELECT count(*) FROM ledger WHERE event = 'accept'").fetchone()[0] == len(bundles)
    report = audit.audit_store(db)
    assert report.ok, report.failed


def test_merges_started_together_one_wins_losers_retry_each_bundle_once(setup):
    db, bundles = setup
    groups = [bundles[0:4], bundles[2:6], bundles[4:8], bundles[6:8] + bundles[0:2]]
    pending = list(range(len(groups)))
    busy_seen = 0
    for _round in range(20):
        if not pending:
            break
        procs = {i: subprocess.Popen([str(CLI), "merge", *map(str, groups[i]), "--db", str(db), "--json"],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in pending}
        pending = []
        for i, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            assert "Traceback" not in out + err, err
            if proc.returncode == 0:
                data = json.loads(out)
                assert data["refused"] == 0 and data["accepted"] + data["duplicate"] == len(groups[i])
            else:
                assert proc.returncode == 1 and busy_json(out, err), err
                busy_seen += 1
                pending.append(i)
    assert not pending
    assert digests(db) == sorted(sha256_hex(p.read_bytes()) for p in bundles)
    assert verify_ledger(db).ok
    print(f"\nconcurrent merges: {busy_seen} busy refusals retried")


def test_table_during_a_merge_is_busy_never_half_merged(setup):
    db, bundles = setup
    assert merge_bundles(db, bundles[:2]).accepted == 2
    before = table(db)
    holder = hold(db, bundles[2:])  # rows inserted, not committed
    try:
        # DuckDB: one writing process locks the file; a read-only open from another process is refused.
        for args in (("--json",), ("--format", "csv"), ()):
            # (a reader that got in would have to show `before`; DuckDB gives the busy refusal instead)
            result = cli("table", "--db", db, "--period", 2025, "--by", BY, *args)
            if "--json" in args:
                assert result.returncode == 1 and busy_json(result.stdout, result.stderr)
            else:
                assert result.returncode == 1 and result.stderr.strip() == BUSY and result.stdout == ""
        budget = cli("budget", "--db", db, "--json")
        assert budget.returncode == 1 and busy_json(budget.stdout, budget.stderr)
    finally:
        release(holder)
    after = cli("table", "--db", db, "--period", 2025, "--by", BY, "--json")
    assert after.returncode == 0, after.stderr
    rows = json.loads(after.stdout)["rows"]
    assert rows == table(db) and rows != before
    assert digests(db) == sorted(sha256_hex(p.read_bytes()) for p in bundles)
