"""The dark number on the synthetic nation: coverage, error and width of the per-stratum estimate, 20 seeds.

For every seed a synthetic nation (scale 1: about 7,000 victims, about half known to some organisation) gives,
per stratum of a plan with lists and strata, the list pattern of every known person (from the synthetic truth: no
linkage error) and the true total (known or not). Two settings are estimated exactly as `aggregator estimate` does:

  * no noise: the exact pattern table of people (what a trusted central register would see);
  * joint release: the people hashed into the plan's buckets (m from the public prior), every bucket-pattern count
    plus the computing parties' noise shares at the plan's scale (joint/noise.py: `released`, drawn as inside the
    computation; the secure computation opens exactly these sums, tests/joint), then the public collision
    correction (estimate/buckets.py) and the estimate with its bootstrap.

Printed per setting: coverage of the true stratum totals by the 95% interval, median absolute relative error of
the point estimate, mean interval width, and how much the release widens the interval (must show: at most 25%).
Beside it, per stratum, the information bound: by the Cramer-Rao bound of the model chosen on the exact table (its
fitted cell means taken as the truth; the exact Fisher information of a Poisson count plus the release's noise,
collisions left out), the least factor by which any estimator's standard error of the total grows with the noise.
It tells how much of the widening the noise forces and how much the procedure adds.

    python benchmarks/mse.py [--seeds 20] [--boot 200] [--epsilon 1] [--lists four] [--strata age,origin]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.coordinator.darknumber import stratum_label  # noqa: E402
from aggregator.estimate import EstimationError, estimate_stratum  # noqa: E402
from aggregator.estimate.buckets import pattern_table_from_buckets  # noqa: E402
from aggregator.estimate.mse import _design, _prepare  # noqa: E402
from aggregator.estimate.tables import PatternTable  # noqa: E402
from aggregator.joint.layout import PATTERNS_SUFFIX  # noqa: E402
from aggregator.joint.noise import model_of, released, released_variance  # noqa: E402
from aggregator.joint.plan import STRATA_GROUP, Plan, PartyRef, build_plan, stratum_of  # noqa: E402
from aggregator.synthetic.nation import TRUTH_FILE, UNSEEN_FILE, make_nation  # noqa: E402


def _plan(epsilon: Fraction, lists: str, strata: tuple[str, ...]) -> Plan:
    key = lambda: __import__("base64").b64encode(os.urandom(32)).decode("ascii")  # noqa: E731
    parties = [PartyRef(f"p{i}", key(), key()) for i in range(3)]
    document = build_plan(2025, epsilon, parties, deadline=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
                          lists=lists, strata=strata)
    return Plan(document, "0" * 64)


def _nation_tables(seed: int, plan: Plan, strata: tuple[str, ...], folder: Path):
    """Per stratum: the masks of the known people (bit k = list k) and the true total."""
    import duckdb

    make_nation(2025, seed, folder, scale=1.0)
    manifest = json.loads((folder / "nation.json").read_text(encoding="utf-8"))
    reporter = {o["id"]: o["reporter_type"] for o in manifest["orgs"]}
    with duckdb.connect() as con:
        known = con.execute("SELECT age_band, nationality_group, orgs FROM read_parquet($p)",
                            {"p": str(folder / TRUTH_FILE)}).fetchall()
        unseen = con.execute("SELECT age_band, nationality_group FROM read_parquet($p)",
                             {"p": str(folder / UNSEEN_FILE)}).fetchall()
    masks: dict[str, list[int]] = {}
    for age, origin, orgs in known:
        name = stratum_of(strata, {"age_band": age, "nationality_group": origin})
        mask = sum(1 << k for k in {plan.list_index(reporter[o]) for o in orgs})
        masks.setdefault(name, []).append(mask)
    missed = Counter(stratum_of(strata, {"age_band": a, "nationality_group": o}) for a, o in unseen)
    return {name: (np.asarray(m), len(m) + missed[name]) for name, m in masks.items()}


def _released(masks: np.ndarray, m: int, n_lists: int, model: str, scale: float, rng) -> np.ndarray:
    buckets = np.zeros(m, dtype=np.int64)
    np.bitwise_or.at(buckets, rng.integers(0, m, size=len(masks)), masks)
    exact = np.bincount(buckets, minlength=2 ** n_lists)
    return exact + np.asarray(released(model, [scale] * len(exact)))


def _noise_pmf(model: str, scale: float) -> np.ndarray:
    """The released noise's pmf on -K..K: NB(r) - NB(r) with r the model's variance multiple of one discrete Laplace
    (a discrete Laplace is NB(1) - NB(1); the Polya shares of three parties add up to NB(3/2) - NB(3/2))."""
    from scipy import stats

    from aggregator.privacy.mechanism import discrete_laplace_variance

    r = released_variance(model, scale) / discrete_laplace_variance(scale)
    k = np.arange(int(60 * scale) + 60)
    one_side = stats.nbinom.pmf(k, r, 1 - np.exp(-1 / scale))
    return np.convolve(one_side, one_side[::-1])


def _count_information(mu: float, pmf: np.ndarray) -> float:
    """Fisher information about mu of Poisson(mu) + the noise, exactly (d/dmu Pois(k) = Pois(k-1) - Pois(k))."""
    from scipy import stats

    k = np.arange(int(mu + 12 * np.sqrt(mu) + 30))
    p = stats.poisson.pmf(k, mu)
    dp = np.where(k > 0, stats.poisson.pmf(k - 1, mu), 0.0) - p
    density, slope = np.convolve(p, pmf), np.convolve(dp, pmf)
    keep = density > 1e-300
    return float(np.sum(slope[keep] ** 2 / density[keep]))


def information_bound(table: PatternTable, fit, model: str, scale: float) -> float | None:
    """How much the noise must widen the total's standard error at least, for any estimator (module docstring)."""
    prep = _prepare(table, 0.0)
    if prep.lists != fit.lists:
        return None
    pairs = [tuple(sorted((prep.lists.index(a), prep.lists.index(b)))) for a, b in fit.chosen_terms]
    X = _design(prep.bits, pairs)
    from aggregator.estimate.glm import _newton_poisson

    start = np.zeros(X.shape[1])
    start[0] = np.log(prep.y.mean())
    fitted = _newton_poisson(X, prep.y, start)
    if fitted is None:
        return None
    beta, mu = fitted
    pmf = _noise_pmf(model, scale)
    gradient = X.T @ mu
    gradient[0] += np.exp(beta[0])  # d total / d beta, the unseen cell included

    def sd(information: np.ndarray) -> float:
        fisher = X.T @ ((mu ** 2 * information)[:, None] * X)
        return float(np.sqrt(gradient @ np.linalg.solve(fisher, gradient)))

    return sd(np.array([_count_information(m, pmf) for m in mu])) / sd(1 / mu)


def run(seeds: int, n_boot: int, epsilon: Fraction, lists: str, strata: tuple[str, ...]) -> None:
    plan = _plan(epsilon, lists, strata)
    model = model_of(plan.version)
    names = tuple(n for n, _ in plan.lists)
    scales = plan.group_scales()
    sizes = {c["name"]: int(c["m"]) for c in plan.cells_of(STRATA_GROUP)}
    results: dict[str, dict[tuple[int, str], tuple[float, float, float, int]]] = {"no noise": {}, "joint release": {}}
    bounds: dict[tuple[int, str], float] = {}
    failures = Counter()
    started = time.time()
    rng = np.random.default_rng(2025)
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            tables = _nation_tables(seed, plan, strata, Path(tmp) / "nation")
        for name, (masks, truth) in sorted(tables.items()):
            exact = np.bincount(masks, minlength=2 ** len(names))[1:]
            scale = scales[name + PATTERNS_SUFFIX]
            noisy = _released(masks, sizes[name], len(names), model, scale, rng)
            noise = released_variance(model, scale)
            table = pattern_table_from_buckets(names, noisy, sizes[name], noise, readded=noise)
            for label, table, told in (("no noise", PatternTable(names, tuple(exact)), (0.0, None)),
                                       ("joint release", table, (scale, model))):
                try:
                    fit = estimate_stratum(table, told[0], noise_model=told[1], n_bootstrap=n_boot,
                                           seed=int(rng.integers(1 << 31)))
                except EstimationError:
                    failures[label, stratum_label(name)] += 1
                    continue
                if fit.lower is None:
                    failures[label, stratum_label(name)] += 1
                    continue
                results[label][seed, name] = (fit.estimate, fit.lower, fit.upper, truth)
                if label == "no noise":
                    bound = information_bound(table, fit, model, scale)
                    if bound is not None:
                        bounds[seed, name] = bound
        print(f"seed {seed}: {time.time() - started:.0f} s", file=sys.stderr)
    print(f"{seeds} seeds of the synthetic nation, lists {lists} ({', '.join(names)}), strata "
          f"{', '.join(stratum_label(n) for n in sizes)}; joint epsilon {epsilon} (pattern tables "
          f"{plan.group_epsilons()[next(iter(sizes)) + PATTERNS_SUFFIX]}, noise {model} of scale "
          f"{scales[next(iter(sizes)) + PATTERNS_SUFFIX]:.3g} per count), "
          f"{n_boot} bootstrap replicates")
    widths = {}
    for label, rows in results.items():
        a = np.asarray(list(rows.values()), dtype=float)
        covered = int(np.sum((a[:, 1] <= a[:, 3]) & (a[:, 3] <= a[:, 2])))
        error = float(np.median(np.abs(a[:, 0] / a[:, 3] - 1)))
        widths[label] = float(np.median((a[:, 2] - a[:, 1]) / a[:, 3]))
        print(f"  {label:13s}: coverage {covered}/{len(a)} = {100 * covered / len(a):.0f}%, median abs. rel. error "
              f"{100 * error:.1f}%, median width {100 * widths[label]:.0f}% of the true total (mean "
              f"{np.mean(a[:, 2] - a[:, 1]):,.0f} people); no estimate in "
              f"{sum(n for (lab, _), n in failures.items() if lab == label)} stratum-seeds"
              + "".join(f", {n} {who}" for (lab, who), n in sorted(failures.items()) if lab == label))
    both = sorted(set(results["no noise"]) & set(results["joint release"]))  # the same stratum-seeds on both sides
    paired = {label: float(np.median([(rows[k][2] - rows[k][1]) / rows[k][3] for k in both]))
              for label, rows in results.items()}
    for name in sizes:
        keys = [k for k in both if k[1] == name]
        ratios = [(results["joint release"][k][2] - results["joint release"][k][1])
                  / (results["no noise"][k][2] - results["no noise"][k][1]) for k in keys]
        floor = [bounds[k] for k in keys if k in bounds]
        if ratios:
            print(f"  {stratum_label(name):18s}: the release widens the interval x{np.median(ratios):.2f} (median of "
                  f"{len(ratios)}); information bound: at least x{np.median(floor) if floor else float('nan'):.2f}")
    print(f"  the release widens the median interval by {100 * (paired['joint release'] / paired['no noise'] - 1):+.0f}% "
          f"on the {len(both)} stratum-seeds both estimate ({100 * (widths['joint release'] / widths['no noise'] - 1):+.0f}% "
          f"over all estimates; must show: at most +25%); {time.time() - started:.0f} s")
    floor = [bounds[k] for k in both if k in bounds]
    if floor:
        print(f"  information bound on those stratum-seeds: no estimator's standard error grows by less than "
              f"{100 * (np.median(floor) - 1):+.0f}% (median; each stratum's own bound above)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--epsilon", default="1")
    parser.add_argument("--lists", default="four")
    parser.add_argument("--strata", default="age,origin")
    args = parser.parse_args()
    strata = tuple(s for s in args.strata.split(",") if s)
    run(args.seeds, args.boot, Fraction(args.epsilon), args.lists, strata)


if __name__ == "__main__":
    main()
