"""DP audit of the joint release's noise, from every point of view that matters: an outsider sees count + N0 + N1;
each noise-drawing party knows its own draw and so sees count + the other's draw; the third party knows neither.
Neighbouring nations differ by one person at one organisation: one bucket of the audited cell, 0 versus 1.

The audit (tests/adversarial/test_dp_audit.py: Chernoff lower confidence bounds on the privacy loss of tail events)
must pass at the plan's epsilon and must fail for two broken versions: half the scale, and noise that one party
knows (only one party draws it)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from aggregator.joint.noise import draw
from tests.adversarial.test_dp_audit import audit

RUNS = 30_000


def scale_for(epsilon: Fraction) -> float:
    """What a plan uses for a group with this epsilon (joint/plan.py: Plan.group_scales)."""
    from aggregator.joint.plan import Plan

    return Plan({"epsilon_split": {"g": str(epsilon)}}, "0" * 64).group_scales()["g"]


def views(count: int, scale: float, *, draws_by: int = 2) -> dict[str, list[int]]:
    """RUNS outputs per point of view; `draws_by` parties draw noise (2 in the real mechanism)."""
    n0 = draw([scale] * RUNS)
    n1 = draw([scale] * RUNS) if draws_by == 2 else [0] * RUNS
    return {
        "outsider": [count + a + b for a, b in zip(n0, n1)],
        "party 0 (knows N0)": [count + b for b in n1],
        "party 1 (knows N1)": [count + a for a in n0],
    }


@pytest.mark.parametrize("epsilon", [Fraction(1, 3), Fraction(1)])
def test_every_view_of_the_joint_release_stays_within_epsilon(epsilon):
    scale = scale_for(epsilon)
    d, d2 = views(0, scale), views(1, scale)
    for view in d:
        result = audit(d[view], d2[view], float(epsilon))
        assert result.passed, (view, result)
    # the view of a party that knows one draw is exactly as tight as one discrete Laplace: near epsilon, not far below
    assert audit(d["party 0 (knows N0)"], d2["party 0 (knows N0)"], float(epsilon)).empirical > 0.7 * float(epsilon)


def test_audit_catches_half_the_scale():
    epsilon = Fraction(1)
    scale = scale_for(epsilon) / 2
    d, d2 = views(0, scale), views(1, scale)
    result = audit(d["party 0 (knows N0)"], d2["party 0 (knows N0)"], float(epsilon))
    assert not result.passed and result.lower_bound > 1.5 * float(epsilon), result


def test_audit_catches_noise_that_one_party_knows():
    epsilon = Fraction(1)
    scale = scale_for(epsilon)
    d, d2 = views(0, scale, draws_by=1), views(1, scale, draws_by=1)
    assert audit(d["outsider"], d2["outsider"], float(epsilon)).passed  # an outsider cannot tell ...
    result = audit(d["party 0 (knows N0)"], d2["party 0 (knows N0)"], float(epsilon))
    assert not result.passed, result  # ... but the party that drew all of the noise sees the exact count
