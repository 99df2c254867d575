"""DP audit of the joint release's noise, from every point of view that matters: an outsider sees the count plus every
share; each party knows its own share and so sees the count plus the others' (joint/noise.py: in plans from version 3
every party draws a Polya share, any two adding up to one discrete Laplace; older plans had parties 0 and 1 draw a
whole one each). Neighbouring nations differ by one person at one organisation: one bucket of the audited cell, 0
versus 1.

The audit (tests/adversarial/test_dp_audit.py: Chernoff lower confidence bounds on the privacy loss of tail events)
must pass at the plan's epsilon and must fail for broken versions: half the scale, noise that one party knows (only
one party draws it), and Polya shares of which only two are drawn."""

from __future__ import annotations

from fractions import Fraction

import pytest

from aggregator.joint.noise import PAIR, POLYA, draw, polya_share
from tests.adversarial.test_dp_audit import audit

RUNS = 30_000


def scale_for(epsilon: Fraction) -> float:
    """What a plan uses for a group with this epsilon (joint/plan.py: Plan.group_scales)."""
    from aggregator.joint.plan import Plan

    return Plan({"epsilon_split": {"g": str(epsilon)}}, "0" * 64).group_scales()["g"]


def views(count: int, scale: float, *, model: str = POLYA, drawers: int | None = None) -> dict[str, list[int]]:
    """RUNS outputs per point of view; `drawers` parties draw their share (every drawing party of `model` normally)."""
    n_parties = 3 if model == POLYA else 2
    drawers = n_parties if drawers is None else drawers
    sample = polya_share if model == POLYA else draw
    shares = [sample([scale] * RUNS) if i < drawers else [0] * RUNS for i in range(n_parties)]
    out = {"outsider": [count + sum(v) for v in zip(*shares)]}
    for i in range(n_parties):
        others = [shares[j] for j in range(n_parties) if j != i]
        out[f"party {i} (knows its share)"] = [count + sum(v) for v in zip(*others)]
    return out


@pytest.mark.parametrize("model", [POLYA, PAIR])
@pytest.mark.parametrize("epsilon", [Fraction(1, 3), Fraction(1)])
def test_every_view_of_the_joint_release_stays_within_epsilon(epsilon, model):
    scale = scale_for(epsilon)
    d, d2 = views(0, scale, model=model), views(1, scale, model=model)
    for view in d:
        result = audit(d[view], d2[view], float(epsilon))
        assert result.passed, (view, result)
    # a party's view is exactly as tight as one discrete Laplace: near epsilon, not far below
    view = "party 0 (knows its share)"
    assert audit(d[view], d2[view], float(epsilon)).empirical > 0.7 * float(epsilon)


def test_audit_catches_half_the_scale():
    epsilon = Fraction(1)
    scale = scale_for(epsilon) / 2
    d, d2 = views(0, scale), views(1, scale)
    view = "party 0 (knows its share)"
    result = audit(d[view], d2[view], float(epsilon))
    assert not result.passed and result.lower_bound > 1.5 * float(epsilon), result


def test_audit_catches_noise_that_one_party_knows():
    epsilon = Fraction(1)
    scale = scale_for(epsilon)
    d, d2 = views(0, scale, model=PAIR, drawers=1), views(1, scale, model=PAIR, drawers=1)
    assert audit(d["outsider"], d2["outsider"], float(epsilon)).passed  # an outsider cannot tell ...
    result = audit(d["party 0 (knows its share)"], d2["party 0 (knows its share)"], float(epsilon))
    assert not result.passed, result  # ... but the party that drew all of the noise sees the exact count


def test_audit_catches_polya_shares_of_which_one_is_missing():
    """Two Polya shares alone are one discrete Laplace for an outsider, but a party knowing one of them faces a lone
    share, whose privacy loss between 0 and 1 is epsilon + ln 2."""
    epsilon = Fraction(1)
    scale = scale_for(epsilon)
    d, d2 = views(0, scale, drawers=2), views(1, scale, drawers=2)
    assert audit(d["outsider"], d2["outsider"], float(epsilon)).passed
    result = audit(d["party 0 (knows its share)"], d2["party 0 (knows its share)"], float(epsilon))
    assert not result.passed, result
