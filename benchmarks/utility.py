"""Utility of the national release on the synthetic nation: error against the truth and coverage of the 95% intervals.

    .venv/bin/python benchmarks/utility.py                      # 20 seeds, epsilon 1 per organisation-year, both releases
    .venv/bin/python benchmarks/utility.py --seeds 4 --scale 0.3 --processes 2   # a quick look

Two releases are compared on the same seeds:
  naive           equal split over seven marginals (--workload equal), raw sums of the noisy counts
  workload-aware  the monitor split (--workload monitor, the default) and the consistent, non-negative WLS
                  estimates (consistency.py) with their intervals
  published-only  the same with only the two tables behind the published figures (--workload published)
  joint           the joint release of three local computing parties (distinct people, linkage bounds), against a
                  single central release at the plan's scales (exact E|noise|) and the workload-aware release

For every seed the whole demo pipeline runs (aggregator.synthetic.demo.run_demo: synthetic nation, every
organisation validates, releases and signs, the coordinator registers and merges), then each figure the national
monitor publishes is compared cell by cell with
  truth           distinct people known to any organisation (nation.truth_counts)
  release target  what the release counts without noise: people with a lawful basis once, plus every organisation's
                  people without one (a person known to several organisations counts at each; demo.release_target_counts)
Printed per figure, over all seeds and cells: mean absolute error (MAE) and relative error against the truth, bias
(mean signed error), MAE against the release target (the noise alone), the mean standard error, and the share of 95%
intervals that cover the truth and the release target. Runs seeds in parallel processes (--processes, default 2).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from fractions import Fraction
from pathlib import Path

MINORS = ("under_15", "15_17")
# The national monitor's published figures: name -> (national table breakdown, truth breakdown)
FIGURES = ("total", "form", "age_band", "minors_by_form", "minors", "nationality_group")


def _cells(db: Path, year: int, nation: Path, raw: bool) -> list[dict]:
    """One dict per published cell: figure, cell, truth, target, estimate, se, lower, upper.

    raw: the raw sums and their variance; else the table's own (consistent) estimate and interval."""
    from aggregator.synthetic.demo import release_target_counts
    from aggregator.coordinator.national import national_table, sum_rows
    from aggregator.synthetic.nation import truth_counts

    out: list[dict] = []

    def add(figure: str, cell: str, truth: int, target: int, rows: list, z: float) -> None:
        if raw:
            estimate = sum(r.raw_estimate if r.raw_estimate is not None else r.estimate for r in rows)
            variance = math.fsum(r.raw_variance if r.raw_variance is not None else r.variance for r in rows)
            se = math.sqrt(variance)
            lower, upper = estimate - z * se, estimate + z * se
        else:
            estimate, se, lower, upper = sum_rows(rows, z)
        out.append({"figure": figure, "cell": cell, "truth": truth, "target": target, "estimate": estimate, "se": se,
                    "lower": lower, "upper": upper})

    for dim in ("form", "age_band", "nationality_group"):
        table = national_table(db, period=year, by=(dim,))
        truth = truth_counts(nation, [dim])
        target = release_target_counts(nation, [dim])
        for row in table.cells(year):
            code = row.dims[dim]
            add(dim, code, truth[(code,)], target[(code,)], [row], table.z)
        if dim == "form":
            add("total", "total", sum(truth.values()), sum(target.values()), [table.total(year)], table.z)
    table = national_table(db, period=year, by=("form", "age_band"))
    truth = truth_counts(nation, ["form", "age_band"])
    target = release_target_counts(nation, ["form", "age_band"])
    by_form: dict[str, list] = {}
    for row in table.cells(year):
        if row.dims["age_band"] in MINORS:
            by_form.setdefault(row.dims["form"], []).append(row)
    for form, rows in by_form.items():
        add("minors_by_form", form, sum(truth[(form, b)] for b in MINORS), sum(target[(form, b)] for b in MINORS),
            rows, table.z)
    return out


def _joint_cells(db: Path, year: int, nation: Path, people: list[tuple]) -> list[dict]:
    """The joint release's published cells (total, forms, age bands, minors): its estimate and interval (linkage
    bounds included) against the distinct truth, and two references (see below):
      central       the mean absolute error E|noise| a single trusted central release would have on the same cell at
                    the plan's scale for that marginal if it knew who is who (one discrete Laplace draw per cell, no
                    collisions, no linkage error; minors sum two such cells)
      central_same  that of a single central release on the same data: the same pseudonyms (a local one cannot be
                    matched there either), the same cells and estimator, one discrete Laplace draw per cell
                    (_replicated)
    and the noise's calibration where the release identifies its figure: whether the distinct pseudonyms L lie
    within the fit of L +/- 1.96 se (`linked_covered`). `simulated`: the joint release's own mean absolute error over
    many simulated releases of the same data (_replicated), for ratios with less sampling error than one real run."""
    from aggregator.contract.codelists import codes
    from aggregator.coordinator.joint import stored_joint
    from aggregator.coordinator.national_joint import _known, figures, joint_release
    from aggregator.coordinator.store import open_store
    from aggregator.synthetic.nation import truth_counts

    with open_store(db, write=False) as con:
        plan, _ = stored_joint(con, year)
        known = _known(con, year, [(), *plan.marginals])
    scales = plan.group_scales()
    tables = joint_release(db, year)
    exact = _pseudonym_counts(people)
    same, simulated = _replicated(plan, exact, known, joint=False), _replicated(plan, exact, known, joint=True)
    out = []

    def add(figure: str, cell: str, dims: tuple[str, ...], keys: list, truth: int, cells: int) -> None:
        shown = figures(tables[dims], keys)
        linked, variance, _ = tables[dims].linked.sum_of(keys)
        pseudonyms = sum(exact[(False, dims)].get(k, 0) for k in keys)
        group = ",".join(dims) if dims else "total"
        out.append({"figure": figure, "cell": cell, "truth": truth, "target": truth, "estimate": shown["estimate"],
                    "se": shown["se"], "lower": shown["lower"], "upper": shown["upper"],
                    "central": abs_mean_discrete_laplace(scales[group], cells),
                    "central_same": same(dims, keys, truth), "simulated": simulated(dims, keys, truth),
                    "linked_covered": abs(linked - pseudonyms) <= 1.96 * math.sqrt(variance)})

    total = truth_counts(nation, ["form"])
    add("total", "total", (), [()], sum(total.values()), 1)
    for dim in ("form", "age_band"):
        truth = truth_counts(nation, [dim])
        for code in codes(dim):
            add(dim, code, (dim,), [(code,)], truth[(code,)], 1)
    truth = truth_counts(nation, ["age_band"])
    add("minors", "minors", ("age_band",), [(b,) for b in MINORS], sum(truth[(b,)] for b in MINORS),
        2)
    return out


def _pseudonym_counts(people: list[tuple]) -> dict:
    """Exact distinct pseudonyms per cell of the total, forms and age bands, from (identity digest, form, age band,
    linkable) rows (synthetic.demo.joint_people): (only_local, dims) -> {key: count}; only_local counts only the
    pseudonyms contributed as local ones (the plan's "unlinked" cells), else every pseudonym (its other cells)."""
    out: dict = {}
    for only_local in (False, True):
        rows = [r for r in people if not (only_local and r[3])]
        out[(only_local, ())] = {(): len({r[0] for r in rows})}
        for index, dim in ((1, ("form",)), (2, ("age_band",))):
            found: dict = {}
            for r in rows:
                found.setdefault((r[index],), set()).add(r[0])
            out[(only_local, dim)] = {k: len(v) for k, v in found.items()}
    return out


SAME_DATA_DRAWS = 200


def _replicated(plan, exact: dict, known: dict, joint: bool):
    """SAME_DATA_DRAWS releases of the plan's cells (total, marginals, "unlinked" cells) from their exact distinct
    pseudonyms, each through the joint release's own estimator (coordinator/joint.py: joint_tables, the consistency
    fit and the linkage shift; national_joint.figures). Returns f(dims, keys, truth) -> mean |estimate - truth|.

    joint=False: a single central release on the same data: each cell's count plus one discrete Laplace draw at
    the plan's scale for its group (OpenDP's sampler), no collisions; the error a trusted curator holding every
    organisation's pseudonymised people would have.
    joint=True: the joint release simulated: the people hashed afresh into the cell's buckets, the non-empty
    buckets plus the noise as the parties draw it (joint/noise.py: released), corrected by linear counting
    (coordinator/joint.py: joint_cell). Averaged over many draws it measures the joint release's expected error far
    more precisely than the one real computation per seed, which checks it."""
    import numpy as np

    from aggregator.coordinator.joint import JointCell, joint_cell, joint_tables
    from aggregator.coordinator.national_joint import figures
    from aggregator.estimate.noise import discrete_laplace_variance, noise_draws
    from aggregator.joint.noise import model_of, released_variance
    from aggregator.joint.plan import TOTAL, UNLINKED_PREFIX

    scales = plan.group_scales()
    model = model_of(plan.version) if joint else None
    counts, groups = [], []
    for c in plan.document["cells"]:
        local = c["name"].startswith(UNLINKED_PREFIX)
        name = c["name"].removeprefix(UNLINKED_PREFIX)
        if name == TOTAL:
            dims, key = (), ()
        else:
            pairs = [part.split("=", 1) for part in name.split(",")]
            dims, key = tuple(d for d, _ in pairs), tuple(k for _, k in pairs)
        counts.append(exact[(local, dims)].get(key, 0))
        groups.append(c["group"])
    noise = {g: noise_draws(scales[g], SAME_DATA_DRAWS * groups.count(g), model).reshape(SAME_DATA_DRAWS, -1)
             for g in set(groups)}
    rng = np.random.default_rng()  # bucket placement only (a keyed hash in the real computation), not noise
    releases = []
    for r in range(SAME_DATA_DRAWS):
        used = {g: 0 for g in noise}
        cells = {}
        for c, count, g in zip(plan.document["cells"], counts, groups):
            e = int(noise[g][r][used[g]])
            used[g] += 1
            m = int(c["m"])
            if joint:
                filled = len(np.unique(rng.integers(0, m, size=count)))
                cells[c["name"]] = joint_cell(c["name"], g, filled + e, m, released_variance(model, scales[g]))
            else:
                x = count + e
                cells[c["name"]] = JointCell(c["name"], g, x, m, float(x), discrete_laplace_variance(scales[g]),
                                             x - 2.0, x + 2.0)
        releases.append(joint_tables(plan, cells, known))

    def error(dims, keys, truth) -> float:
        return statistics.fmean(abs(figures(t[dims], keys)["estimate"] - truth) for t in releases)

    return error


def abs_mean_discrete_laplace(scale: float, n: int = 1) -> float:
    """E|X1 + ... + Xn| for independent P(k) ~ exp(-|k|/scale), by convolving the exact probabilities (the mean
    absolute error of a central release: benchmarks/joint.py uses it too)."""
    a = math.exp(-1.0 / scale)
    reach = int(60 * scale) + 10
    one = [(1 - a) / (1 + a) * a ** abs(k) for k in range(-reach, reach + 1)]
    dist = [1.0]
    for _ in range(n):
        dist = [math.fsum(dist[j] * one[i - j] for j in range(len(dist)) if 0 <= i - j < len(one))
                for i in range(len(dist) + len(one) - 1)]
    centre = (len(dist) - 1) // 2
    return math.fsum(p * abs(i - centre) for i, p in enumerate(dist))


RELEASES = {"naive": ("equal", True), "workload-aware": ("monitor", False), "published-only": ("published", False),
            "joint": ("monitor", False)}


def one_seed(seed: int, year: int, epsilon: str, scale: float, release: str) -> tuple[int, float, list[dict]]:
    from aggregator.synthetic.demo import DB_FILE, NATION_DIR, run_demo

    with tempfile.TemporaryDirectory(prefix=f"utility-{seed}-") as tmp:
        out = Path(tmp) / "demo"
        started = time.perf_counter()
        workload, raw = RELEASES[release]
        joint = release == "joint"
        run_demo(out, year=year, seed=seed, epsilon=Fraction(epsilon), scale=scale, workers=1, workload=workload,
                 joint=joint)
        if joint:
            from aggregator.synthetic.demo import joint_people

            cells = _joint_cells(out / DB_FILE, year, out / NATION_DIR, joint_people(out, year))
        else:
            cells = _cells(out / DB_FILE, year, out / NATION_DIR, raw=raw)
        return seed, time.perf_counter() - started, cells


def summarise(cells: list[dict]) -> list[dict]:
    rows = []
    for figure in FIGURES:
        mine = [c for c in cells if c["figure"] == figure]
        if not mine:
            continue
        errors = [c["estimate"] - c["truth"] for c in mine]
        positive = [c for c in mine if c["truth"] > 0]
        rows.append({
            "figure": figure,
            "cells": len({c["cell"] for c in mine}),
            "n": len(mine),
            "mae": statistics.fmean(abs(e) for e in errors),
            "relative_error": statistics.fmean(abs(c["estimate"] - c["truth"]) / c["truth"] for c in positive),
            "weighted_relative_error": sum(abs(e) for e in errors) / max(1, sum(c["truth"] for c in mine)),
            "bias": statistics.fmean(errors),
            "mae_vs_target": statistics.fmean(abs(c["estimate"] - c["target"]) for c in mine),
            "bias_vs_target": statistics.fmean(c["estimate"] - c["target"] for c in mine),
            # calibration: standard deviation of (estimate - target) / se; 1.0 when the stated se is right
            "z_sd": math.sqrt(statistics.fmean(((c["estimate"] - c["target"]) / c["se"]) ** 2 for c in mine if c["se"] > 0)),
            "mean_se": statistics.fmean(c["se"] for c in mine),
            "coverage_truth": statistics.fmean(c["lower"] <= c["truth"] <= c["upper"] for c in mine),
            "coverage_target": statistics.fmean(c["lower"] <= c["target"] <= c["upper"] for c in mine),
            "mean_truth": statistics.fmean(c["truth"] for c in mine),
            "mean_width": statistics.fmean(c["upper"] - c["lower"] for c in mine),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--epsilon", default="1", help="epsilon per organisation-year (exact text)")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--release", default="both", choices=["both", *RELEASES],
                        help="which release(s) to measure (both: all of them)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--json", dest="json_out", type=Path, default=None, help="also write the summary as JSON here")
    args = parser.parse_args(argv)

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    releases = list(RELEASES) if args.release == "both" else [args.release]
    started = time.perf_counter()
    results: dict[str, tuple[list[dict], list[float]]] = {r: ([], []) for r in releases}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.processes, mp_context=context) as pool:
        futures = {pool.submit(one_seed, s, args.year, args.epsilon, args.scale, r): r for r in releases for s in seeds}
        for done, future in enumerate(as_completed(futures), start=1):
            seed, seconds, found = future.result()
            results[futures[future]][0].extend(found)
            results[futures[future]][1].append(seconds)
            print(f"  {futures[future]} seed {seed:3d} done in {seconds:5.1f} s ({done}/{len(futures)})",
                  file=sys.stderr, flush=True)

    print(f"Utility of the national release: {len(seeds)} seeds, epsilon {args.epsilon} per organisation-year, "
          f"scale {args.scale}, 52 organisations ({time.perf_counter() - started:.0f} s wall)")
    summaries = {}
    for release in releases:
        cells, timings = results[release]
        summary = summaries[release] = summarise(cells)
        workload, raw = RELEASES[release]
        print(f"\n{release}: workload {workload}, {'raw sums' if raw else 'consistent WLS estimates'} "
              f"({statistics.fmean(timings):.1f} s per seed)")
        head = (f"{'figure':<18}{'cells':>6}{'truth/cell':>11}{'MAE':>9}{'rel.err':>9}{'w.rel':>8}{'bias':>9}"
                f"{'MAE tgt':>9}{'bias tgt':>9}{'mean se':>9}{'z sd':>6}{'cov truth':>10}{'cov tgt':>9}{'width':>8}")
        print(head)
        print("-" * len(head))
        for r in summary:
            print(f"{r['figure']:<18}{r['cells']:>6}{r['mean_truth']:>11.0f}{r['mae']:>9.1f}{r['relative_error']:>9.1%}"
                  f"{r['weighted_relative_error']:>8.1%}{r['bias']:>+9.1f}{r['mae_vs_target']:>9.1f}"
                  f"{r['bias_vs_target']:>+9.1f}{r['mean_se']:>9.1f}{r['z_sd']:>6.2f}"
                  f"{r['coverage_truth']:>10.1%}{r['coverage_target']:>9.1%}{r['mean_width']:>8.1f}")
        overall_truth = statistics.fmean(c["lower"] <= c["truth"] <= c["upper"] for c in cells)
        overall_target = statistics.fmean(c["lower"] <= c["target"] <= c["upper"] for c in cells)
        print(f"all published cells: coverage of the truth {overall_truth:.1%}, of the release target "
              f"{overall_target:.1%} (nominal 95%)")
    if "joint" in summaries:
        joint_cells = results["joint"][0]
        aware = {r["figure"]: r for r in summaries.get("workload-aware", [])}
        print("\njoint / a single central release at the plan's scales (the issue: <= 1.5x), and / today's "
              "per-organisation release (workload-aware; the issue: <= 0.2x), mean absolute error against the truth:\n"
              "  oracle     the central release knows who is who\n"
              "  same data  it holds the same pseudonyms and uses the same estimator\n"
              f"  simulated  the joint release's own error over {SAME_DATA_DRAWS} simulated releases of the same data "
              "per seed (the real run's MAE is checked against it)\n"
              "  L cov      the noise's calibration: the distinct pseudonyms within the fit of them +/- 1.96 se")
        for figure in FIGURES:
            mine = [c for c in joint_cells if c["figure"] == figure]
            if mine:
                mae = statistics.fmean(abs(c["estimate"] - c["truth"]) for c in mine)
                central = statistics.fmean(c["central"] for c in mine)
                same = statistics.fmean(c["central_same"] for c in mine)
                simulated = statistics.fmean(c["simulated"] for c in mine)
                versus = f"   per-org {mae / aware[figure]['mae']:.2f}x" if figure in aware else ""
                calibrated = statistics.fmean(c["linked_covered"] for c in mine)
                print(f"  {figure:<18} oracle {mae / central:.2f}x   same data {mae / same:.2f}x (its MAE {same:.1f})"
                      f"   simulated: MAE {simulated:.1f}, oracle {simulated / central:.2f}x, same data "
                      f"{simulated / same:.2f}x   L cov {calibrated:.1%}{versus}")
        totals = [c for c in joint_cells if c["figure"] == "total"]
        off = [abs(c["estimate"] - c["truth"]) / c["truth"] for c in totals]
        print(f"  national total within 2% of the distinct truth in {sum(o <= 0.02 for o in off)} of {len(off)} seeds "
              f"(median {statistics.median(off):.1%}, max {max(off):.1%})")
    if "naive" in summaries:
        naive = {r["figure"]: r for r in summaries["naive"]}
        for other in (r for r in releases if r != "naive"):
            aware = {r["figure"]: r for r in summaries[other]}
            print(f"\n{other} / naive, MAE against the release target (the noise alone) and against the truth:")
            for figure in FIGURES:
                if figure in naive and figure in aware:
                    print(f"  {figure:<18} noise {aware[figure]['mae_vs_target'] / naive[figure]['mae_vs_target']:.2f}x"
                          f"   truth {aware[figure]['mae'] / naive[figure]['mae']:.2f}x")
            pooled = sum(r["mae_vs_target"] * r["n"] for r in aware.values()) / sum(
                r["mae_vs_target"] * r["n"] for r in naive.values())
            print(f"  {'all published cells':<18} noise {pooled:.2f}x")
    print("rel.err = mean over cells with truth > 0 of |estimate - truth| / truth; w.rel = sum |error| / sum truth; "
          "tgt = release target (lawful people once + each organisation's other people: the noise alone)")
    print("z sd = root mean square of (estimate - release target) / se: 1.0 when the stated standard errors are right; "
          "width = mean width of the 95% interval")
    if args.json_out:
        args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "summaries": summaries,
                                             "cells": {r: results[r][0] for r in releases}}, indent=2) + "\n",
                                 encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
