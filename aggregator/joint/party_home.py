"""A computing party's home: the X25519 key its shares are encrypted to, the Ed25519 key it co-signs results with,
and its public file `party.json` (name and both public keys) that the coordinator puts in the plan."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

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


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def init_party(home: Path, name: str) -> PartyHome:
    """Make a party's keys in a new home folder (refuses a folder that already holds party keys)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from ..contract.keys import generate_keypair
    from ..util.files import atomic_write

    home = Path(home)
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError("a party name is 1-64 letters, digits, '-' or '_'")
    if (home / ENCRYPTION_KEY).exists() or (home / SIGNING_KEY).exists():
        raise ConfigError(f"{home} already holds a computing party's keys")
    home.mkdir(parents=True, exist_ok=True)
    x_private = X25519PrivateKey.generate()
    _write_private(home / ENCRYPTION_KEY, x_private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
    pem, raw_public = generate_keypair()
    _write_private(home / SIGNING_KEY, pem)
    x_public = x_private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public = {"name": name, "encryption_key": base64.b64encode(x_public).decode("ascii"),
              "signing_key": base64.b64encode(raw_public).decode("ascii")}
    atomic_write(home / PUBLIC_FILE, (json.dumps(public, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return PartyHome(home, name)


def load_party(home: Path) -> PartyHome:
    home = Path(home)
    try:
        name = json.loads((home / PUBLIC_FILE).read_text(encoding="utf-8"))["name"]
    except (OSError, ValueError, KeyError):
        raise ConfigError(f"{home} is not a computing party's home; run `aggregator party init`") from None
    if not (home / ENCRYPTION_KEY).is_file() or not (home / SIGNING_KEY).is_file():
        raise ConfigError(f"{home} lacks the party's private keys")
    return PartyHome(home, name)
