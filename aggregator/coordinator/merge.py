"""merge: verified bundles into the store, all accepted ones of a run in one transaction (see store.py)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

import duckdb

from ..contract.codelists import DIMENSIONS
from ..errors import BundleRejected, InputError
from ..privacy.epsilon import exact_text
from ..util.clock import store_now, utc_naive
from .admission import BundleOutcome, Staged, cell_keys, check_rules, load_state, outcome, stage
from .ledger import ChainedEntry
from .archive import keep_evidence, remove_interrupted_writes, write_archive
from .store import archive_dir, atomic, open_store

@dataclass
class MergeResult:
    db: str
    bundles: list[BundleOutcome]
    receipts: dict[str, str] | None = None  # digest -> receipt file, when receipts were asked for

    def count(self, status: str) -> int:
        return sum(1 for b in self.bundles if b.status == status)

    @property
    def accepted(self) -> int:
        return self.count("accepted")

    @property
    def duplicate(self) -> int:
        return self.count("duplicate")

    @property
    def refused(self) -> int:
        return self.count("refused")

    @property
    def superseded(self) -> int:
        """Earlier bundles that this run replaced in the national table."""
        return sum(len(b.supersedes) for b in self.bundles)

    @property
    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.bundles:
            if b.status == "refused" and b.reason:
                out[b.reason] = out.get(b.reason, 0) + 1
        return dict(sorted(out.items()))

    @property
    def ok(self) -> bool:
        return self.refused == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "superseded": self.superseded,
            "refused": self.refused,
            "reasons": self.reasons,
            "bundles": [b.as_dict() for b in self.bundles],
            **({"receipts": self.receipts} if self.receipts is not None else {}),
        }


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
# The large tables come from column arrays registered with DuckDB (NumPy; scanned in C++, far cheaper than
# turning every value of a list parameter into a DuckDB value): `_columns` below.
_INSERT_RECORDS = """
INSERT INTO records (digest, org_id, period, pseudonym, basis, form, age_band, gender, nationality_group, province)
SELECT digest::VARCHAR, org::VARCHAR, period::INTEGER, pseudonym::VARCHAR, basis::VARCHAR, form::VARCHAR,
       age_band::VARCHAR, gender::VARCHAR, nationality_group::VARCHAR, province::VARCHAR
FROM merge_records
"""
_INSERT_MARGINALS = """
INSERT INTO marginals (digest, marginal_index, dimensions, epsilon, scale, variance, expected_error_95)
SELECT digest::VARCHAR, marginal_index::INTEGER, dimensions::VARCHAR[], epsilon::VARCHAR, scale::DOUBLE, variance::DOUBLE,
       error::DOUBLE
FROM merge_marginals
"""
# The cells of a marginal are every codelist cell of its dimensions in order (checked when staged), so their
# dimension columns come from one template per dimension set (`_cell_template`), extended per marginal.
_INSERT_CELLS = """
INSERT INTO noisy_cells (digest, marginal_index, form, age_band, gender, nationality_group, province, count)
SELECT digest::VARCHAR, marginal_index::INTEGER, form::VARCHAR, age_band::VARCHAR, gender::VARCHAR,
       nationality_group::VARCHAR, province::VARCHAR, count::BIGINT
FROM merge_cells
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
        self.records: dict[str, list[Any]] = {
            name: []
            for name in ("digest", "org", "period", "pseudonym", "basis", "form", "age_band", "gender",
                         "nationality_group", "province")
        }
        self.marginals: dict[str, list[Any]] = {
            name: [] for name in ("digest", "marginal_index", "dimensions", "epsilon", "scale", "variance", "error")
        }
        self.cells: dict[str, list[Any]] = {
            name: [] for name in ("digest", "marginal_index", *DIMENSIONS, "count")
        }
        self.withdrawals: dict[str, list[Any]] = {name: [] for name in ("digest", "org", "period", "pseudonym", "sequence")}
        self.superseded_by: dict[str, str] = {}  # digest -> the digest that replaced it, old and new bundles

    def add(self, staged: Staged, chained: ChainedEntry) -> None:
        p = staged.payload
        digest, org_id, period = staged.digest, p.organisation.id, p.period
        self.accepted.append(staged)
        b = self.bundles
        b["digest"].append(digest)
        b["org"].append(org_id)
        b["period"].append(period)
        b["sequence"].append(p.sequence)
        b["keyid"].append(staged.keyid)
        b["created_at"].append(utc_naive(p.created_at))
        b["expires_at"].append(utc_naive(p.expires_at))
        b["ledger_index"].append(chained.index)
        b["epsilon"].append(exact_text(staged.epsilon))
        b["n_records"].append(len(p.records))
        b["n_withdrawals"].append(len(p.withdrawals))
        b["joint_plan"].append(p.joint.plan if p.joint else None)
        b["joint_epsilon"].append(exact_text(Fraction(p.joint.epsilon)) if p.joint else None)
        row = {"idx": chained.index, "org": org_id, "period": period, "digest": digest,
               "epsilon": chained.body["epsilon"], "entry": chained.text, "prev_hash": chained.prev_hash,
               "hash": chained.hash}
        for name, value in row.items():
            self.ledger[name].append(value)
        records = p.records
        if records:
            r = self.records
            n = len(records)
            r["digest"].extend([digest] * n)
            r["org"].extend([org_id] * n)
            r["period"].extend([period] * n)
            r["pseudonym"].extend([rec.pseudonym for rec in records])
            r["basis"].extend([rec.basis for rec in records])
            for column in ("form", "age_band", "gender", "nationality_group", "province"):  # codelist enums
                r[column].extend([getattr(rec, column).value for rec in records])
        if p.release:
            m, c = self.marginals, self.cells
            for index, marginal in enumerate(p.release.marginals):
                m["digest"].append(digest)
                m["marginal_index"].append(index)
                m["dimensions"].append(list(marginal.dimensions))
                m["epsilon"].append(staged.marginal_epsilons[index])
                m["scale"].append(marginal.scale)
                m["variance"].append(marginal.variance)
                m["error"].append(marginal.expected_error_95)
                template = _cell_template(tuple(marginal.dimensions))
                counts = staged.counts[index]
                n = len(counts)
                c["digest"].extend([digest] * n)
                c["marginal_index"].extend([index] * n)
                for dim in DIMENSIONS:
                    c[dim].extend(template[dim])
                c["count"].extend(counts)
        withdrawals = p.withdrawals
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
            _insert_columns(con, "merge_records", self.records, _INSERT_RECORDS)
        if self.marginals["digest"]:
            _insert_columns(con, "merge_marginals", self.marginals, _INSERT_MARGINALS)
            _insert_columns(con, "merge_cells", self.cells, _INSERT_CELLS)
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


@lru_cache(maxsize=64)
def _cell_template(dims: tuple[str, ...]) -> dict[str, list[str | None]]:
    """The dimension columns of every codelist cell of `dims` in order (None where a dimension is not in `dims`)."""
    keys = cell_keys(dims)
    return {dim: [key[dims.index(dim)] for key in keys] if dim in dims else [None] * len(keys) for dim in DIMENSIONS}


_INTEGER_COLUMNS = frozenset({"period", "marginal_index", "count"})
_FLOAT_COLUMNS = frozenset({"scale", "variance", "error"})


def _insert_columns(con: duckdb.DuckDBPyConnection, view: str, columns: dict[str, list[Any]], sql: str) -> None:
    """Run `sql` (an INSERT ... SELECT FROM `view`) over the column lists, registered as NumPy arrays.

    Every value is kept as it is: text and lists as Python objects, integers as int64, floats as float64; the
    INSERT casts each column to its table type."""
    import numpy as np

    arrays: dict[str, Any] = {}
    for name, values in columns.items():
        if name in _INTEGER_COLUMNS:
            arrays[name] = np.array(values, dtype=np.int64)
        elif name in _FLOAT_COLUMNS:
            arrays[name] = np.array(values, dtype=np.float64)
        else:  # one object per row, also for a column of equal-length lists (np.array would make it 2-D)
            arrays[name] = np.fromiter(values, dtype=object, count=len(values))
    con.register(view, arrays)
    try:
        con.execute(sql)
    finally:
        con.unregister(view)


ProgressCallback = Callable[[str, int, int], None]


def merge_bundles(
    db_path: Path,
    paths: Sequence[Path | str],
    *,
    now: dt.datetime | None = None,
    progress: ProgressCallback | None = None,
    receipts: Path | None = None,
    key: Path | None = None,
) -> MergeResult:
    """Verify and merge bundle files into the store in one transaction; refused bundles leave no trace in it.

    `progress(stage, done, total)` is called after each bundle of the stages "verify" (read, open, verify,
    parse) and "ingest" (the replay, rollback and budget rules); the accepted bundles are then written at once.
    `now` fixes the clock (expiry check and received_at), e.g. for a rebuild from the archive.
    With `receipts` (a folder), every accepted bundle, and every duplicate of one accepted before, gets a receipt
    signed with the coordinator's key (`key`, default coordinator.key beside the store; see receipts.py).
    """
    db_path = Path(db_path)
    now = store_now(now)
    signer = None
    if receipts is not None:  # a missing or unusable key stops the run before anything is merged
        from .receipts import coordinator_signer

        signer = coordinator_signer(db_path, key)
    issued: dict[str, str] | None = None
    outcomes: dict[int, BundleOutcome] = {}
    staged: list[Staged] = []
    with open_store(db_path) as con:
        remove_interrupted_writes(db_path)
        state = load_state(con)
        for position, path in enumerate(paths):
            try:
                result = stage(state, position, Path(path), now)
            except BundleRejected as exc:
                outcomes[position] = BundleOutcome(Path(path).name, "refused", exc.reason, exc.message)
            except Exception as exc:  # one bundle never stops a run: whatever else breaks, it is refused
                outcomes[position] = _unexpected(Path(path).name, exc)
            else:
                if isinstance(result, BundleOutcome):
                    outcomes[position] = result
                else:
                    staged.append(result)
            if progress:
                progress("verify", position + 1, len(paths))
        staged.sort(key=lambda s: (s.payload.organisation.id, s.payload.period, s.payload.sequence, s.digest))
        batch = Batch()
        for done, item in enumerate(staged, start=1):
            try:
                outcomes[item.position] = check_rules(state, item, batch, now)
            except BundleRejected as exc:
                outcomes[item.position] = outcome(item, "refused", reason=exc.reason, message=exc.message)
                if exc.reason == "equivocation":
                    keep_evidence(db_path, item)
            except Exception as exc:  # pragma: no cover - the rules raise BundleRejected; a bug refuses one bundle
                outcomes[item.position] = _unexpected(item.file, exc)
            if progress:
                progress("ingest", done, len(staged))
        if batch.accepted:
            _commit_batch(con, batch, db_path, now, outcomes)
        if signer is not None:
            from .receipts import issue_receipts

            digests = [o.digest for o in outcomes.values() if o.status in ("accepted", "duplicate") and o.digest]
            try:
                issued = issue_receipts(con, digests, signer, Path(receipts), now)
            except InputError as exc:
                raise InputError(f"{exc.message}: the bundles are merged, but their receipts are not written; merge "
                                 "the same files again with --receipts to get them") from None
    return MergeResult(str(db_path), [outcomes[i] for i in range(len(paths))], issued)


def _unexpected(name: str, exc: Exception) -> BundleOutcome:
    """A refusal for a bundle whose checks failed in a way no rule foresaw (the exception type only, no values)."""
    return BundleOutcome(
        name, "refused", "check-failed",
        f"bundle {name} could not be checked ({type(exc).__name__}); refused, the rest of the run goes on",
    )


def _commit_batch(
    con: duckdb.DuckDBPyConnection, batch: Batch, db_path: Path, now: dt.datetime, outcomes: dict[int, BundleOutcome]
) -> None:
    """All accepted bundles of a run in one transaction; the archive files are durable before it commits."""
    archiving = None
    try:
        with atomic(con):
            # The archive files are written in a thread while DuckDB inserts the rows (their fsyncs overlap the inserts).
            runner = ThreadPoolExecutor(max_workers=1)
            archiving = runner.submit(write_archive, archive_dir(db_path), [(s.digest, s.data) for s in batch.accepted])
            try:
                flags = batch.write(con, now)
            finally:
                runner.shutdown(wait=True)
            try:
                archiving.result()
            except OSError as exc:
                raise InputError(
                    f"merge stopped: cannot write to the archive folder {archive_dir(db_path).name} "
                    f"({exc.strerror or type(exc).__name__}); nothing of this run was merged"
                ) from None
    except BaseException:
        if archiving is not None and archiving.done() and archiving.exception() is None:  # a failed write cleans up
            for path in archiving.result():
                path.unlink(missing_ok=True)
        raise
    for item in batch.accepted:
        flagged = flags.get(item.digest)
        if flagged:
            earlier = outcomes[item.position].flagged  # e.g. records linked by a shared pseudonym
            outcomes[item.position].flagged = f"{earlier}; {flagged}" if earlier else flagged


