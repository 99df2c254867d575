"""The rows the accepted bundles of one merge run add, collected in memory and written with one set insert per table.

Parameters reach DuckDB one value at a time, so the many small rows of records, marginals and noisy cells travel
as ONE row per bundle: the bundle's own columns as values, and each per-row column as the row values joined by
SEP (a control character that no stored value holds: pseudonyms are hex, everything else is a codelist code, a
dimension name, an exact number or a float's repr; `_joined` refuses anything else). DuckDB splits them again
(`string_split` + UNNEST, side by side, in order) and casts each to its column type: integers and floats come back
exactly (a float's repr is the shortest text that reads back as the same double). The bundles and ledger tables
(one row per bundle) take plain list parameters.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import duckdb

from ..contract.codelists import DIMENSIONS
from ..privacy.epsilon import exact_text
from ..util.clock import utc_naive
from .admission import cell_keys
from .payload import RECORD_CODES

if TYPE_CHECKING:
    from .admission import Staged
    from .ledger import ChainedEntry

SEP = "\x1f"  # ASCII unit separator
_SPLIT = "UNNEST(string_split({}, chr(31)))"

# One set insert per table for all bundles of a run: parallel lists, one element per row, zipped by UNNEST.
_INSERT_BUNDLES = """
INSERT INTO bundles (digest, org_id, period, sequence, keyid, created_at, expires_at, received_at,
                     ledger_index, epsilon, n_records, n_withdrawals, superseded_by, flagged, joint_plan, joint_epsilon)
SELECT UNNEST($digest::VARCHAR[]), UNNEST($org::VARCHAR[]), UNNEST($period::INTEGER[]),
       UNNEST($sequence::INTEGER[]), UNNEST($keyid::VARCHAR[]), UNNEST($created_at::TIMESTAMP[]),
       UNNEST($expires_at::TIMESTAMP[]), $received_at::TIMESTAMP, UNNEST($ledger_index::BIGINT[]),
       UNNEST($epsilon::VARCHAR[]), UNNEST($n_records::INTEGER[]), UNNEST($n_withdrawals::INTEGER[]),
       UNNEST($superseded_by::VARCHAR[]), NULL, UNNEST($joint_plan::VARCHAR[]), UNNEST($joint_epsilon::VARCHAR[])
"""
_INSERT_LEDGER = """
INSERT INTO ledger (idx, event, org_id, period, digest, epsilon, entry, prev_hash, hash)
SELECT UNNEST($idx::BIGINT[]), 'accept', UNNEST($org::VARCHAR[]), UNNEST($period::INTEGER[]),
       UNNEST($digest::VARCHAR[]), UNNEST($epsilon::VARCHAR[]), UNNEST($entry::VARCHAR[]),
       UNNEST($prev_hash::VARCHAR[]), UNNEST($hash::VARCHAR[])
"""
# One row per bundle in the inner SELECT; the outer one splits its joined columns into the table's rows.
_INSERT_RECORDS = f"""
INSERT INTO records (digest, org_id, period, pseudonym, basis, form, age_band, gender, nationality_group, province)
SELECT digest, org, period, {_SPLIT.format("pseudonym")}, {_SPLIT.format("basis")}, {_SPLIT.format("form")},
       {_SPLIT.format("age_band")}, {_SPLIT.format("gender")}, {_SPLIT.format("nationality_group")},
       {_SPLIT.format("province")}
FROM (
    SELECT UNNEST($digest::VARCHAR[]) AS digest, UNNEST($org::VARCHAR[]) AS org, UNNEST($period::INTEGER[]) AS period,
           UNNEST($pseudonym::VARCHAR[]) AS pseudonym, UNNEST($basis::VARCHAR[]) AS basis,
           UNNEST($form::VARCHAR[]) AS form, UNNEST($age_band::VARCHAR[]) AS age_band,
           UNNEST($gender::VARCHAR[]) AS gender, UNNEST($nationality_group::VARCHAR[]) AS nationality_group,
           UNNEST($province::VARCHAR[]) AS province
)
"""
# dimensions: each marginal's names joined by ',' (a dimension name has none).
_INSERT_MARGINALS = f"""
INSERT INTO marginals (digest, marginal_index, dimensions, epsilon, scale, variance, expected_error_95)
SELECT digest, {_SPLIT.format("marginal_index")}::INTEGER, string_split({_SPLIT.format("dimensions")}, ','),
       {_SPLIT.format("epsilon")}, {_SPLIT.format("scale")}::DOUBLE, {_SPLIT.format("variance")}::DOUBLE,
       {_SPLIT.format("error")}::DOUBLE
FROM (
    SELECT UNNEST($digest::VARCHAR[]) AS digest, UNNEST($marginal_index::VARCHAR[]) AS marginal_index,
           UNNEST($dimensions::VARCHAR[]) AS dimensions, UNNEST($epsilon::VARCHAR[]) AS epsilon,
           UNNEST($scale::VARCHAR[]) AS scale, UNNEST($variance::VARCHAR[]) AS variance,
           UNNEST($error::VARCHAR[]) AS error
)
"""
# The cells of a marginal are every codelist cell of its dimensions in order (checked when staged), so a bundle's
# cell columns other than the counts depend only on its marginals' dimensions (`_cell_columns`, cached); '' stands
# for NULL, a dimension that is not in the cell's marginal (no code is empty).
_INSERT_CELLS = f"""
INSERT INTO noisy_cells (digest, marginal_index, form, age_band, gender, nationality_group, province, count)
SELECT digest, {_SPLIT.format("marginal_index")}::INTEGER, NULLIF({_SPLIT.format("form")}, ''),
       NULLIF({_SPLIT.format("age_band")}, ''), NULLIF({_SPLIT.format("gender")}, ''),
       NULLIF({_SPLIT.format("nationality_group")}, ''), NULLIF({_SPLIT.format("province")}, ''),
       {_SPLIT.format("count")}::BIGINT
FROM (
    SELECT UNNEST($digest::VARCHAR[]) AS digest, UNNEST($marginal_index::VARCHAR[]) AS marginal_index,
           UNNEST($form::VARCHAR[]) AS form, UNNEST($age_band::VARCHAR[]) AS age_band,
           UNNEST($gender::VARCHAR[]) AS gender, UNNEST($nationality_group::VARCHAR[]) AS nationality_group,
           UNNEST($province::VARCHAR[]) AS province, UNNEST($count::VARCHAR[]) AS count
)
"""
_INSERT_WITHDRAWALS = """
INSERT INTO withdrawals (digest, org_id, period, pseudonym, sequence)
SELECT digest, org_id, period, pseudonym, max(sequence)  -- a repeated withdrawal reaches the furthest sequence
FROM (
    SELECT UNNEST($digest::VARCHAR[]) AS digest, UNNEST($org::VARCHAR[]) AS org_id,
           UNNEST($period::INTEGER[]) AS period, UNNEST($pseudonym::VARCHAR[]) AS pseudonym,
           UNNEST($sequence::INTEGER[]) AS sequence
)
GROUP BY ALL
"""
# Earlier bundles this run replaced in the national table.
_SUPERSEDE = """
UPDATE bundles SET superseded_by = s.superseded_by
FROM (SELECT UNNEST($digest::VARCHAR[]) AS digest, UNNEST($superseded_by::VARCHAR[]) AS superseded_by) AS s
WHERE bundles.digest = s.digest
"""
# Withdrawals of this run's bundles that match no record the organisation sent for that period in a bundle
# accepted up to and including the withdrawing one (a note for auditors).
_UNMATCHED_WITHDRAWALS = """
SELECT w.digest, count(*) AS unmatched
FROM withdrawals AS w JOIN bundles AS wb ON wb.digest = w.digest
WHERE w.digest IN (SELECT UNNEST($digests::VARCHAR[]))
  AND NOT EXISTS (
      SELECT 1 FROM records AS r JOIN bundles AS rb ON rb.digest = r.digest
      WHERE r.org_id = w.org_id AND r.period = w.period AND r.pseudonym = w.pseudonym
        AND rb.ledger_index <= wb.ledger_index
  )
GROUP BY w.digest
"""
_FLAG = """
UPDATE bundles SET flagged = f.flagged
FROM (SELECT UNNEST($digest::VARCHAR[]) AS digest, UNNEST($flagged::VARCHAR[]) AS flagged) AS f
WHERE bundles.digest = f.digest
"""


class Batch:
    """Column lists of every table row the accepted bundles of one run add, for one set insert per table."""

    def __init__(self) -> None:
        self.accepted: list[Staged] = []
        self.bundles: dict[str, list[Any]] = {
            name: []
            for name in ("digest", "org", "period", "sequence", "keyid", "created_at", "expires_at", "ledger_index",
                         "epsilon", "n_records", "n_withdrawals", "joint_plan", "joint_epsilon")
        }
        self.ledger: dict[str, list[Any]] = {
            name: [] for name in ("idx", "org", "period", "digest", "epsilon", "entry", "prev_hash", "hash")
        }
        # one element per bundle that has such rows (see the module docstring)
        self.records: dict[str, list[Any]] = {
            name: [] for name in ("digest", "org", "period", "pseudonym", "basis", *RECORD_CODES)
        }
        self.marginals: dict[str, list[str]] = {
            name: [] for name in ("digest", "marginal_index", "dimensions", "epsilon", "scale", "variance", "error")
        }
        self.cells: dict[str, list[str]] = {name: [] for name in ("digest", "marginal_index", *DIMENSIONS, "count")}
        self.withdrawals: dict[str, list[Any]] = {name: [] for name in ("digest", "org", "period", "pseudonym", "sequence")}
        self.superseded_by: dict[str, str] = {}  # digest -> the digest that replaced it, old and new bundles

    def add(self, staged: Staged, chained: ChainedEntry) -> None:
        """Add an accepted bundle's rows (all computed before any is added: a failure leaves the batch as it was)."""
        p = staged.payload
        digest, org_id, period = staged.digest, p.organisation.id, p.period
        bundle = {
            "digest": digest, "org": org_id, "period": period, "sequence": p.sequence, "keyid": staged.keyid,
            "created_at": utc_naive(p.created_at), "expires_at": utc_naive(p.expires_at),
            "ledger_index": chained.index, "epsilon": exact_text(staged.epsilon), "n_records": len(staged.records),
            "n_withdrawals": len(p.withdrawals), "joint_plan": p.joint.plan if p.joint else None,
            "joint_epsilon": exact_text(Fraction(p.joint.epsilon)) if p.joint else None,
        }
        ledger = {"idx": chained.index, "org": org_id, "period": period, "digest": digest,
                  "epsilon": chained.body["epsilon"], "entry": chained.text, "prev_hash": chained.prev_hash,
                  "hash": chained.hash}
        records = staged.records
        record_row = {
            "digest": digest, "org": org_id, "period": period,
            **{column: _joined(getattr(records, column)) for column in ("pseudonym", "basis", *RECORD_CODES)},
        } if len(records) else None
        marginal_row = cell_row = None
        if p.release:
            marginals = p.release.marginals
            marginal_row = {
                "digest": digest,
                "marginal_index": _joined([str(i) for i in range(len(marginals))]),
                "dimensions": _joined([",".join(x.dimensions) for x in marginals]),
                "epsilon": _joined(staged.marginal_epsilons),
                "scale": _joined([repr(x.scale) for x in marginals]),
                "variance": _joined([repr(x.variance) for x in marginals]),
                "error": _joined([repr(x.expected_error_95) for x in marginals]),
            }
            cell_row = {
                "digest": digest,
                **_cell_columns(tuple(tuple(x.dimensions) for x in marginals)),
                "count": _joined([str(n) for counts in staged.counts for n in counts]),
            }
        withdrawals = p.withdrawals
        self.accepted.append(staged)
        for table, row in ((self.bundles, bundle), (self.ledger, ledger), (self.records, record_row),
                           (self.marginals, marginal_row), (self.cells, cell_row)):
            if row is not None:
                for name, value in row.items():
                    table[name].append(value)
        if withdrawals:
            w = self.withdrawals
            n = len(withdrawals)
            w["digest"].extend([digest] * n)
            w["org"].extend([org_id] * n)
            w["period"].extend([x.period for x in withdrawals])
            w["pseudonym"].extend([x.pseudonym for x in withdrawals])
            w["sequence"].extend([x.sequence for x in withdrawals])

    def write(self, con: duckdb.DuckDBPyConnection, now: dt.datetime) -> dict[str, str]:
        """Insert everything inside the caller's transaction; returns the flag note per flagged new bundle."""
        new = set(self.bundles["digest"])
        con.execute(
            _INSERT_BUNDLES,
            {**self.bundles, "received_at": now,
             "superseded_by": [self.superseded_by.get(d) for d in self.bundles["digest"]]},
        )
        con.execute(_INSERT_LEDGER, self.ledger)
        if self.records["digest"]:
            con.execute(_INSERT_RECORDS, self.records)
        if self.marginals["digest"]:
            con.execute(_INSERT_MARGINALS, self.marginals)
            con.execute(_INSERT_CELLS, self.cells)
        old = {d: by for d, by in self.superseded_by.items() if d not in new}
        if old:
            con.execute(_SUPERSEDE, {"digest": list(old), "superseded_by": list(old.values())})
        flags: dict[str, str] = {}
        if self.withdrawals["digest"]:
            con.execute(_INSERT_WITHDRAWALS, self.withdrawals)
            withdrawing = sorted(set(self.withdrawals["digest"]))
            flags = {
                digest: f"{unmatched} withdrawal(s) match no record this organisation sent"
                for digest, unmatched in con.execute(_UNMATCHED_WITHDRAWALS, {"digests": withdrawing}).fetchall()
                if unmatched
            }
            if flags:
                con.execute(_FLAG, {"digest": list(flags), "flagged": list(flags.values())})
        return flags


def _joined(values: list[str]) -> str:
    """One bundle's values of a column as one text (at least one value, none holding SEP)."""
    text = SEP.join(values)
    if not values or text.count(SEP) != len(values) - 1:
        raise ValueError("a merge batch column is empty or holds the separator")  # the checks upstream prevent it
    return text


@lru_cache(maxsize=64)
def _cell_columns(shapes: tuple[tuple[str, ...], ...]) -> dict[str, str]:
    """marginal_index and the dimension columns of every cell of a release whose marginals have these dimensions,
    each joined (see the module docstring; '' where a dimension is not in the cell's marginal)."""
    columns: dict[str, list[str]] = {"marginal_index": [], **{dim: [] for dim in DIMENSIONS}}
    for index, dims in enumerate(shapes):
        for key in cell_keys(dims):
            columns["marginal_index"].append(str(index))
            for dim in DIMENSIONS:
                columns[dim].append(key[dims.index(dim)] if dim in dims else "")
    return {name: _joined(values) for name, values in columns.items()}
