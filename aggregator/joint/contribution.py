"""The organisation's side of a joint release (no secure computation runs here).

For every person of the period (statutory, consented and without a lawful basis) and every planned cell the person
falls in, bucket j = keyed hash of the pseudonym mod m_cell, computed in DuckDB on the TEMP table `people`. The
key is derived from the linkage key and the plan, so buckets agree across organisations (the same person lands in
the same bucket everywhere) and nobody without the linkage key can compute them. The 0/1 vector over all cells is
Shamir-shared and each share encrypted to one party; the exact vector and its counts never leave this function.
People known here only under a local pseudonym (no family name or no date of birth) also go into the plan's
"unlinked" cells, which bound the linkage error (plan.py, linkage bounds), and from plan version 4 not into the
stratum cells, whose overlaps they would break (plan.py, overlaps of linkable people).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from .plan import STRATA_GROUP, STRATIFIERS, STRATUM_FALLBACK, UNLINKED_PREFIX, Plan, group_name


def bucket_salt(linkage_key: bytes, plan: Plan) -> str:
    return hmac.new(linkage_key, b"joint-buckets|" + plan.digest.encode("ascii"), hashlib.sha256).hexdigest()


def bucket_vector(con, plan: Plan, linkage_key: bytes):
    """The flat 0/1 vector (numpy uint8) in the plan's layout, from TEMP table `people` (with identities:
    release.build_people(everyone=True)); set work in DuckDB.

    A person's bucket comes from sha256(salt || identity) in plans of version 2, and from sha256(salt || pseudonym)
    in version 1 plans, whose pseudonym (HMAC of the identity) is computed here; both are keyed by the salt, which
    only holders of the linkage key can derive, and both agree across organisations for the same identity."""
    import numpy as np

    from ..organisation.pseudonyms import hmac_pads, hmac_sql

    layout = plan.layout()
    offsets = layout.offsets()
    vector = np.zeros(layout.size, dtype=np.uint8)
    params = {"salt": bucket_salt(linkage_key, plan)}
    key_sql = "identity"
    if plan.version < 2:
        key_sql = hmac_sql("identity")
        params["ipad"], params["opad"] = hmac_pads(linkage_key)
    # each person's keyed hash once, whatever the number of planned cells they fall in; beside it only what the
    # plan's cells are chosen by (their dimensions and linkable), not the identities and pseudonyms again
    chosen_by = {d for dims in plan.marginals for d in dims} | {d for dims, _ in plan.unlinked_groups for d in dims}
    chosen_by |= {STRATIFIERS[name][0] for name in plan.strata}
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE people_hashed AS SELECT {''.join(d + ', ' for d in sorted(chosen_by))}linkable, "
        f"CAST(('0x' || substr(sha256($salt || {key_sql}), 1, 15)) AS UBIGINT) AS bucket_hash FROM people",
        params,
    )
    bucket = "p.bucket_hash % c.m + c.start"
    groups = [(dims, plan.cells_of(group_name(dims)), "TRUE") for dims in [(), *plan.marginals]]
    # linkage bounds: the people this organisation knows under a local pseudonym
    groups += [(dims, plan.cells_of(group), "NOT p.linkable") for dims, group in plan.unlinked_groups]
    for dims, cells, where in groups:
        starts = [offsets[c["name"]][0] for c in cells]
        ms = [int(c["m"]) for c in cells]
        params: dict[str, Any] = {"start": starts, "m": ms}
        keys = []
        for i, dim in enumerate(dims):
            params[f"k{i}"] = [c["name"].removeprefix(UNLINKED_PREFIX).split(",")[i].split("=", 1)[1] for c in cells]
            keys.append(f"UNNEST($k{i}::VARCHAR[]) AS k{i}")
        join = " AND ".join(f"p.{dim} = c.k{i}" for i, dim in enumerate(dims)) or "TRUE"
        sql = f"""
            WITH c AS (SELECT UNNEST($start::UBIGINT[]) AS start, UNNEST($m::UBIGINT[]) AS m
                       {''.join(', ' + k for k in keys)})
            SELECT DISTINCT {bucket} AS j FROM people_hashed AS p JOIN c ON {join} WHERE {where}
        """
        hits = con.execute(sql, params).fetchnumpy()["j"]
        vector[np.asarray(hits, dtype=np.int64)] = 1
    strata = plan.cells_of(STRATA_GROUP)
    if strata:
        params = {"start": [offsets[c["name"]][0] for c in strata], "m": [int(c["m"]) for c in strata],
                  "name": [c["name"] for c in strata]}
        sql = f"""
            WITH c AS (SELECT UNNEST($start::UBIGINT[]) AS start, UNNEST($m::UBIGINT[]) AS m,
                              UNNEST($name::VARCHAR[]) AS name)
            SELECT DISTINCT {bucket} AS j FROM people_hashed AS p JOIN c ON c.name = {stratum_expression(plan.strata)}
            {'WHERE p.linkable' if plan.linkable_overlaps else ''}
        """
        hits = con.execute(sql, params).fetchnumpy()["j"]
        vector[np.asarray(hits, dtype=np.int64)] = 1
    con.execute("DROP TABLE people_hashed")
    return vector


def stratum_expression(strata: list[str]) -> str:
    """SQL of a person's stratum cell name (see plan.stratum_names) from the release dimensions of `people`;
    the mapping is the plan's public codelist grouping, so its codes are safe to inline; plan.stratum_of is its
    Python twin (tests/joint/test_plan_lists.py checks that they agree)."""
    if not strata:
        return "'stratum=all'"
    parts = []
    for name in strata:
        dim, mapping = STRATIFIERS[name]
        whens = " ".join(f"WHEN p.{dim} = '{code}' THEN '{group}'" for code, group in mapping.items())
        parts.append(f"(CASE {whens} ELSE '{STRATUM_FALLBACK[name]}' END)")
    return "'stratum=' || " + " || '/' || ".join(parts)


def contribution(con, plan: Plan, linkage_key: bytes, org_id: str) -> dict[str, Any]:
    """The bundle's `joint` section: plan digest, joint epsilon, one encrypted share per party (base64)."""
    from ..privacy.epsilon import exact_text
    from . import shares
    from .field import prime_for

    vector = bucket_vector(con, plan, linkage_key)
    recipients = [base64.b64decode(p.encryption_key) for p in plan.parties]
    contexts = [shares.share_context(plan.digest, org_id, i) for i in range(3)]
    blobs = shares.seal_shares(vector, prime_for(plan.layout().bits), recipients, contexts)
    return {"plan": plan.digest, "epsilon": exact_text(plan.epsilon),
            "shares": [base64.b64encode(b).decode("ascii") for b in blobs]}
