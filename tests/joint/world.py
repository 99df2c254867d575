"""A small coordinator store for runs of the three parties on their own "machines" (processes on 127.0.0.1): three
party homes with addresses, a signed plan with their TLS certificates, and organisations whose bundles carry shares
of known 0/1 vectors (built directly, without the organisation side, so the truth is known)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from aggregator.contract.schema import JointContribution
from aggregator.coordinator.joint import publish_plan
from aggregator.coordinator.merge import merge_bundles
from aggregator.joint import shares as sh
from aggregator.joint.field import prime_for
from aggregator.joint.party_home import init_party
from aggregator.joint.plan import Plan, party_ref_from_file
from aggregator.joint.runner import _free_ports
from aggregator.util.clock import utc_now
from tests import bundlefactory as bf

NAMES = ["coordinator-party", "rapporteur", "trusted-third-party"]
ORGS = [("shelter-a", "shelter"), ("shelter-b", "shelter"), ("care-c", "care_coordination"), ("help-d", "help_line")]


@dataclass
class World:
    root: Path
    db: Path
    plan_file: Path
    plan: Plan
    homes: list[Path]
    ports: list[int]
    vectors: dict[str, np.ndarray]

    def copy(self, target: Path) -> Path:
        """A private copy of the store and its archive; returns the database path."""
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.db, target / self.db.name)
        shutil.copytree(self.db.parent / "national.archive", target / "national.archive")
        return target / self.db.name


def build_world(root: Path, *, seed: int = 3, density: float = 0.04) -> World:
    root.mkdir(parents=True, exist_ok=True)
    ports = _free_ports(3)
    homes = [root / "parties" / name for name in NAMES]
    refs = [party_ref_from_file(init_party(home, name, f"127.0.0.1:{port}").public_file)
            for home, name, port in zip(homes, NAMES, ports)]
    db = root / "coordinator" / "national.duckdb"
    db.parent.mkdir(parents=True)
    orgs = [bf.new_org(org_id, reporter_type=kind) for org_id, kind in ORGS]
    bf.register(db, *orgs, cap="2")
    plan_file = root / "coordinator" / "plan.json"
    plan = publish_plan(db, 2025, Fraction(1), refs, key=root / "coordinator" / "coordinator.key", out=plan_file,
                        deadline=utc_now() + dt.timedelta(days=30), prior_total=100)
    layout = plan.layout()
    p = prime_for(layout.bits)
    recipients = [base64.b64decode(party.encryption_key) for party in plan.parties]
    rng = np.random.default_rng(seed)
    vectors, paths = {}, []
    for org in orgs:
        vector = (rng.random(layout.size) < density).astype(np.uint8)
        blobs = sh.seal_shares(vector, p, recipients, [sh.share_context(plan.digest, org.id, i) for i in range(3)])
        payload = bf.make_payload(org)
        payload.joint = JointContribution(plan=plan.digest, epsilon="1",
                                          shares=[base64.b64encode(b).decode("ascii") for b in blobs])
        paths.append(bf.write(root / "bundles", bf.sign(org, payload)))
        vectors[org.id] = vector
    outcome = merge_bundles(db, paths)
    assert all(b.status == "accepted" for b in outcome.bundles), outcome.bundles
    return World(root, db, plan_file, plan, homes, ports, vectors)


def reference_counts(plan: Plan, vectors: dict[str, np.ndarray]) -> dict[str, int]:
    """Non-empty buckets per cell of the OR of the vectors (what the parties open, before noise)."""
    layout = plan.layout()
    union = np.zeros(layout.size, dtype=bool)
    for vector in vectors.values():
        union |= vector.astype(bool)
    return {name: int(union[a:b].sum()) for name, (a, b) in layout.offsets().items()}


def aggregator_command() -> list[str]:
    return [sys.executable, "-c", "from aggregator.cli import main; main()"]


def start_party_cli(home: Path, job: Path, log: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`aggregator compute --no-local` for one party in its own session and process group (its party process
    joins that group, so a test can check that none is left and always end them); stdout to `log`, stderr to
    `log` with suffix .err."""
    with open(log, "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        return subprocess.Popen([*aggregator_command(), "compute", "--no-local", "--party-home", str(home),
                                 "--job", str(job), *args], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, start_new_session=True)


def group_gone(pid: int) -> bool:
    """No process is left in the process group `pid` started."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_all(procs: list[subprocess.Popen], hard_timeout: float) -> list[int]:
    """Wait for every process; past `hard_timeout` kill their process groups and fail."""
    deadline = time.monotonic() + hard_timeout
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                raise AssertionError(f"processes still running after {hard_timeout} s")
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return [p.returncode for p in procs]


def listening(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on `port` (Linux /proc), e.g. ['127.0.0.1']."""
    found = []
    for name, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, state = fields[1], fields[3]
            host, port_hex = address.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                raw = bytes.fromhex(host)
                if size == 4:
                    found.append(".".join(str(b) for b in raw[::-1]))
                else:
                    found.append("v6:" + host)
    return found
