"""The coordinator's side of a joint computation whose three parties run on their own machines.

`export_jobs` writes one job folder per party (format: joint/remote.py): the signed plan file, the list of current
bundles that pinned the plan and, from each, only that party's sealed share; the coordinator never decrypts a share
and no party gets another's. Each party runs `aggregator compute --no-local` from its folder and sends back its
signed result file. `store_party_results` reads the three files and stores the result only when they name this plan,
come from the three parties (one each), agree on the opened counts and on the bundles they were given, and every
signature verifies with the key the plan names (`coordinator/joint.py: store_joint_result`, which also refuses a
second result for the plan and gives back the joint epsilon of bundles whose shares were not used).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .joint import JointRefused, JointRun

MARKER = "jobs.json"


@dataclass
class ExportedJobs:
    """What `aggregator compute export` wrote: one folder per party, in the plan's order."""

    plan: str
    period: int
    organisations: list[str]
    bundles: list[str]
    folders: list[str]
    addresses: list[str | None] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def job_folder_name(index: int, name: str) -> str:
    return f"{index}-{name}"


def export_jobs(db_path: Path, plan_file: Path, out: Path) -> ExportedJobs:
    """Write the three parties' job folders under `out` (a new or empty folder, or one an earlier export made)."""
    from ..joint.plan import read_plan_file
    from ..joint.remote import JOB_FILE, JOB_FORMAT, PLAN_FILE, SHARES_DIR
    from ..util.files import atomic_write, clear_marked_folder
    from .joint import bundle_shares, handed_bundles

    plan_bytes = Path(plan_file).read_bytes() if Path(plan_file).is_file() else None
    plan = read_plan_file(Path(plan_file))
    plan, rows, org_lists = handed_bundles(db_path, plan.digest)
    if not plan.networked:
        raise JointRefused(f"plan {plan.digest[:12]} names no network addresses of the parties; run it with "
                           "`aggregator compute --local`, or make a plan with addresses (`plan create --party "
                           "FILE@HOST:PORT`)")
    names = [p.name for p in plan.parties]
    folders = [job_folder_name(i, name) for i, name in enumerate(names)]
    out = Path(out)
    clear_marked_folder(out, MARKER, (MARKER, *folders), "exported job folders")
    organisations = [{"id": org, "bundle": digest, **({"list": org_lists[org]} if plan.lists else {})}
                     for digest, org in rows]
    shares = {digest: bundle_shares(db_path, digest) for digest, _ in rows}
    for i, folder in enumerate(folders):
        target = out / folder
        (target / SHARES_DIR).mkdir(parents=True)
        job = {"format": JOB_FORMAT, "plan": plan.digest, "period": plan.period, "party": i,
               "party_name": names[i], "organisations": organisations}
        atomic_write(target / PLAN_FILE, plan_bytes)
        for digest, org in rows:
            atomic_write(target / SHARES_DIR / f"{org}.{i}.share", shares[digest][i])
        atomic_write(target / JOB_FILE, (json.dumps(job, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    exported = ExportedJobs(plan.digest, plan.period, [org for _, org in rows], [d for d, _ in rows], folders,
                            [p.address for p in plan.parties])
    atomic_write(out / MARKER, (json.dumps(exported.as_dict(), indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return exported


def store_party_results(db_path: Path, plan_file: Path, result_files: list[Path]) -> JointRun:
    """Store the joint result from the three parties' signed result files (see the module docstring)."""
    from ..joint.errors import PartyRunRefused
    from ..joint.plan import read_plan_file
    from ..joint.remote import read_party_result
    from .joint import store_joint_result

    plan = read_plan_file(Path(plan_file))
    names = [p.name for p in plan.parties]
    by_party: dict[int, dict[str, Any]] = {}
    for path in result_files:
        try:
            doc = read_party_result(Path(path))
        except PartyRunRefused as exc:
            raise JointRefused(exc.message) from None
        if doc["plan"] != plan.digest:
            raise JointRefused(f"{Path(path).name} is a result for plan {doc['plan'][:12]}, not for plan "
                               f"{plan.digest[:12]}")
        index = doc["party"]
        if not 0 <= index < len(names):
            raise JointRefused(f"{Path(path).name} names party {index}; the plan has parties 0-{len(names) - 1}")
        if index in by_party:
            raise JointRefused(f"two result files are from party {index} ({names[index]})")
        by_party[index] = doc
    missing = [f"party {i} ({name})" for i, name in enumerate(names) if i not in by_party]
    if missing:
        raise JointRefused("a joint result is stored only with the signed result of every computing party; missing: "
                           + ", ".join(missing))
    docs = [by_party[i] for i in range(len(names))]
    for doc in docs[1:]:
        if doc["result"] != docs[0]["result"]:
            raise JointRefused(f"party {doc['party']} ({names[doc['party']]}) opened other counts than party 0; "
                               "nothing was stored")
        if doc["bundles"] != docs[0]["bundles"]:
            raise JointRefused(f"party {doc['party']} ({names[doc['party']]}) was given other bundles than party 0; "
                               "nothing was stored")
    result = docs[0]["result"]
    refunds = store_joint_result(db_path, plan.digest, result, [d["signature"] for d in docs], docs[0]["bundles"])
    return JointRun(plan.digest, plan.period, list(result.get("included", [])), dict(result.get("excluded", {})),
                    max(d["seconds"] for d in docs), dict(result.get("counts", {})), refunds)
