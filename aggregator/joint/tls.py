"""Network addresses and TLS certificates of the computing parties when each runs on its own machine.

How the parties get their TLS material (MPyC 0.10's ``--ssl`` reads ``.config/party_<i>.crt``, ``party_<i>.key``
and ``mpyc_ca.crt`` relative to the working directory and checks each server's certificate for the host name
``MPyC party <i>``):

- ``aggregator party init`` makes the party's own TLS key (``tls.key``, EC P-256, mode 0600; it never leaves the home)
  and puts a certificate signing request for it in the public ``party.json`` (``tls_request``).
- ``aggregator plan create`` with the parties' addresses makes a CA key in memory, checks each request's signature
  (the party holds the key), issues party i the certificate ``MPyC party <i>`` for the key in its request, puts the CA
  certificate and the three certificates into the signed plan, and drops the CA key: it is never written anywhere.
- At run time a party writes its ``.config`` folder from the plan and its own ``tls.key`` (``write_party_config``),
  after checking that the plan's certificate for it is for its own key (``check_own_certificate``). During the
  handshake every party also pins its peers: a peer must present exactly the certificate the plan names for its
  index (``joint/wire.py``), so not even a second certificate from the same CA is accepted.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from ..errors import ConfigError, UsageError

TLS_KEY = "tls.key"
CERT_DAYS_AFTER_DEADLINE = 90  # the computation runs after the deadline; the certificates outlive it by this much
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def parse_address(text: str, option: str | None = "address") -> tuple[str, int]:
    """'host:port' (or '[v6]:port') -> (host, port); a UsageError naming `option` otherwise."""
    text = str(text).strip()
    bracketed = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})", text)
    if bracketed:
        host, port = bracketed.group(1), bracketed.group(2)
    else:
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not _HOST.match(host):
            raise UsageError(f"{text!r} is not host:port (e.g. 10.0.0.5:7101 or party1.example.org:7101)", option)
    if not 1 <= int(port) <= 65535:
        raise UsageError(f"port {port} is outside 1-65535", option)
    return host, int(port)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def party_host_name(index: int) -> str:
    """The name MPyC checks in party `index`'s certificate when it connects to it."""
    return f"MPyC party {index}"


def _pem(obj) -> str:
    from cryptography.hazmat.primitives import serialization

    return obj.public_bytes(serialization.Encoding.PEM).decode("ascii")


def make_tls_key(home: Path, name: str) -> str:
    """Write the party's TLS key (mode 0600, refused if present) and return a signing request for it (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    fd = os.open(Path(home) / TLS_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .sign(key, hashes.SHA256()))
    return _pem(request)


def load_tls_key(home: Path):
    from cryptography.hazmat.primitives import serialization

    path = Path(home) / TLS_KEY
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"{home} has no TLS key ({TLS_KEY}); it was made by an older version: make the party's "
                          "home again with `aggregator party init`") from None
    except (ValueError, TypeError):
        raise ConfigError(f"{path} is not an unencrypted PEM private key") from None


def check_request(pem: str, who: str):
    """The public key of a party's signing request, after checking the request is signed by that key."""
    from cryptography import x509

    try:
        request = x509.load_pem_x509_csr(pem.encode("ascii"))
        ok = request.is_signature_valid
    except (ValueError, TypeError, UnicodeEncodeError):
        ok = False
    if not ok:
        raise ConfigError(f"the TLS certificate request of party {who} is not valid")
    return request.public_key()


def issue_certificates(requests: list[tuple[str, str]], not_after: dt.datetime) -> tuple[str, list[str]]:
    """From (party name, request PEM) per party in plan order: (CA certificate PEM, one certificate PEM per party).

    The CA key exists only inside this call."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    keys = [check_request(pem, name) for name, pem in requests]
    now = dt.datetime.now(dt.timezone.utc)
    start = now - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aggregator joint computation CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(not_after)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    certificates = []
    for i, key in enumerate(keys):
        cn = party_host_name(i)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(ca_name).public_key(key).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        certificates.append(_pem(cert))
    del ca_key  # only ever in memory
    return _pem(ca), certificates


def certificate_der(pem: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(serialization.Encoding.DER)


def check_own_certificate(certificate_pem: str, home: Path, index: int) -> None:
    """The plan's certificate for party `index` must be for this home's TLS key and name `MPyC party <index>`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from .errors import JointError

    public = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = load_tls_key(home).public_key().public_bytes(serialization.Encoding.DER, public)
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
        theirs = cert.public_key().public_bytes(serialization.Encoding.DER, public)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except (ValueError, TypeError, x509.ExtensionNotFound):
        raise JointError(f"the plan's TLS certificate for party {index} cannot be read", party=index) from None
    if theirs != mine:
        raise JointError(f"the plan's TLS certificate for party {index} is not for this home's TLS key; the plan "
                         "was made from another party.json", party=index)
    if names != [party_host_name(index)]:
        raise JointError(f"the plan's TLS certificate for party {index} names {names}, not "
                         f"{party_host_name(index)!r}", party=index)


def write_party_config(folder: Path, index: int, home: Path, certificate_pem: str, ca_pem: str) -> Path:
    """The `.config` folder MPyC's --ssl reads, for one party, in `folder` (made 0700); returns `folder`."""
    cfg = Path(folder) / ".config"
    cfg.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    key_bytes = (Path(home) / TLS_KEY).read_bytes()
    fd = os.open(cfg / f"party_{index}.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    (cfg / f"party_{index}.crt").write_text(certificate_pem, encoding="ascii")
    (cfg / "mpyc_ca.crt").write_text(ca_pem, encoding="ascii")
    return Path(folder)
