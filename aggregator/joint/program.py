"""The MPC program that each of the three computing parties runs (MPyC).

Inputs per party: its own share vector of every organisation (uint64, in the
flat ``Layout`` order; ``None`` where it could not be decrypted or decoded,
with a reason), the public layout, and the noise scale per noise group.

Steps (all parties run the same code; ``mpc`` is a started MPyC runtime):

(a) Input checks, before anything about the data is opened. The parties first
    agree on which organisations every party could decode (``mpc.transfer``
    of the local problems). Then a public coin (every party contributes 32
    random bytes, hashed) fixes coefficients rho, rho' in [0, 2**20) per bucket
    and repetition (R = 2 repetitions). The organisation's shares were fixed
    before the coin, so it cannot adapt to it.

    Consistency: three values y1, y2, y3 lie on one degree-1 polynomial iff
    y1 - 2 y2 + y3 = 0. Each party computes z_i = sum_j rho_j y_ij locally; if
    some bucket is inconsistent, z is inconsistent except with probability
    2**-20 per repetition (Schwartz-Zippel on one rho_j). z itself is a linear
    function of the vector, so it is masked before opening: a fresh shared
    uniform r (sum of inputs of parties 0 and 1), each party sends z_i + r_i
    to all (``mpc.transfer``) and everyone checks the three points. For a
    consistent sharing the opened polynomial is z + r, uniform: nothing about
    the vector is revealed.

    0/1: v_j in {0,1} for all j iff w_j = v_j (v_j - 1) = 0 for all j. Each
    party computes locally d_i = sum_j rho'_j (y_ij**2 - y_ij), a degree-2
    sharing of c = sum_j rho'_j w_j (no communication per bucket). The
    parties reshare d to degree 1 (each inputs d_i, recombine with the degree-2
    Lagrange weights 3, -3, 1), multiply by a fresh shared uniform s and open
    c * s: zero if the vector is 0/1; otherwise nonzero except with
    probability 2**-20 per repetition (plus 1/p for s = 0), and uniformly
    random, so even a cheating organisation's data is not revealed beyond
    "not 0/1". An organisation that fails any check is excluded with a reason
    and contributes nothing; the checks matter because a non-0/1 input could
    push org-sums outside the l-bit range where comparisons are correct.

(b) Sum the included organisations' shares (local, linear, uint64).
(c) One batched secure comparison ``x >= 1`` of l bits (MPyC ``np_sgn``):
    x = bucket sums (all cells), sums - 1 and sums - 2 (stratum cells: the
    org-sum >= 2 and >= 3 tests) and per stratum the per-list sums (list OR).
(d) Cell counts are sums of the >= 1 bits; multiplicity counts are sums of
    (>=1) - (>=2), (>=2) - (>=3), (>=3); pattern counts come from a product
    tree over the lists: each node vector n splits into n*b_k (list k present)
    and n - n*b_k (absent), 2**L leaves whose sums are the pattern counts.
(e) The plan's noise model says which parties draw a share per released
    value and how (joint/noise.py: "polya-three", every party a Polya share,
    any two of which add up to DL(b); older plans: parties 0 and 1 a whole
    DL(b) each); they input their shares and the released value is the
    count plus all of them.
(f) Only the noisy values are opened (and, in a test harness only, the exact
    counts; see ``party``).

What a party sees: its own shares (uniform), masked check values (uniform or
zero), MPyC's comparison traffic (statistically masked, k = 30) and the noisy
outputs. Two colluding parties can reconstruct every organisation's vector:
the honest-majority assumption is that they do not collude.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field as dc_field

import numpy as np

from . import arith, noise
from .field import prime_for
from .layout import MULTIPLICITY, Layout

CHECK_REPS = 2
COEFF_BITS = 20


@dataclass
class JointResult:
    """Plain result of a joint computation (all values noisy unless ``exact``)."""
    counts: dict[str, int]
    patterns: dict[str, list[int]]  # stratum cell -> 2**L counts, index bit k = list k
    multiplicity: dict[str, dict[str, int]]  # stratum cell -> {"1","2","3+"}
    included: list[str]
    excluded: dict[str, str]
    exact: "JointResult | None" = None
    signatures: list[str] = dc_field(default_factory=list)  # one per party, over party.result_bytes (not compared)
    bundles: list[str] | None = None  # the bundle digest of each organisation of the job, so the signatures cover them

    def to_json(self) -> dict:
        d = {"counts": self.counts, "patterns": self.patterns,
             "multiplicity": self.multiplicity, "included": self.included,
             "excluded": self.excluded}
        if self.bundles is not None:
            d["bundles"] = self.bundles
        if self.exact is not None:
            d["exact"] = self.exact.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict) -> "JointResult":
        ex = d.get("exact")
        return cls(counts=d["counts"], patterns=d["patterns"], multiplicity=d["multiplicity"],
                   included=list(d["included"]), excluded=dict(d["excluded"]),
                   exact=cls.from_json(ex) if ex else None,
                   bundles=[str(b) for b in d["bundles"]] if d.get("bundles") is not None else None)


def _unpack(layout: Layout, values: list[int], included, excluded) -> JointResult:
    cells = layout.cells
    counts = {c.name: int(values[i]) for i, c in enumerate(cells)}
    pos = len(cells)
    patterns, mult = {}, {}
    for c in layout.strata:
        k = 2 ** layout.n_lists
        patterns[c.name] = [int(x) for x in values[pos:pos + k]]
        pos += k
        mult[c.name] = {name: int(values[pos + i]) for i, name in enumerate(MULTIPLICITY)}
        pos += len(MULTIPLICITY)
    return JointResult(counts, patterns, mult, list(included), dict(excluded))


def _coin_stream(coin: bytes, label: bytes):
    h = hashlib.shake_256(coin + label)
    state = {"pos": 0}

    def read(n: int) -> bytes:
        # shake digests are prefix-consistent, so reading piecewise stays deterministic
        start = state["pos"]
        state["pos"] += n
        return h.digest(state["pos"])[start:]

    return read


async def _shared_uniform(mpc, secint, n: int):
    """Secure array of n uniform field elements: sum of inputs of parties 0 and 1."""
    F = secint.field
    mine = arith.uniform(n, F.modulus) if mpc.pid in (0, 1) else np.zeros(n, dtype=np.uint64)
    a, b = mpc.input(secint.array(F.array(mine.astype(object))), senders=[0, 1])
    return a + b


async def check_orgs(mpc, secint, Y: np.ndarray, coin: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Per organisation (rows of Y = this party's shares): (consistent, zero_one) booleans."""
    F = secint.field
    p = F.modulus
    k, n = Y.shape
    if k == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    rho = arith.small_coefficients(_coin_stream(coin, b"consistency"), (CHECK_REPS, n), COEFF_BITS)
    rho2 = arith.small_coefficients(_coin_stream(coin, b"zero-one"), (CHECK_REPS, n), COEFF_BITS)
    pp = np.uint64(p)
    z = arith.lincomb(Y, rho, p)  # (k, R), degree-1 shares
    W = (arith.mulmod(Y, Y, p) + (pp - Y)) % pp
    d = arith.lincomb(W, rho2, p)  # (k, R), degree-2 shares
    del W

    # Consistency: open z + r as three points and test collinearity.
    r = await _shared_uniform(mpc, secint, k * CHECK_REPS)
    r_own = np.array((await mpc.gather(r)).value, dtype=object)
    masked = [int(x) for x in (z.reshape(-1).astype(object) + r_own) % p]
    pts = await mpc.transfer(masked)
    y1, y2, y3 = (np.array(pts[i], dtype=object) for i in range(3))
    consistent = ((y1 - 2 * y2 + y3) % p == 0).reshape(k, CHECK_REPS).all(axis=1)

    # 0/1: reshare degree-2 d to degree 1, multiply by a shared uniform, open.
    d_in = secint.array(F.array(d.reshape(-1).astype(object)))
    d1, d2, d3 = mpc.input(d_in, senders=[0, 1, 2])
    c = 3 * d1 - 3 * d2 + d3
    s = await _shared_uniform(mpc, secint, k * CHECK_REPS)
    opened = await mpc.output(c * s)
    zero_one = (np.array([int(x) for x in opened], dtype=object) == 0).reshape(k, CHECK_REPS).all(axis=1)
    return consistent, zero_one


async def run(mpc, layout: Layout, shares: dict[str, np.ndarray | None],
              local_problems: dict[str, str], group_scales: dict[str, float], noise_model: str,
              *, reveal_exact: bool = False, noise_free: bool = False) -> JointResult:
    """Run the joint computation as this party; returns the opened (noisy) result."""
    l = layout.bits
    secint = mpc.SecInt(l)
    F = secint.field
    p = F.modulus
    if p != prime_for(l):
        raise RuntimeError(f"MPyC chose prime {p} for SecInt({l}), the pinned one is {prime_for(l)}")
    orgs = sorted(shares)
    layout.check_orgs(orgs)
    n = layout.size
    scales_v = noise.value_scales(layout, group_scales)

    # (a) agree on what every party could decode, then check the rest.
    problems = dict(local_problems)
    for o in orgs:
        y = shares[o]
        if o not in problems and (y is None or y.shape != (n,)):
            problems[o] = "share missing or of the wrong length"
    all_problems = await mpc.transfer(problems)
    excluded: dict[str, str] = {}
    for i, probs in enumerate(all_problems):
        for o in sorted(probs):
            excluded.setdefault(o, f"party {i} could not use its share: {probs[o]}")
    cand = [o for o in orgs if o not in excluded]
    Y = np.stack([shares[o] for o in cand]) if cand else np.zeros((0, n), dtype=np.uint64)
    coin = hashlib.sha256(b"".join(await mpc.transfer(secrets.token_bytes(32)))).digest()
    consistent, zero_one = await check_orgs(mpc, secint, Y, coin)
    keep = []
    for i, o in enumerate(cand):
        if not consistent[i]:
            excluded[o] = "shares are not a consistent sharing (the three parties' shares disagree)"
        elif not zero_one[i]:
            excluded[o] = "vector is not 0/1 in at least one bucket"
        else:
            keep.append(i)
    included = [cand[i] for i in keep]
    Y = Y[keep]

    # (b) local sums.
    pp = np.uint64(p)
    S = arith.summod(Y, p, axis=0) if len(keep) else np.zeros(n, dtype=np.uint64)
    offs = layout.offsets()
    strata = layout.strata
    L = layout.n_lists
    parts = [S]
    for c in strata:
        a, b = offs[c.name]
        parts += [(S[a:b] + pp - np.uint64(1)) % pp, (S[a:b] + pp - np.uint64(2)) % pp]
        for k in range(L):
            rows = [j for j, o in enumerate(included) if layout.org_lists[o] == k]
            T = arith.summod(Y[rows][:, a:b], p, axis=0) if rows else np.zeros(b - a, dtype=np.uint64)
            parts.append(T)
    X = np.concatenate(parts)
    del Y

    # (c) one batched l-bit comparison.
    B = secint.array(F.array(X.astype(object), check=False)) >= 1

    # (d) counts.
    counts = [mpc.np_sum(B[a:b]) for a, b in (offs[c.name] for c in layout.cells)]
    pos = n
    tail = []
    for c in strata:
        a, b = offs[c.name]
        ms = b - a
        ge1 = B[a:b]
        ge2 = B[pos:pos + ms]
        ge3 = B[pos + ms:pos + 2 * ms]
        pos += 2 * ms
        lists = [B[pos + k * ms:pos + (k + 1) * ms] for k in range(L)]
        pos += L * ms
        nodes = secint.array(F.array(np.ones((1, ms), dtype=object)))
        for bk in lists:
            prod = nodes * bk  # broadcast over the nodes
            nodes = mpc.np_concatenate((nodes - prod, prod), axis=0)
        tail.append(mpc.np_sum(nodes, axis=1))
        s1, s2, s3 = mpc.np_sum(ge1), mpc.np_sum(ge2), mpc.np_sum(ge3)
        tail.append(mpc.np_fromlist([s1 - s2, s2 - s3, s3]))
    exact = mpc.np_fromlist(counts)
    if tail:
        exact = mpc.np_concatenate([exact] + tail)

    # (e) noise: every drawing party inputs its share (joint/noise.py).
    R = len(scales_v)
    senders = list(noise.drawing_parties(noise_model))
    mine = noise.share(noise_model, scales_v) if mpc.pid in senders and not noise_free else [0] * R  # test harness
    released = exact
    for term in mpc.input(secint.array(F.array(np.array(mine, dtype=object))), senders=senders):
        released = released + term

    # (f) open.
    out = [int(x) for x in await mpc.output(released)]
    result = _unpack(layout, out, included, excluded)
    if reveal_exact:
        ex = [int(x) for x in await mpc.output(exact)]
        result.exact = _unpack(layout, ex, included, excluded)
    return result
