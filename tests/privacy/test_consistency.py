"""consistency.py: WLS combination of overlapping marginals, exact margins, non-negativity, honest variances."""

from __future__ import annotations

import math
import random
from itertools import product

import numpy as np
import pytest

from aggregator.contract.codelists import codes
from aggregator.privacy.consistency import _group_estimates, _post_process, ConsistentTable, DIMS, project_to_simplex, SHAPE

MONITOR = [("form", "age_band"), ("form", "nationality_group"), ("gender",), ("province",)]


def truth_table(seed: int = 3):
    rng = np.random.default_rng(seed)
    return rng.poisson(0.4, size=SHAPE).astype(float)


def marginal(x, dims):
    axes = tuple(i for i, d in enumerate(DIMS) if d not in dims)
    return x.sum(axis=axes).ravel()


def measure(x, rng, variances):
    return [(d, v, list(marginal(x, d) + rng.normal(0, math.sqrt(v), size=marginal(x, d).size))) for d, v in zip(MONITOR, variances)]


def test_exact_measurements_are_reproduced():
    x = truth_table()
    est = _group_estimates([(d, 1.0, list(marginal(x, d))) for d in MONITOR])
    for dims in [("form",), ("form", "age_band"), ("age_band",), ("nationality_group",), ("gender",), ("province",), ()]:
        assert np.allclose(est[dims][0], marginal(x, dims) if dims else [x.sum()])


def test_unmeasured_tables_are_not_estimated():
    x = truth_table()
    est = _group_estimates([(("form",), 1.0, list(marginal(x, ("form",))))])
    assert ("form",) in est and () in est
    assert ("form", "age_band") not in est and ("gender",) not in est


def test_form_combines_both_tables_by_inverse_variance():
    x = truth_table()
    v1, v2 = 4.0, 9.0
    est = _group_estimates([(MONITOR[0], v1, list(marginal(x, MONITOR[0]))), (MONITOR[1], v2, list(marginal(x, MONITOR[1])))])
    var_a, var_b = 5 * v1, 4 * v2  # the form total from 5 age bands, or from 4 nationality groups
    assert est[("form",)][1] == pytest.approx([1 / (1 / var_a + 1 / var_b)] * 5, rel=1e-6)


def test_wls_intervals_cover_at_the_stated_rate_and_the_variance_is_right():
    """120 simulated releases: the stated variance matches the spread, and 95% intervals cover ~95%."""
    x = truth_table()
    rng = np.random.default_rng(11)
    variances = [16.0, 15.0, 66.0, 148.0]
    errors, covered, stated = [], 0, None
    for _ in range(120):
        est = _group_estimates(measure(x, rng, variances))
        value, var = est[("form",)]
        errors.append(value[0] - x.sum(axis=(1, 2, 3, 4))[0])
        stated = var[0]
        covered += all(abs(e - t) <= 1.96 * math.sqrt(v) for e, t, v in zip(value, x.sum(axis=(1, 2, 3, 4)), var))
    empirical = float(np.var(errors))
    assert abs(empirical / stated - 1) < 0.35  # sd of a 120-sample variance ~13%; 30% off in scale is > 69% in variance
    assert 0.65 <= covered / 120  # all 5 forms at once: 0.95^5 ~ 0.77


@pytest.mark.parametrize("values, total", [([3.2, -1.0, 0.4], 3), ([-5.0, -2.0], 0), ([10.0, 10.0], 7), ([0.5] * 7, 4)])
def test_simplex_projection_is_non_negative_and_exact(values, total):
    out = project_to_simplex(values, total)
    assert all(isinstance(v, int) and v >= 0 for v in out) and sum(out) == total


def test_post_processing_margins_add_up_exactly_and_nothing_is_negative():
    x = truth_table()
    rng = np.random.default_rng(5)
    for _ in range(6):
        est = _group_estimates(measure(x, rng, [400.0, 400.0, 400.0, 400.0]))  # heavy noise: many negatives
        tables = {
            d: ConsistentTable(d, list(product(*(codes(k) for k in d))) if d else [()], list(e), list(v))
            for d, (e, v) in est.items()
        }
        _post_process(tables)
        total = tables[()].post[0]
        for dims, table in tables.items():
            assert all(v >= 0 for v in table.post), dims
            assert sum(table.post) == total, dims
        form = dict(zip(tables[("form",)].keys, tables[("form",)].post))
        for child in (("form", "age_band"), ("form", "nationality_group")):
            for f in codes("form"):
                assert sum(p for k, p in zip(tables[child].keys, tables[child].post) if k[0] == f) == form[(f,)]


# ---------------------------------------------------------------- the joint release's own tables (consistent_release)


def test_a_release_fitted_to_its_total_adds_up_and_keeps_its_floors():
    from aggregator.privacy.consistency import consistent_release

    measured = {(): ([100.0], [25.0]),
                ("form",): ([40.0, 30.0, 20.0, 2.0, 3.0], [9.0, 9.0, 9.0, 4.0, 4.0]),
                ("age_band",): ([10.0, 20.0, 30.0, 40.0, 5.0], [4.0, 6.0, 8.0, 9.0, 3.0])}
    known = {(): [20], ("form",): [5, 5, 5, 4, 1], ("age_band",): [2, 2, 2, 2, 12]}
    tables = consistent_release(measured, known)
    total = tables[()]
    assert total.variance[0] < 25.0  # three measurements of the total instead of one
    for dims in (("form",), ("age_band",)):
        t = tables[dims]
        assert sum(t.wls) == pytest.approx(total.wls[0], abs=1e-9)
        assert sum(t.post) == total.post[0] and all(p >= k for p, k in zip(t.post, t.known))
        assert t.sum_of(t.keys)[1] == pytest.approx(total.variance[0], rel=1e-9)  # from the covariance
        assert all(v < m for v, m in zip(t.variance, measured[dims][1]))
    # cells whose fitted value is below the people known individually stand at that floor
    assert tables[("form",)].post[3] == 4 and tables[("age_band",)].post[4] == 12
    # a cell measured far more precisely than the rest barely moves
    precise = consistent_release({(): ([100.0], [400.0]), ("form",): ([50.0, 20.0, 10.0, 5.0, 5.0],
                                                                       [0.01, 400.0, 400.0, 400.0, 400.0])})
    assert precise[("form",)].wls[0] == pytest.approx(50.0, abs=0.01)


def _simulated_plan():
    """A plan at the demo's --scale 0.3 prior (total, form, age band; linkage bounds), for simulated releases."""
    import base64
    import datetime as dt
    from fractions import Fraction

    from aggregator.joint.plan import PartyRef, Plan, build_plan

    parties = [PartyRef(f"p{i}", base64.b64encode(bytes([i]) * 32).decode(),
                        base64.b64encode(bytes([10 + i]) * 32).decode()) for i in range(3)]
    return Plan(build_plan(2025, Fraction(1), parties, prior_total=JOINT_PEOPLE,
                           deadline=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)), "simulated")


def _simulated_release(plan, people: dict, rng) -> dict:
    """One simulated joint release: each cell's `people[name]` pseudonyms hashed afresh into its buckets and the
    count noised at the plan's scale as the three parties do (joint/noise.py: each party's Polya share the
    difference of two negative binomials NB(1/2)), then corrected in public per cell (coordinator/joint.py:
    joint_cell)."""
    from aggregator.coordinator.joint import joint_cell
    from aggregator.joint.noise import POLYA, model_of, released_variance

    assert model_of(plan.version) == POLYA
    scales = plan.group_scales()

    def noise(scale):  # numpy's negative_binomial(n, p): failures before n successes, P(k) ~ (1 - p)^k
        p = 1 - math.exp(-1 / scale)
        return int(rng.negative_binomial(0.5, p, 3).sum() - rng.negative_binomial(0.5, p, 3).sum())

    cells = {}
    for c in plan.document["cells"]:
        m, b = int(c["m"]), scales[c["group"]]
        x = len(np.unique(rng.integers(0, m, size=people[c["name"]]))) + noise(b)
        cells[c["name"]] = joint_cell(c["name"], c["group"], x, m, released_variance(POLYA, b))
    return cells


JOINT_PEOPLE = 2_000  # about the demo at --scale 0.3
JOINT_REPLICATES = 400


@pytest.fixture(scope="module")
def joint_replicates():
    """400 synthetic joint releases of one population (form and age band from the plan's prior shares), each cell's
    people hashed afresh into the plan's buckets and its count noised twice at the plan's scale, as the parties do;
    each release corrected per cell (linear counting, noise plus collision variance: coordinator/joint.py) and
    fitted by consistent_release. Returns the errors against the true distinct people and the stated variances
    (replicates x cells: total, forms, age bands) and whether every fit added up."""
    from aggregator.coordinator.joint import joint_tables
    from aggregator.joint.plan import PRIOR_SHARES, TOTAL, UNLINKED_PREFIX, cell_name

    plan = _simulated_plan()
    rng = np.random.default_rng(1)
    members = {TOTAL: JOINT_PEOPLE}
    for dim in ("form", "age_band"):
        drawn = rng.choice(5, JOINT_PEOPLE, p=[PRIOR_SHARES[dim][c] for c in codes(dim)])
        members.update({cell_name((dim,), (c,)): int((drawn == i).sum()) for i, c in enumerate(codes(dim))})
    # every name linkable: no one in the linkage-bound cells
    members.update({c["name"]: 0 for c in plan.document["cells"] if c["name"].startswith(UNLINKED_PREFIX)})

    errors, stated, adds_up = [], [], True
    for _ in range(JOINT_REPLICATES):
        cells = _simulated_release(plan, members, rng)
        tables = joint_tables(plan, cells)
        error, variance = [], []
        for dims, table in tables.items():
            error += [w - members[cell_name(dims, k) if dims else TOTAL] for k, w in zip(table.keys, table.wls)]
            variance += table.variance
            adds_up &= abs(sum(table.wls) - tables[()].wls[0]) < 1e-6 and sum(table.post) == tables[()].post[0]
        errors.append(error)
        stated.append(variance)
    return np.asarray(errors), np.asarray(stated), adds_up


def _calibrated(errors, stated, understated=1.0):
    """Whether 95% intervals from the stated variance (times `understated`) cover the truth at the stated rate:
    over all cells, within 3 binomial standard errors of 95% for 400 replicates (cells of one replicate are
    correlated, so 400 is the honest count), each cell within 4; and each cell's spread matches its stated
    variance within a band the 400-replicate sampling error (~7%) allows."""
    variance = stated * understated
    covered = np.abs(errors) <= 1.96 * np.sqrt(variance)
    tolerance = math.sqrt(0.95 * 0.05 / JOINT_REPLICATES)
    pooled = abs(covered.mean() - 0.95) <= 3 * tolerance
    per_cell = bool(np.all(np.abs(covered.mean(axis=0) - 0.95) <= 4 * tolerance))
    ratio = errors.var(axis=0, ddof=1) / variance.mean(axis=0)
    spread = bool(np.all((ratio > 0.75) & (ratio < 1.33)))
    return pooled, per_cell, spread


def test_the_consistent_joint_tables_add_up_in_every_replicate(joint_replicates):
    errors, _, adds_up = joint_replicates
    assert adds_up and errors.shape == (JOINT_REPLICATES, 11)


def test_consistent_joint_intervals_cover_the_truth_at_the_stated_rate(joint_replicates):
    errors, stated, _ = joint_replicates
    assert _calibrated(errors, stated) == (True, True, True)
    assert np.all(np.abs(errors.mean(axis=0)) < 3 * np.sqrt(stated.mean(axis=0) / JOINT_REPLICATES) + 0.5)  # bias


def test_the_coverage_check_fails_when_the_variance_is_understated_by_30_percent(joint_replicates):
    errors, stated, _ = joint_replicates
    pooled, per_cell, spread = _calibrated(errors, stated, understated=0.7)
    assert not pooled and not per_cell and not spread


LINKAGE_REPLICATES = 300
UNLINKED_PEOPLE = 300  # contributed under a local pseudonym (no name or date of birth), about the demo's help line


def _linkage_replicates(elsewhere: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint releases of JOINT_PEOPLE distinct people of whom UNLINKED_PEOPLE are also (elsewhere=True) or only
    (False) contributed under a local pseudonym: the distinct pseudonyms are JOINT_PEOPLE + UNLINKED_PEOPLE or
    JOINT_PEOPLE. Per replicate and figure (total, forms, minors): the truth, the interval national_joint.figures
    shows, and the raw interval of the distinct pseudonyms (what the table showed before linkage bounds)."""
    from aggregator.coordinator.joint import joint_tables
    from aggregator.coordinator.national_joint import figures
    from aggregator.joint.plan import PRIOR_SHARES, TOTAL, cell_name

    plan = _simulated_plan()
    rng = np.random.default_rng(5 if elsewhere else 6)
    form = rng.choice(5, JOINT_PEOPLE, p=[PRIOR_SHARES["form"][c] for c in codes("form")])
    age = rng.choice(5, JOINT_PEOPLE, p=[PRIOR_SHARES["age_band"][c] for c in codes("age_band")])
    local = np.arange(JOINT_PEOPLE) < UNLINKED_PEOPLE  # the first ones: young, sexual exploitation, like the chat
    form[local], age[local] = 0, rng.choice([0, 1], UNLINKED_PEOPLE)
    truth, pseudonyms = {TOTAL: JOINT_PEOPLE}, {TOTAL: JOINT_PEOPLE + (UNLINKED_PEOPLE if elsewhere else 0)}
    for dim, drawn in (("form", form), ("age_band", age)):
        for i, c in enumerate(codes(dim)):
            truth[cell_name((dim,), (c,))] = int((drawn == i).sum())
            pseudonyms[cell_name((dim,), (c,))] = int((drawn == i).sum() + ((drawn == i) & local).sum() * elsewhere)
    pseudonyms.update(_unlinked_people(plan, {"form": form, "age_band": age}, local))
    minors = [("under_15",), ("15_17",)]
    shown, raw, true = [], [], []
    for _ in range(LINKAGE_REPLICATES):
        cells = _simulated_release(plan, pseudonyms, rng)
        tables = joint_tables(plan, cells)
        assert all(t.unlinked is not None for t in tables.values())
        row_shown, row_raw, row_true = [], [], []
        for dims, keys in [((), [()]), *((("form",), [(c,)]) for c in codes("form")), (("age_band",), minors)]:
            f = figures(tables[dims], keys)
            row_shown.append((f["lower"], f["upper"]))
            linked, variance, _ = tables[dims].linked.sum_of(keys)
            row_raw.append((linked - 1.96 * math.sqrt(variance), linked + 1.96 * math.sqrt(variance)))
            row_true.append(sum(truth[cell_name(dims, k) if dims else TOTAL] for k in keys))
        shown.append(row_shown)
        raw.append(row_raw)
        true.append(row_true)
    return np.asarray(shown), np.asarray(raw), np.asarray(true)


def _unlinked_people(plan, drawn: dict, local) -> dict[str, int]:
    """The people contributed under a local pseudonym in each of the plan's "unlinked" cells, from each person's
    code index per dimension (`drawn`) and whether they are contributed so (`local`)."""
    import itertools

    from aggregator.joint.plan import unlinked_cell_name

    out = {}
    for dims, _ in plan.unlinked_groups:
        for key in itertools.product(*(codes(d) for d in dims)):
            inside = local.copy()
            for dim, code in zip(dims, key):
                inside &= drawn[dim] == codes(dim).index(code)
            out[unlinked_cell_name(dims, key)] = int(inside.sum())
    return out


def test_the_unlinked_total_carries_less_noise_measured_per_marginal_than_over_the_cross():
    """Plan 5 measures the unlinked people per planned marginal at half the linkage share each; the total's U then
    comes from both marginals' sums (about 10 cross-cell variances at two marginals) instead of the 25 cross cells
    of plans 2-4, and each marginal cell from its own count and the other marginal (about 3.6 instead of 5). Plan
    4's U is the plain sum."""
    from aggregator.coordinator.joint import joint_tables

    from ..joint.util import version4_plan

    plan = _simulated_plan()
    rng = np.random.default_rng(8)
    form = rng.integers(0, 5, JOINT_PEOPLE)
    age = rng.integers(0, 5, JOINT_PEOPLE)
    local = rng.random(JOINT_PEOPLE) < 0.1
    people = {c["name"]: 0 for c in plan.document["cells"]}
    variances = {}
    for version, used in ((5, plan), (4, version4_plan(plan))):
        members = {**people, **_unlinked_people(used, {"form": form, "age_band": age}, local)}
        cells = _simulated_release(used, members, rng)
        tables = joint_tables(used, cells)
        unlinked = {dims: t.unlinked for dims, t in tables.items()}
        variances[version] = (unlinked[()].variance[0], unlinked[("form",)].variance[0])
        if version == 4:  # the plain sum of the cross cells
            cross = [c for name, c in cells.items() if name.startswith("unlinked:")]
            assert unlinked[()].variance[0] == pytest.approx(sum(c.variance for c in cross))
        for dims, table in unlinked.items():  # the marginals add up to the total
            assert sum(table.wls) == pytest.approx(unlinked[()].wls[0])
    # noise alone: 10/25 and 0.9 x 4/5; the rest is linear counting's steeper slope on the fuller per-marginal cells
    assert 0.35 < variances[5][0] / variances[4][0] < 0.55, variances
    assert 0.7 < variances[5][1] / variances[4][1] < 0.95, variances


@pytest.mark.parametrize("elsewhere", [True, False])
def test_linkage_bounds_cover_the_distinct_people_whoever_the_unlinked_are(elsewhere):
    """The joint interval must hold the distinct people at 95% or more both when every person contributed under a
    local pseudonym is also known elsewhere (the distinct pseudonyms overcount by all of them) and when none is; the
    figures of the cells without unlinked people stay as tight as before. The interval of the distinct pseudonyms
    alone, which the table showed before, misses the truth when they are known elsewhere."""
    shown, raw, true = _linkage_replicates(elsewhere)
    covered = ((shown[..., 0] <= true) & (true <= shown[..., 1])).mean(axis=0)
    floor = 0.95 - 3 * math.sqrt(0.95 * 0.05 / LINKAGE_REPLICATES)
    assert np.all(covered >= floor), covered
    raw_covered = ((raw[..., 0] <= true) & (true <= raw[..., 1])).mean(axis=0)
    if elsewhere:  # total, sexual and minors hold the unlinked people: there the old interval fails
        assert raw_covered[0] < 0.5 and raw_covered[1] < 0.5 and raw_covered[-1] < 0.5, raw_covered


def test_the_bounds_multiplier_is_imbens_and_manskis():
    """z solves Phi(z + width/se) - Phi(-z) = 0.95: two-sided 1.96 for coinciding bounds, one-sided 1.645 for bounds
    far apart, and in between it gives exactly 95% at either end of the range."""
    from aggregator.privacy.intervals import bound_z

    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    assert bound_z(0.0, 5.0) == pytest.approx(1.959964, abs=1e-5)
    assert bound_z(10.0, 0.0) == pytest.approx(1.959964, abs=1e-5)  # no standard error: nothing to lean on
    assert bound_z(100.0, 5.0) == pytest.approx(1.644854, abs=1e-5)
    for ratio in (0.3, 1.0, 2.0):
        z = bound_z(ratio * 4.0, 4.0)
        assert 1.644 < z < 1.96
        assert phi(z + ratio) - phi(-z) == pytest.approx(0.95, abs=1e-9)
