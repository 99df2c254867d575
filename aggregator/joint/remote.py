"""One computing party on its own machine: run it from the job folder the coordinator exported for it, and the
formats of that folder and of the signed result file the party sends back.

A job folder (written by ``coordinator/joint_jobs.py: export_jobs``, one per party, holding only that party's
encrypted shares):

    job.json     format, plan digest, period, the party's index and name, and per organisation its id, the digest
                 of the bundle its shares come from and (plans with lists) its list index
    plan.json    the coordinator's signed plan file (addresses, TLS certificates, layout, epsilon split)
    shares/      <org>.<index>.share: the sealed share of each organisation for this party

``run_party(home, job_dir)`` finds the party's index in the plan from the keys of its home (derived from the private
keys, not read from party.json), refuses a home whose keys the plan does not name or a folder made for another
party, checks that the plan's TLS certificate for it is for its own TLS key, writes its MPyC TLS folder into a private
temporary folder, and starts the party process (``joint/party.py``) with the plan's three addresses, listening only
on its own host (or on ``listen``). The other two must connect within ``connect_timeout``; the computation then has
``timeout``; a peer that stops ends the run at once. Every failure is a ``PartyRunRefused`` naming the cause, and the
party process is always stopped. On success it writes the result file: the opened counts, the bundles it was given
and its Ed25519 signature over the counts and the plan digest (``party.result_bytes``), which the coordinator stores
with the other two (``aggregator compute store``).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import JointError, PartyRunRefused

JOB_FORMAT = "aggregator-joint-job-v1"
RESULT_FORMAT = "aggregator-joint-party-result-v1"
JOB_FILE, PLAN_FILE, SHARES_DIR, RESULT_FILE = "job.json", "plan.json", "shares", "result.json"
DEFAULT_CONNECT_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 600.0
MAX_FILE = 64 * 1024 * 1024


@dataclass
class PartyRun:
    """What one party's run did; `result_file` goes back to the coordinator."""

    plan: str
    period: int
    party: int
    name: str
    organisations: list[str]
    excluded: dict[str, str]
    seconds: float
    result_file: str
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def job_id(plan_digest: str, organisations: list[dict[str, Any]]) -> str:
    """What the three parties compare before computing: the same plan, organisations, bundles and lists."""
    from ..contract.envelope import canonical_json, sha256_hex

    return sha256_hex(canonical_json({"plan": plan_digest, "organisations": organisations}))


def read_json_file(path: Path, what: str) -> Any:
    from ..contract.envelope import strict_json_loads
    from ..errors import BundleRejected

    try:
        data = Path(path).read_bytes()
        if len(data) > MAX_FILE:
            raise PartyRunRefused(f"{Path(path).name} is larger than a {what} can be")
        return strict_json_loads(data, what)
    except OSError:
        raise PartyRunRefused(f"cannot read the {what} {path}") from None
    except BundleRejected as exc:
        raise PartyRunRefused(f"{path} is not a usable {what}: {exc.message}") from None


def read_job(job_dir: Path, coordinator_key: bytes | None = None):
    """(job dict, Plan) of a job folder, checked against each other; PartyRunRefused otherwise."""
    from ..errors import AggregatorError
    from .plan import read_plan_file
    from .runner import ORG_ID

    job_dir = Path(job_dir)
    if not (job_dir / JOB_FILE).is_file():
        raise PartyRunRefused(f"{job_dir} is not a job folder of the joint computation (no {JOB_FILE}); the "
                              "coordinator makes them with `aggregator compute export`")
    job = read_json_file(job_dir / JOB_FILE, "job file")
    try:
        plan = read_plan_file(job_dir / PLAN_FILE, coordinator_key)
    except AggregatorError as exc:
        raise PartyRunRefused(f"{job_dir / PLAN_FILE}: {exc.message}") from None
    try:
        if job["format"] != JOB_FORMAT:
            raise ValueError("format")
        orgs = [(str(o["id"]), str(o["bundle"]), o.get("list")) for o in job["organisations"]]
        index, name = int(job["party"]), str(job["party_name"])
        if not 0 <= index < 3 or not orgs:
            raise ValueError("party")
    except (KeyError, TypeError, ValueError):
        raise PartyRunRefused(f"{job_dir / JOB_FILE} is not a job file this aggregator knows") from None
    if job["plan"] != plan.digest:
        raise PartyRunRefused(f"the job is for plan {str(job['plan'])[:12]}, but its plan file is plan "
                              f"{plan.digest[:12]}")
    bad = [org for org, _, _ in orgs if not ORG_ID.match(org)]
    if bad or len({org for org, _, _ in orgs}) != len(orgs):
        raise PartyRunRefused("the job's organisation ids are not plain and unique")
    return job, plan


def find_index(home, plan) -> int:
    """This home's index among the plan's parties, from the public keys of its private keys."""
    from .party_home import own_public_keys

    encryption, signing = own_public_keys(home)
    for i, party in enumerate(plan.parties):
        if party.encryption_key == encryption and party.signing_key == signing:
            return i
    half = [p.name for p in plan.parties if p.encryption_key == encryption or p.signing_key == signing]
    if half:
        raise PartyRunRefused(f"the keys in {home.home} match only one of the two keys the plan names for "
                              f"{half[0]}; this home cannot take part")
    raise PartyRunRefused(f"the keys in {home.home} are not those of any computing party the plan names "
                          f"({', '.join(p.name for p in plan.parties)}); this home cannot take part in plan "
                          f"{plan.digest[:12]}")


def run_party(home: Path, job_dir: Path, *, out: Path | None = None, timeout: float = DEFAULT_TIMEOUT,
              connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, listen: str | None = None,
              coordinator_key: bytes | None = None) -> PartyRun:
    """Run this party of the plan from its job folder; write and return its signed result (see the module
    docstring). `coordinator_key` (raw Ed25519), if given, must have signed the plan."""
    from ..errors import UsageError
    from .party_home import load_party
    from .tls import check_own_certificate, parse_address

    if not timeout > 0 or not connect_timeout > 0:
        raise UsageError("time limits must be positive", "timeout" if not timeout > 0 else "connect_timeout")
    if listen is not None and (not listen or any(c in listen for c in " /@")):
        raise UsageError(f"{listen!r} is not a host name or address to listen on", "listen")
    home = load_party(Path(home))
    job_dir = Path(job_dir)
    job, plan = read_job(job_dir, coordinator_key)
    index = find_index(home, plan)
    names = [p.name for p in plan.parties]
    if int(job["party"]) != index:
        raise PartyRunRefused(f"this job folder is for party {job['party']} ({job['party_name']}), but "
                              f"{home.home} holds the keys of party {index} ({names[index]})")
    if not plan.networked:
        raise PartyRunRefused(f"plan {plan.digest[:12]} names no network addresses and TLS certificates of the "
                              "parties; it can only run with `aggregator compute --local`")
    try:
        check_own_certificate(plan.parties[index].certificate, home.home, index)
    except JointError as exc:
        raise PartyRunRefused(str(exc)) from None
    addresses = [parse_address(p.address, None) for p in plan.parties]
    org_lists = {org: int(k) for org, _, k in _orgs(job)} if plan.lists else {}
    if plan.lists and set(org_lists.values()) - set(range(len(plan.lists))):
        raise PartyRunRefused("the job puts an organisation on a list the plan does not have")
    layout = plan.layout(org_lists)
    out = Path(out) if out is not None else job_dir / RESULT_FILE
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aggregator-party-") as tmp:
        result, signature, stats = _run(home, index, job, plan, layout, addresses, Path(tmp), timeout=timeout,
                                        connect_timeout=connect_timeout, listen=listen,
                                        share_dir=(job_dir / SHARES_DIR).resolve())
    seconds = time.monotonic() - started
    document = {"format": RESULT_FORMAT, "plan": plan.digest, "period": plan.period, "party": index,
                "party_name": names[index], "bundles": [bundle for _, bundle, _ in _orgs(job)],
                "result": result, "signature": signature, "seconds": round(seconds, 3), "stats": stats}
    from ..errors import InputError
    from ..util.files import write_output

    try:
        write_output(out, (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    except InputError as exc:
        raise PartyRunRefused(f"the result was computed but {exc.message}") from None
    return PartyRun(plan.digest, plan.period, index, names[index], list(result["included"]),
                    dict(result["excluded"]), seconds, str(out), dict(result["counts"]))


def _orgs(job: dict) -> list[tuple[str, str, Any]]:
    return [(str(o["id"]), str(o["bundle"]), o.get("list")) for o in job["organisations"]]


def _run(home, index: int, job: dict, plan, layout, addresses, tmp: Path, *, timeout: float,
         connect_timeout: float, listen: str | None, share_dir: Path):
    """Start the party process in `tmp` and wait for it; (result dict, signature, stats) or PartyRunRefused."""
    import base64

    from . import noise
    from .runner import harness_extra, last_line, start_party
    from .tls import certificate_der, write_party_config

    work = tmp / "run"
    work.mkdir(mode=0o700)
    certificates = [p.certificate for p in plan.parties]
    write_party_config(work, index, home.home, certificates[index], plan.tls_ca)
    orgs = _orgs(job)
    spec = {"layout": layout.to_json(), "plan_digest": plan.digest, "orgs": [org for org, _, _ in orgs],
            "bundles": [bundle for _, bundle, _ in orgs],
            "scales": plan.group_scales(), "noise": noise.model_of(plan.version), "share_dir": str(share_dir),
            "parties": [{"host": host, "port": port} for host, port in addresses],
            "names": [p.name for p in plan.parties], "bind": listen or addresses[index][0],
            "pins": [base64.b64encode(certificate_der(c)).decode("ascii") for c in certificates],
            "timeout": timeout, "connect_timeout": connect_timeout, "tls": True,
            "job_id": job_id(plan.digest, job["organisations"]), **harness_extra()}
    job_path, result_path, err = work / "job.json", work / "result.json", tmp / "stderr.txt"
    job_path.write_text(json.dumps(spec), encoding="utf-8")
    process = start_party(job_path, index, str(home.encryption_key), result_path, err, work, str(home.signing_key))
    deadline = time.monotonic() + connect_timeout + timeout + 15.0
    try:
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    code = process.returncode
    if code != 0:
        why = last_line(err) or ("no message; it was stopped after "
                                 f"{connect_timeout + timeout + 15:.0f} s" if code < 0 else "no message")
        why = why.removeprefix(f"party {index}: ")
        raise PartyRunRefused(f"party {index} ({plan.parties[index].name}) stopped (exit code {code}): {why}"
                              + ("" if "nothing was" in why else "; this party released nothing"))
    try:
        result = json.loads(result_path.read_text(encoding="utf-8"))
        signature = (work / "result.sig").read_text(encoding="ascii").strip()
        stats = json.loads((work / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise PartyRunRefused(f"party {index} ended without a readable signed result") from None
    result.pop("party", None)
    return result, signature, stats


def read_party_result(path: Path) -> dict[str, Any]:
    """A party's result file, its fields checked for type (the signature is checked when it is stored)."""
    doc = read_json_file(Path(path), "party result file")
    try:
        if doc["format"] != RESULT_FORMAT:
            raise ValueError
        checked = {"plan": str(doc["plan"]), "party": int(doc["party"]), "party_name": str(doc["party_name"]),
                   "bundles": [str(b) for b in doc["bundles"]], "result": dict(doc["result"]),
                   "signature": str(doc["signature"]), "seconds": float(doc.get("seconds", 0.0))}
    except (KeyError, TypeError, ValueError):
        raise PartyRunRefused(f"{Path(path).name} is not a computing party's result file") from None
    return checked
