"""joint/plan.py with lists and strata: the overlap tables a plan opens, their exact budget, and the buckets an
organisation fills for them (joint/contribution.py)."""

from __future__ import annotations

import base64
import datetime as dt
import os
from fractions import Fraction

import duckdb
import numpy as np
import pytest

from aggregator.errors import UsageError
from aggregator.joint.contribution import bucket_vector
from aggregator.joint.layout import MULTIPLICITY_SUFFIX, PATTERNS_SUFFIX
from aggregator.joint.noise import sensitivities
from aggregator.joint.plan import (LIST_PRESETS, STRATA_GROUP, UNLINKED_GROUP, UNLINKED_PREFIX, UNLINKED_SHARE, Plan,
                                   PartyRef, build_plan)

from .util import version4_plan

DEADLINE = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def _parties() -> list[PartyRef]:
    key = lambda: base64.b64encode(os.urandom(32)).decode("ascii")  # noqa: E731 - public keys are opaque here
    return [PartyRef(f"p{i}", key(), key()) for i in range(3)]


def _plan(**options) -> Plan:
    return Plan(build_plan(2025, Fraction(1), _parties(), deadline=DEADLINE, **options), "d" * 64)


def test_a_plan_with_lists_and_strata_opens_a_pattern_table_per_stratum():
    plan = _plan(lists="four", strata=("age", "origin"))
    strata = [c["name"] for c in plan.cells_of(STRATA_GROUP)]
    assert strata == ["stratum=minor/dutch", "stratum=minor/non_dutch", "stratum=adult/dutch",
                      "stratum=adult/non_dutch"]
    layout = plan.layout({"a": 0, "b": 3})
    assert layout.n_lists == 4 and [c.name for c in layout.strata] == strata
    released = layout.released()
    assert sum(label.startswith("pattern/stratum=minor/dutch/") for label, _ in released) == 2 ** 4
    assert sum(label.startswith("multiplicity/") for label, _ in released) == 3 * len(strata)
    # the plan names a noise scale for every group the engine releases
    assert set(layout.groups()) <= set(plan.group_scales())


def test_the_split_spends_exactly_epsilon_and_the_scales_match_the_sensitivities():
    plan = _plan(lists="dutch-studies", strata=("age",))
    eps = plan.group_epsilons()
    strata = [c["name"] for c in plan.cells_of(STRATA_GROUP)]
    # strata are disjoint, so the pattern (and multiplicity) groups of different strata compose in parallel
    sequential = [g for g in eps if not g.endswith((PATTERNS_SUFFIX, MULTIPLICITY_SUFFIX))]
    spent = sum(eps[g] for g in sequential) + eps[strata[0] + PATTERNS_SUFFIX] + eps[strata[0] + MULTIPLICITY_SUFFIX]
    assert spent == Fraction(1)
    assert all(eps[s + PATTERNS_SUFFIX] == Fraction(1, 2) for s in strata)  # the pattern tables keep their half
    # linkage bounds: a share of the other half, in equal parts for the planned marginals (plan version 5)
    assert {g: e for g, e in eps.items() if g.startswith(UNLINKED_PREFIX)} == {
        "unlinked:form": Fraction(1, 2) * UNLINKED_SHARE / 2, "unlinked:age_band": Fraction(1, 2) * UNLINKED_SHARE / 2}
    scales = plan.group_scales()
    for group, sensitivity in sensitivities(plan.layout({"a": 0})).items():
        assert Fraction(sensitivity) / Fraction(scales[group]) <= eps[group]
        assert scales[group] == pytest.approx(sensitivity / eps[group], rel=1e-12)
    assert sensitivities(plan.layout({"a": 0}))[strata[0] + PATTERNS_SUFFIX] == 2


def test_without_lists_the_plan_is_as_before_and_bad_groupings_are_refused():
    plan = _plan()
    assert plan.lists == [] and plan.cells_of(STRATA_GROUP) == []
    assert sum(plan.group_epsilons().values()) == Fraction(1)
    with pytest.raises(UsageError):
        _plan(lists="seven")
    with pytest.raises(UsageError):
        _plan(strata=("age",))  # strata without lists
    with pytest.raises(UsageError):
        _plan(lists="four", strata=("gender",))
    types = [t for preset in LIST_PRESETS.values() for _, ts in preset for t in ts]
    for preset in LIST_PRESETS.values():  # every reporter type is on exactly one list of each grouping
        flat = [t for _, ts in preset for t in ts]
        assert len(flat) == len(set(flat)) == len(set(types))


def test_each_linkable_person_fills_one_bucket_of_exactly_their_stratum():
    plan = _plan(lists="four", strata=("age", "origin"))
    con = duckdb.connect()
    con.execute("""CREATE TEMP TABLE people AS SELECT * FROM (VALUES
        ('p1', 'sexual', '15_17', 'NL', TRUE), ('p2', 'labour', '25_plus', 'EU', TRUE),
        ('p3', 'labour', 'unknown', 'unknown', FALSE), ('p4', 'criminal', 'under_15', 'non_EU', TRUE))
        AS t(identity, form, age_band, nationality_group, linkable)""")
    vector = bucket_vector(con, plan, b"k" * 32)
    offsets = plan.layout().offsets()
    filled = {c["name"]: int(vector[slice(*offsets[c["name"]])].sum()) for c in plan.cells_of(STRATA_GROUP)}
    # p3, known here only under a local pseudonym, is in no stratum cell (plan version 4: overlaps of linkable people)
    assert plan.version == 5 and plan.linkable_overlaps
    assert filled == {"stratum=minor/dutch": 1, "stratum=minor/non_dutch": 1, "stratum=adult/dutch": 0,
                      "stratum=adult/non_dutch": 1}  # fixed key and plan: no collision here
    # in a version 3 plan p3 was there: its unknown age and origin go with adults and non-Dutch (plan.STRATIFIERS)
    older = Plan({**plan.document, "plan_version": 3}, plan.digest)
    assert not older.linkable_overlaps
    v3 = bucket_vector(con, older, b"k" * 32)
    assert int(v3[slice(*offsets["stratum=adult/non_dutch"])].sum()) == 2
    # only p3, known here under a local pseudonym, is in the linkage-bound cells, in its own cell of each marginal
    unlinked = {c["name"]: int(vector[slice(*offsets[c["name"]])].sum()) for c in plan.document["cells"]
                if c["group"].startswith(UNLINKED_PREFIX)}
    assert {name: n for name, n in unlinked.items() if n} == {"unlinked:form=labour": 1, "unlinked:age_band=unknown": 1}
    assert len(unlinked) == 10  # the cells of the planned marginals, form and age band
    assert np.isin(vector, (0, 1)).all()
    # a version 4 plan measured them over form x age band: p3 in one of its 25 cells
    cross = version4_plan(plan)
    v4 = bucket_vector(con, cross, b"k" * 32)
    offsets = cross.layout().offsets()
    unlinked = {c["name"]: int(v4[slice(*offsets[c["name"]])].sum()) for c in cross.cells_of(UNLINKED_GROUP)}
    assert {name: n for name, n in unlinked.items() if n} == {"unlinked:form=labour,age_band=unknown": 1}
    assert len(unlinked) == 25


def test_the_sql_stratum_and_its_python_twin_agree_on_every_code():
    from itertools import product

    from aggregator.contract.codelists import codes
    from aggregator.joint.contribution import stratum_expression
    from aggregator.joint.plan import stratum_of

    con = duckdb.connect()
    pairs = list(product(codes("age_band"), codes("nationality_group")))
    con.execute("CREATE TEMP TABLE people (age_band VARCHAR, nationality_group VARCHAR)")
    con.executemany("INSERT INTO people VALUES (?, ?)", pairs)
    for strata in ((), ("age",), ("origin",), ("age", "origin"), ("origin", "age")):
        rows = con.execute(f"SELECT age_band, nationality_group, {stratum_expression(list(strata))} "
                           "FROM people AS p").fetchall()
        for age, origin, name in rows:
            assert name == stratum_of(strata, {"age_band": age, "nationality_group": origin}), (strata, age, origin)


def test_the_linkage_cells_grow_as_the_sum_of_the_marginals_not_their_cross():
    """Plans 2-4 measured the cross (5 x 5 x 13 x 4 = 1,300 cells here, refused above 100); from plan 5 each marginal
    is measured, 5 + 5 + 13 + 4 cells, each marginal's group with an equal part of the linkage share."""
    marginals = (("form",), ("age_band",), ("province",), ("gender",))
    plan = _plan(marginals=marginals)
    groups = [group for _, group in plan.unlinked_groups]
    assert [dims for dims, _ in plan.unlinked_groups] == list(marginals)
    assert [len(plan.cells_of(g)) for g in groups] == [5, 5, 13, 4]
    eps = plan.group_epsilons()
    assert {eps[g] for g in groups} == {UNLINKED_SHARE / 4} and sum(eps.values()) == Fraction(1)
    two_way = _plan(marginals=(("form", "age_band"),))  # a two-way marginal is measured as itself: 25 cells
    assert len(plan.cells_of("unlinked:form")) == 5 and len(two_way.cells_of("unlinked:form,age_band")) == 25
