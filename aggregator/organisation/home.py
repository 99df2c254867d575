"""The organisation's local home: configuration, signing key, linkage key.

Layout of the home folder (default `.aggregator/`, or `--home`, or $AGGREGATOR_HOME):
  org.toml      id, kind, reporter type, privacy cap per period
  org.key       Ed25519 private key (PEM, mode 0600): signs bundles
  org.pub       public key to hand to the coordinator's registry
  spending.jsonl  the spending file: every epsilon this organisation released (organisation/spending.py)
  releases/     a copy of every released bundle (`<digest>.bundle.json`) and the coordinator's receipt for it
                (`<digest>.receipt.json`, kept by `org receipt add`: organisation/receipts.py)
Nothing in this folder leaves the organisation except org.pub.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from ..contract.codelists import INVESTIGATIVE_REPORTERS, OrgKind, ReporterType
from ..errors import ConfigError, UsageError

DEFAULT_HOME = Path(".aggregator")
LINKAGE_ENV = "AGGREGATOR_LINKAGE_KEY"
MIN_LINKAGE_KEY_BYTES = 16


def resolve_home(home: Path | None) -> Path:
    if home is not None:
        return home
    env = os.environ.get("AGGREGATOR_HOME")
    return Path(env) if env else DEFAULT_HOME


@dataclass(frozen=True)
class OrgConfig:
    id: str
    kind: str
    reporter_type: str
    cap: str  # exact epsilon cap per period, e.g. "1"
    home: str

    @property
    def cap_fraction(self) -> Fraction:
        return Fraction(self.cap)

    @property
    def key_path(self) -> Path:
        return Path(self.home) / "org.key"

    @property
    def public_key_path(self) -> Path:
        return Path(self.home) / "org.pub"

    @property
    def spending_path(self) -> Path:
        path = Path(self.home) / "spending.jsonl"
        earlier = Path(self.home) / "ledger.jsonl"  # the name homes made before version 0.2 used
        if not path.exists() and earlier.exists():
            earlier.rename(path)
        return path

    def as_dict(self) -> dict:
        return asdict(self)


def _check_org_id(org_id: str) -> None:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", org_id):
        raise UsageError("organisation id must be 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit")


def init_org(
    org_id: str,
    kind: str,
    *,
    reporter_type: str | None = None,
    cap: str = "1",
    home: Path | None = None,
    force: bool = False,
) -> OrgConfig:
    """Create the home folder with a fresh key pair; refuses to overwrite an existing key unless forced."""
    from ..util.files import atomic_write
    from ..contract.keys import generate_keypair, public_key_text
    from ..privacy.epsilon import parse_epsilon

    _check_org_id(org_id)
    try:
        kind = OrgKind(kind).value
    except ValueError:
        raise UsageError(f"organisation kind must be one of: {', '.join(k.value for k in OrgKind)}", "kind") from None
    if reporter_type is None:
        reporter_type = "police" if kind == "investigative" else "other"
    try:
        reporter_type = ReporterType(reporter_type).value
    except ValueError:
        raise UsageError(f"reporter type must be one of: {', '.join(r.value for r in ReporterType)}", "reporter_type") from None
    if (kind == "investigative") != (reporter_type in INVESTIGATIVE_REPORTERS):
        raise UsageError(f"reporter type {reporter_type!r} does not fit organisation kind {kind!r}")
    cap_value = parse_epsilon(cap)
    home = resolve_home(home)
    key_path = home / "org.key"
    if key_path.exists() and not force:
        raise ConfigError(f"{key_path} already exists; use --force to replace the key (old bundles stay verifiable only with the old public key)")
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    pem, raw_public = generate_keypair()
    atomic_write(key_path, pem, mode=0o600)
    atomic_write(home / "org.pub", public_key_text(raw_public).encode("ascii"))
    cap_text = str(cap_value)
    config_text = (
        f'id = "{org_id}"\nkind = "{kind}"\nreporter_type = "{reporter_type}"\ncap = "{cap_text}"\n'
    )
    atomic_write(home / "org.toml", config_text.encode("utf-8"))
    return OrgConfig(org_id, kind, reporter_type, cap_text, str(home))


def load_org(home: Path | None = None) -> OrgConfig:
    home = resolve_home(home)
    path = home / "org.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no organisation configured in {home}; run `aggregator org init --org ID --kind KIND`") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{path} is not valid TOML") from None
    try:
        return OrgConfig(str(data["id"]), str(data["kind"]), str(data["reporter_type"]), str(data.get("cap", "1")), str(home))
    except KeyError as exc:
        raise ConfigError(f"{path} lacks the entry {exc.args[0]!r}") from None


LINKAGE_KEY_BYTES = 32


def new_linkage_key(out: Path) -> Path:
    """Write a fresh linkage key: 32 random bytes as 64 lower-case hex digits and a newline, mode 0600.

    The 64 characters are the key exactly as `load_linkage_key` reads it, from this file (--linkage-key) or from
    $AGGREGATOR_LINKAGE_KEY (`export AGGREGATOR_LINKAGE_KEY="$(cat FILE)"`): both give the same pseudonyms. One
    organisation makes it and shares it with the other organisations; the coordinator never gets it. Refuses to
    overwrite an existing file: a new key would stop every pseudonym from linking to the earlier ones."""
    import secrets

    text = (secrets.token_hex(LINKAGE_KEY_BYTES) + "\n").encode("ascii")
    out = Path(out)
    try:
        if out.parent != Path(""):
            out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{out} already exists; a new linkage key would stop pseudonyms from linking with the old one, "
            "so remove the file yourself if you really mean to replace it"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot create linkage key file {out}: {exc.strerror or type(exc).__name__}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text)
        os.fsync(fd)
    finally:
        os.close(fd)
    return out


def inside_git_work_tree(path: Path) -> Path | None:
    """The root of the git work tree holding `path` (a folder that may not exist yet), or None."""
    here = Path(os.path.abspath(path))
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def load_linkage_key(path: Path | None) -> bytes:
    """The linkage key from a file or $AGGREGATOR_LINKAGE_KEY; it is never written into a bundle."""
    if path is not None:
        try:
            key = path.read_bytes().strip()
        except OSError:
            raise ConfigError(f"cannot read linkage key file {path}") from None
    else:
        key = os.environ.get(LINKAGE_ENV, "").strip().encode("utf-8")
        if not key:
            raise ConfigError(f"no linkage key: pass --linkage-key FILE or set ${LINKAGE_ENV}")
    if len(key) < MIN_LINKAGE_KEY_BYTES:
        raise ConfigError(f"linkage key is too short (need at least {MIN_LINKAGE_KEY_BYTES} bytes)")
    return key
