"""A computing party's home: the X25519 key its shares are encrypted to, the Ed25519 key it co-signs results with,
the TLS key it talks to the other parties with (joint/tls.py), and its public file `party.json` (name, both public
keys, a TLS certificate request and, for a party on its own machine, its network address host:port) that the
coordinator puts in the plan."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .tls import TLS_KEY

ENCRYPTION_KEY = "encryption.key"
SIGNING_KEY = "signing.key"
PUBLIC_FILE = "party.json"


@dataclass(frozen=True)
class PartyHome:
    home: Path
    name: str

    @property
    def encryption_key(self) -> Path:
        return self.home / ENCRYPTION_KEY

    @property
    def signing_key(self) -> Path:
        return self.home / SIGNING_KEY

    @property
    def public_file(self) -> Path:
        return self.home / PUBLIC_FILE

    @property
    def tls_key(self) -> Path:
        return self.home / TLS_KEY


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def init_party(home: Path, name: str, address: str | None = None) -> PartyHome:
    """Make a party's keys in a new home folder (refuses a folder that already holds party keys); `address`
    (host:port) is where the other parties reach this one when each runs on its own machine."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from ..contract.keys import generate_keypair
    from ..util.files import atomic_write
    from .tls import format_address, make_tls_key, parse_address

    home = Path(home)
    if address is not None:
        address = format_address(*parse_address(address))
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError("a party name is 1-64 letters, digits, '-' or '_'")
    if any((home / f).exists() for f in (ENCRYPTION_KEY, SIGNING_KEY, TLS_KEY)):
        raise ConfigError(f"{home} already holds a computing party's keys")
    home.mkdir(parents=True, exist_ok=True)
    x_private = X25519PrivateKey.generate()
    _write_private(home / ENCRYPTION_KEY, x_private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
    pem, raw_public = generate_keypair()
    _write_private(home / SIGNING_KEY, pem)
    request = make_tls_key(home, name)
    x_public = x_private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public = {"name": name, "encryption_key": base64.b64encode(x_public).decode("ascii"),
              "signing_key": base64.b64encode(raw_public).decode("ascii"), "tls_request": request}
    if address is not None:
        public["address"] = address
    atomic_write(home / PUBLIC_FILE, (json.dumps(public, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return PartyHome(home, name)


def set_address(home: Path, address: str) -> PartyHome:
    """Set or change the address (host:port) in the party's public file, keeping its keys. A home made before
    parties had TLS material also gets its TLS key and certificate request here, so it can join a plan for
    parties on their own machines. A plan already made keeps the address it was made with."""
    from ..util.files import atomic_write
    from .tls import format_address, make_tls_key, parse_address

    address = format_address(*parse_address(address))
    party = load_party(home)
    public = json.loads(party.public_file.read_text(encoding="utf-8"))
    if not party.tls_key.exists():
        public["tls_request"] = make_tls_key(party.home, party.name)
    elif not public.get("tls_request"):
        raise ConfigError(f"{party.home} holds a TLS key but {PUBLIC_FILE} lacks its certificate request; restore "
                          f"{PUBLIC_FILE} from a backup, or make a new home with `aggregator party init`")
    public["address"] = address
    atomic_write(party.public_file, (json.dumps(public, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return party


def load_party(home: Path) -> PartyHome:
    home = Path(home)
    try:
        name = json.loads((home / PUBLIC_FILE).read_text(encoding="utf-8"))["name"]
    except (OSError, ValueError, KeyError):
        raise ConfigError(f"{home} is not a computing party's home; run `aggregator party init`") from None
    if not (home / ENCRYPTION_KEY).is_file() or not (home / SIGNING_KEY).is_file():
        raise ConfigError(f"{home} lacks the party's private keys")
    return PartyHome(home, name)


def own_public_keys(party: PartyHome) -> tuple[str, str]:
    """(X25519, Ed25519) public keys, base64 raw, derived from the home's private keys (not read from party.json)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from ..contract.keys import load_private_key

    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    try:
        x_public = X25519PrivateKey.from_private_bytes(party.encryption_key.read_bytes()).public_key()
    except (OSError, ValueError):
        raise ConfigError(f"{party.encryption_key} is not a party's X25519 key") from None
    signing = load_private_key(party.signing_key)
    if not hasattr(signing, "sign") or not hasattr(signing.public_key(), "public_bytes"):
        raise ConfigError(f"{party.signing_key} is not an Ed25519 key")
    try:
        s_public = signing.public_key().public_bytes(*raw)
    except ValueError:
        raise ConfigError(f"{party.signing_key} is not an Ed25519 key") from None
    return (base64.b64encode(x_public.public_bytes(*raw)).decode("ascii"),
            base64.b64encode(s_public).decode("ascii"))
