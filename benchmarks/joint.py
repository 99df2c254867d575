"""The joint release on the synthetic nation: accuracy against the truth, interval coverage, cost.

    .venv/bin/python benchmarks/joint.py                       # 20 seeds at national size (about 2 minutes a seed)
    .venv/bin/python benchmarks/joint.py --seeds 3 --scale 0.3   # a quick look

For every seed the whole demo pipeline runs with the joint path (aggregator.synthetic.demo.run_demo): 52
organisations validate and submit (own noisy marginals at epsilon 1 AND encrypted bucket shares for the plan at
epsilon 1), the coordinator merges, three local MPyC parties compute. Printed, over seeds and cells of the
published figures (forms, minors, total):
  joint error        relative error of the national total against the distinct truth; mean absolute cell error
  coverage           share of 95% intervals covering the truth, and covering the joint target (distinct pseudonyms:
                     what the release counts without noise, the upper end of the linkage bounds)
  central reference  the mean absolute error a single trusted central release would have on the same cells: the
                     exact E|DL(b)| of one discrete Laplace draw at the plan's scale for that marginal (no collisions,
                     none of the other parties' noise shares)
  per-organisation   mean absolute cell error of today's per-organisation release against the truth
  cost               seconds per run, bytes of one bundle's joint section
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from utility import abs_mean_discrete_laplace  # noqa: E402  (one E|noise| of a central release for both scripts)


def one_seed(seed: int, scale: float) -> dict:
    from aggregator.joint.plan import read_plan_file
    from aggregator.organisation.explain import explain_bundle
    from aggregator.synthetic.demo import BUNDLES_DIR, PLAN_FILE, run_demo

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = run_demo(Path(tmp) / "demo", seed=seed, scale=scale, epsilon=Fraction(1), workers=2)
        seconds = time.perf_counter() - started
        plan = read_plan_file(Path(tmp) / "demo" / PLAN_FILE)
        bundle = sorted((Path(tmp) / "demo" / BUNDLES_DIR).glob("*.bundle.json"))[0]
        joint_bytes = sum(explain_bundle(bundle).joint["share_bytes"])
    scales = plan.group_scales()
    central = {"form": abs_mean_discrete_laplace(scales["form"]), "total": abs_mean_discrete_laplace(scales[
        "total"]), "minors": abs_mean_discrete_laplace(scales["age_band"], 2)}  # two cells
    rows = [r for r in result.rows]
    return {"seed": seed, "seconds": seconds, "bytes": joint_bytes, "rows": [
        {"key": r.key, "truth": r.truth, "joint": r.joint, "per_org": r.estimate,
         "central_mae": central["total" if r.key == "total" else "minors" if r.key == "minors" else "form"]}
        for r in rows]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    runs = []
    for seed in range(1, args.seeds + 1):
        runs.append(one_seed(seed, args.scale))
        print(f"seed {seed}: {runs[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    cells = [row for run in runs for row in run["rows"]]
    totals = [row for row in cells if row["key"] == "total"]
    rel = [abs(r["joint"]["estimate"] - r["truth"]) / r["truth"] for r in totals]
    mae_joint = statistics.fmean(abs(r["joint"]["estimate"] - r["truth"]) for r in cells)
    mae_target = statistics.fmean(abs(r["joint"]["estimate"] - r["joint"]["target"]) for r in cells)
    mae_central = statistics.fmean(r["central_mae"] for r in cells)
    mae_per_org = statistics.fmean(abs(r["per_org"] - r["truth"]) for r in cells)
    print(f"joint release on the synthetic nation: {args.seeds} seeds, scale {args.scale}, epsilon 1 per organisation")
    print(f"  national total: median relative error {statistics.median(rel):.2%}, max {max(rel):.2%}")
    print(f"  95% coverage: truth {statistics.fmean(r['joint']['covered'] for r in cells):.0%}, "
          f"joint target {statistics.fmean(r['joint']['target_covered'] for r in cells):.0%} "
          f"({len(cells)} cells: forms, minors, total)")
    width = [(r["joint"]["upper"] - r["joint"]["lower"]) / 2 / r["truth"] for r in totals]
    print(f"  national total interval: median half-width {statistics.median(width):.2%} of the truth "
          "(linkage bounds included)")
    print(f"  mean absolute cell error: joint {mae_joint:.1f} vs truth, {mae_target:.1f} vs its target; "
          f"central reference {mae_central:.1f}; per-organisation release {mae_per_org:.1f}")
    print(f"  ratios: joint/central {mae_joint / mae_central:.2f} (vs truth; {mae_target / mae_central:.2f} vs its target); "
          f"joint/per-organisation (vs truth) {mae_joint / mae_per_org:.2f}")
    print(f"  cost: {statistics.fmean(r['seconds'] for r in runs):.0f} s per whole run; joint section of one bundle "
          f"{runs[0]['bytes']:,} bytes")


if __name__ == "__main__":
    main()
