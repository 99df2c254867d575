"""Long DP audit: empirical privacy loss of aggregator.privacy.release_counts against the stated epsilon.

For each epsilon, the affected cell's output under neighbouring inputs (0 vs 1 person) is sampled RUNS times per
side and audited as in tests/adversarial/test_dp_audit.py (every single value, every tail, "absent"; Chernoff bounds with a
Bonferroni split of alpha). Prints the point estimate of the privacy loss, its lower confidence bound and the
verdict, then the same for two deliberately broken mechanisms, which must be caught.

    .venv/bin/python benchmarks/dp_audit_long.py [--runs 300000] [--alpha 1e-6]
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.privacy.mechanism import calibrated_measurement, release_counts  # noqa: E402
from tests.test_dp_audit import (  # noqa: E402
    D,
    D2,
    VAR_EPSILON,
    audit,
    cell_samples,
    half_scale_mechanism,
    noise_accepted,
    nonempty_cells_mechanism,
    opendp_laplace,
    real_mechanism,
)

EPSILONS = [Fraction(2), Fraction(1), Fraction(1, 2), Fraction(1, 4), Fraction(1, 7), Fraction(1, 10)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300_000, help="runs of the mechanism per neighbour")
    parser.add_argument("--alpha", type=float, default=1e-6, help="false-alarm probability of each audit")
    args = parser.parse_args()
    failures = 0
    print(f"{'mechanism':<28} {'stated eps':>10} {'empirical':>10} {'lower 1-a':>10} {'worst event':>12}  verdict   time")
    rows = [(f"release_counts eps={e}", real_mechanism(e), e, True) for e in EPSILONS]
    rows += [(f"BROKEN half scale eps={e}", half_scale_mechanism(e), e, False) for e in (Fraction(1), Fraction(1, 7))]
    rows += [("BROKEN non-empty cells eps=1", nonempty_cells_mechanism(Fraction(1)), Fraction(1), False)]
    for name, mech, eps, should_pass in rows:
        start = time.perf_counter()
        runs = args.runs if should_pass or "half" in name else 5_000
        r = audit(cell_samples(mech, D, 0, runs), cell_samples(mech, D2, 0, runs), float(eps), args.alpha)
        verdict = "pass" if r.passed else "DETECTED"
        ok = r.passed == should_pass
        failures += not ok
        print(f"{name:<28} {float(eps):>10.4f} {r.empirical:>10.4f} {r.lower_bound:>10.4f} {r.worst_event:>12}  "
              f"{verdict:<8} {time.perf_counter() - start:5.1f}s{'' if ok else '  <-- UNEXPECTED'}")
    print()
    _, scale = calibrated_measurement(VAR_EPSILON)
    for label, samples in (
        ("release_counts", release_counts([0] * 60_000, VAR_EPSILON)[0]),
        ("BROKEN scale x0.7", opendp_laplace(scale * 0.7)([0] * 60_000)),
        ("BROKEN scale x1.3", opendp_laplace(scale * 1.3)([0] * 60_000)),
    ):
        accepted, detail = noise_accepted(samples, scale)
        should = label == "release_counts"
        failures += accepted != should
        print(f"noise check {label:<20} {'accepted' if accepted else 'REFUSED':<9} {detail}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
