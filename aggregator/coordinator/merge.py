"""merge: verified bundles into the store, all accepted ones of a run in one transaction (see store.py)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import duckdb

from ..errors import BundleRejected, InputError
from ..util.clock import store_now
from .admission import BundleOutcome, Staged, check_rules, load_state, outcome, stage
from .archive import keep_evidence, remove_interrupted_writes, write_archive
from .batch import Batch
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


