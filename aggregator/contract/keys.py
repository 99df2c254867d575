"""Ed25519 keys: generation, the one-line public key file format, key ids."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from ..errors import ConfigError
from .envelope import sha256_hex


def key_id(public_key_bytes: bytes) -> str:
    """Short, stable identifier of a raw Ed25519 public key."""
    return sha256_hex(public_key_bytes)[:16]


def generate_keypair() -> tuple[bytes, bytes]:
    """New Ed25519 key pair as (private PEM, public raw 32 bytes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pem, raw_public


def load_private_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"private key not found: {path}; run `aggregator org init` first") from None
    except (ValueError, TypeError):
        raise ConfigError(f"private key file is not an unencrypted Ed25519 PEM key: {path}") from None


def public_key_text(raw_public: bytes) -> str:
    """The one-line public key file format: 'ed25519 <base64 raw key>'."""
    return "ed25519 " + base64.b64encode(raw_public).decode("ascii") + "\n"


def parse_public_key(text: str) -> bytes:
    """Raw 32-byte Ed25519 key from the public key file format (or bare base64)."""
    parts = text.strip().split()
    b64 = parts[-1] if parts else ""
    if len(parts) == 2 and parts[0] != "ed25519":
        raise ConfigError("public key file must start with 'ed25519'")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("public key is not valid base64") from None
    if len(raw) != 32:
        raise ConfigError("public key must be 32 bytes of Ed25519")
    return raw


def read_public_key_file(path: Path) -> bytes:
    """Raw Ed25519 key from a public key file (an organisation's `org.pub`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"public key file not found: {path}") from None
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"cannot read public key file {path}") from None
    return parse_public_key(text)


def public_key_path(private_key_path: Path) -> Path:
    """Where the public key of a private key file is published: the same name with `.pub` (coordinator.pub)."""
    return Path(private_key_path).with_suffix(".pub")


def load_or_create_key(path: Path):
    """The Ed25519 private key at `path`, made on first use (PEM, mode 0600) with its public key file beside it
    (`public_key_path`), which is what others verify with; an existing key is only read."""
    from ..util.files import atomic_write

    path = Path(path)
    if not path.exists():
        pem, raw_public = generate_keypair()
        atomic_write(path, pem, mode=0o600)
        atomic_write(public_key_path(path), public_key_text(raw_public).encode("ascii"))
    private = load_private_key(path)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(f"private key file is not an Ed25519 key: {path}")
    if not public_key_path(path).exists():  # a key made before public files were written (e.g. by plan create)
        from cryptography.hazmat.primitives import serialization

        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        atomic_write(public_key_path(path), public_key_text(raw).encode("ascii"))
    return private
