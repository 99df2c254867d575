"""Helpers for the joint-engine tests: layouts, vectors, a numpy reference, statistics."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import numpy as np

from aggregator.joint import arith, noise, runner, shares as sh
from aggregator.joint.field import prime_for
from aggregator.joint.layout import Cell, Layout

PLAN = "plan-digest-test"


def small_layout(n_orgs: int = 6, n_lists: int = 3) -> Layout:
    return Layout(cells=(Cell("age/minor", 70, "age"), Cell("age/adult", 50, "age"),
                         Cell("minors/NL", 90, "minors/NL", stratum=True)),
                  max_orgs=8, n_lists=n_lists,
                  org_lists={f"org{i}": i % n_lists for i in range(n_orgs)})


def random_vectors(layout: Layout, orgs: list[str], density: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {o: (rng.random(layout.size) < density).astype(np.uint8) for o in orgs}


def reference(layout: Layout, vectors: dict) -> dict:
    """Plain numpy counts for the same vectors (the truth the MPC must match)."""
    orgs = sorted(vectors)
    M = np.stack([vectors[o] for o in orgs]).astype(np.int64)
    S = M.sum(axis=0)
    offs = layout.offsets()
    counts = {c.name: int((S[a:b] > 0).sum()) for c, (a, b) in
              ((c, offs[c.name]) for c in layout.cells)}
    patterns, mult = {}, {}
    for c in layout.strata:
        a, b = offs[c.name]
        pat = np.zeros(b - a, dtype=np.int64)
        for k in range(layout.n_lists):
            rows = [i for i, o in enumerate(orgs) if layout.org_lists[o] == k]
            if rows:
                pat += (M[rows, a:b].sum(axis=0) > 0).astype(np.int64) << k
        patterns[c.name] = np.bincount(pat, minlength=2 ** layout.n_lists).tolist()
        s = S[a:b]
        mult[c.name] = {"1": int((s == 1).sum()), "2": int((s == 2).sum()), "3+": int((s >= 3).sum())}
    return {"counts": counts, "patterns": patterns, "multiplicity": mult}


def make_job(tmp: Path, layout: Layout, vectors: dict, **kw) -> runner.Job:
    keys = runner.make_party_keys(tmp / "keys")
    runner.write_shares(tmp / "shares", layout, PLAN, vectors, keys)
    sc = noise.scales({g: 1.0 for g in layout.groups()}, noise.sensitivities(layout))
    return runner.Job(layout, PLAN, sorted(vectors), sc, str(tmp / "shares"), keys, **kw)


def raw_sharing(v: np.ndarray, p: int) -> list[np.ndarray]:
    """A consistent degree-1 sharing of ANY vector of field elements (no 0/1 check)."""
    pp = np.uint64(p)
    v = np.asarray(v, dtype=np.uint64) % pp
    f1 = arith.uniform(v.size, p)
    return [f1, (2 * f1 + (pp - v)) % pp, (3 * f1 + 2 * (pp - v)) % pp]


def write_raw(job: runner.Job, org: str, share_vecs: list[np.ndarray]) -> None:
    """Seal given share vectors (one per party) as the org's share files."""
    p = prime_for(job.layout.bits)
    pubs = runner.public_keys(job.keys)
    for i, vec in enumerate(share_vecs):
        blob = sh.encrypt_share(sh.encode_vector(vec, p), pubs[i], sh.share_context(PLAN, org, i))
        (Path(job.share_dir) / f"{org}.{i}.share").write_bytes(blob)


def chi2_sf(x: float, df: int) -> float:
    """Upper tail of chi-square (Wilson-Hilferty; accurate enough for df >= 10)."""
    z = ((x / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 1 - NormalDist().cdf(z)


def chi2_uniform(values: np.ndarray, k: int) -> float:
    """p-value of 'values (ints in [0,k)) are uniform' by Pearson's chi-square."""
    obs = np.bincount(values, minlength=k)
    exp = len(values) / k
    return chi2_sf(float(((obs - exp) ** 2 / exp).sum()), k - 1)


def chi2_gof(samples: np.ndarray, pmf: dict[int, float], min_expected: float = 5.0) -> float:
    """p-value of Pearson's goodness of fit to an integer pmf, sparse tails pooled."""
    n = len(samples)
    keys = sorted(pmf)
    bins, cur, edges = [], 0.0, []
    for k in keys:  # pool from the left until expected >= min_expected
        cur += pmf[k]
        if cur * n >= min_expected:
            bins.append(cur)
            edges.append(k)
            cur = 0.0
    bins[-1] += cur
    edges[-1] = keys[-1]
    idx = np.searchsorted(np.array(edges), samples, side="left")
    idx = np.minimum(idx, len(edges) - 1)
    obs = np.bincount(idx, minlength=len(edges))
    exp = np.array(bins) * n
    return chi2_sf(float(((obs - exp) ** 2 / exp).sum()), len(edges) - 1)


def version4_plan(plan):
    """The same plan as plans of version 2-4 measured the people contributed under a local pseudonym: one group
    "unlinked" over the cross of the marginals' dimensions, with the epsilon the per-marginal groups had."""
    import itertools
    from fractions import Fraction

    from aggregator.contract.codelists import codes
    from aggregator.joint.plan import UNLINKED_GROUP, UNLINKED_PREFIX, Plan, unlinked_cell_name
    from aggregator.privacy.epsilon import exact_text

    doc = plan.document
    dims = tuple(dict.fromkeys(d for m in plan.marginals for d in m))
    split = {g: e for g, e in doc["epsilon_split"].items() if not g.startswith(UNLINKED_PREFIX)}
    split[UNLINKED_GROUP] = exact_text(sum(Fraction(e) for g, e in doc["epsilon_split"].items()
                                           if g.startswith(UNLINKED_PREFIX)))
    cells = [c for c in doc["cells"] if not c["group"].startswith(UNLINKED_PREFIX)]
    cells += [{"name": unlinked_cell_name(dims, key), "group": UNLINKED_GROUP, "m": 512}
              for key in itertools.product(*(codes(d) for d in dims))]
    return Plan({**doc, "plan_version": 4, "cells": cells, "epsilon_split": split, "unlinked_dims": list(dims)},
                plan.digest)
