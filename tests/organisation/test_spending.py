"""The spending file under concurrent use (issue 15, item 5): appends from several processes at once lose nothing,
and check-and-append under `locked()` keeps the cap and unique sequences."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

from aggregator.organisation.spending import Spend, SpendingFile

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent("""
    import sys, time
    from fractions import Fraction
    from pathlib import Path
    from aggregator.errors import BudgetExceeded
    from aggregator.organisation.spending import Spend, SpendingFile

    path, worker, count, mode = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    spending = SpendingFile(path, Fraction(sys.argv[5]))
    sys.stdin.readline()  # start together
    done = refused = 0
    for i in range(count):
        if mode == "append":  # plain appends: the file's own read-modify-write
            spending.append(Spend(2025, worker * 1000 + i, "0", f"{worker:04d}{i:060d}", "t", 0, 0))
            done += 1
        else:  # what submit does: check, choose the sequence, work a little, append, all under the lock
            try:
                with spending.locked():
                    spending.check(2025, Fraction(1, 10))
                    sequence = spending.next_sequence(2025)
                    time.sleep(0.01)
                    spending.append(Spend(2025, sequence, "1/10", f"{worker:04d}{i:060d}", "t", 0, 0))
                    done += 1
            except BudgetExceeded:
                refused += 1
    print(done, refused)
""")


def _run(path: Path, workers: int, count: int, mode: str, cap: str) -> list[tuple[int, int]]:
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(w), str(count), mode, cap],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for w in range(workers)
    ]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        done, refused = out.split()
        results.append((int(done), int(refused)))
    return results


def test_concurrent_appends_lose_no_entry(tmp_path):
    path = tmp_path / "ledger.jsonl"
    _run(path, workers=6, count=15, mode="append", cap="1")
    entries = SpendingFile(path).entries()
    assert len(entries) == 6 * 15
    assert len({e.digest for e in entries}) == 6 * 15


def test_concurrent_check_and_append_keeps_the_cap_and_unique_sequences(tmp_path):
    path = tmp_path / "ledger.jsonl"
    results = _run(path, workers=5, count=4, mode="submit", cap="1")
    entries = SpendingFile(path, Fraction(1)).entries()
    assert sum(done for done, _ in results) == len(entries) == 10  # exactly the cap: 10 x 1/10
    assert sum(refused for _, refused in results) == 20 - 10
    assert sorted(e.sequence for e in entries) == list(range(1, 11))
    assert SpendingFile(path, Fraction(1)).spent(2025) == 1
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    spending = SpendingFile(tmp_path / "ledger.jsonl", Fraction(1))
    with spending.locked(), SpendingFile(tmp_path / "ledger.jsonl").locked():
        spending.append(Spend(2025, 1, "1/2", "0" * 64, "t", 0, 0))
    assert spending.spent(2025) == Fraction(1, 2)
