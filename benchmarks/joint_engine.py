"""Benchmark of the joint (MPC) engine: three local parties on 127.0.0.1.

    python benchmarks/joint_engine.py [--orgs 50] [--cells 60] [--m 2400] [--strata 4] [--lists 4]

Prints: organisation-side share+seal time and bundle bytes per organisation,
wall time of the joint run, and per party its MPC time, bytes sent and peak
memory (from each party's stats.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.joint import noise, runner  # noqa: E402
from aggregator.joint.layout import Cell, Layout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orgs", type=int, default=50)
    ap.add_argument("--cells", type=int, default=60)
    ap.add_argument("--m", type=int, default=2400, help="buckets per cell (8 x ~300 people)")
    ap.add_argument("--strata", type=int, default=4)
    ap.add_argument("--lists", type=int, default=4)
    ap.add_argument("--people-per-org-cell", type=int, default=12)
    ap.add_argument("--timeout", type=float, default=1200)
    a = ap.parse_args()

    orgs = [f"org{i:02d}" for i in range(a.orgs)]
    cells = [Cell(f"c{j:02d}", a.m, f"marginal{j % 3}", stratum=j < a.strata)
             for j in range(a.cells)]
    lay = Layout(cells=tuple(cells), max_orgs=64, n_lists=a.lists,
                 org_lists={o: i % a.lists for i, o in enumerate(orgs)})
    rng = np.random.default_rng(7)
    vecs = {}
    for o in orgs:
        v = np.zeros(lay.size, dtype=np.uint8)
        for j in range(a.cells):
            v[j * a.m + rng.integers(0, a.m, a.people_per_org_cell)] = 1
        vecs[o] = v

    with tempfile.TemporaryDirectory(prefix="joint-bench-") as tmp:
        tmp = Path(tmp)
        keys = runner.make_party_keys(tmp / "keys")
        t = time.perf_counter()
        runner.write_shares(tmp / "shares", lay, "bench-plan", vecs, keys)
        t_share = (time.perf_counter() - t) / a.orgs
        sizes = [os.path.getsize(tmp / "shares" / f"{orgs[0]}.{i}.share") for i in range(3)]
        sc = noise.scales({g: 1.0 for g in lay.groups()}, noise.sensitivities(lay))
        job = runner.Job(lay, "bench-plan", orgs, sc, str(tmp / "shares"), keys)
        t = time.perf_counter()
        res = runner.run_local(job, timeout=a.timeout, workdir=tmp / "work")
        wall = time.perf_counter() - t
        stats = [json.loads((tmp / "work" / f"party{i}" / "stats.json").read_text())
                 for i in range(3)]

    n_cmp = lay.size + sum(c.m * (2 + a.lists) for c in lay.strata)
    print(f"layout: {a.orgs} orgs x {a.cells} cells x m={a.m} = {lay.size} buckets per org; "
          f"{a.strata} strata with {a.lists} lists; {n_cmp} secure comparisons")
    print(f"organisation side: share+seal {t_share * 1000:.1f} ms per org; bundle bytes per org "
          f"{sum(sizes)} (party 0 {sizes[0]}, party 1 {sizes[1]}, party 2 {sizes[2]})")
    print(f"joint run wall time: {wall:.1f} s (included {len(res.included)}, "
          f"excluded {len(res.excluded)})")
    for i, s in enumerate(stats):
        print(f"party {i}: mpc {s['mpc_seconds']:.1f} s, sent {s['bytes_sent'] / 1e6:.1f} MB, "
              f"peak memory {s['peak_rss_kib'] / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
