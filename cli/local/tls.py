"""The emulator's HTTPS: a local certificate authority and a server certificate it signs, cached in the state dir.

The CA is made once per state dir (its key never leaves `<state>/tls/`, mode 0600) and is valid for names on this
machine only: 127.0.0.1, ::1, localhost and `*.lambda-url.<region>.localhost`. Trust it per call
(`curl --cacert <state>/tls/ca.pem`, `httpx.Client(verify=...)`, `SSL_CERT_FILE` / `REQUESTS_CA_BUNDLE`), or system-wide
with `trust_hint()`'s command.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1",
           "ap-northeast-1")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def _names() -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("localhost"),
        x509.DNSName("*.localhost"),
    ]
    names += [x509.DNSName(f"*.lambda-url.{r}.localhost") for r in REGIONS]
    return names


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _valid(cert_path: Path, days_left: int = 7) -> bool:
    if not cert_path.exists():
        return False
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=days_left)


def ensure_tls(state_dir: Path) -> TlsFiles:
    """Create (or reuse) the CA and the server certificate under `<state_dir>/tls`."""
    folder = state_dir / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    ca_key_path = folder / "ca-key.pem"
    now = dt.datetime.now(dt.UTC)
    if not (_valid(files.ca, 30) and ca_key_path.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlfn local emulator CA"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mlfn local")])
        ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=3650))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False, decipher_only=False),
                             critical=True)
              .add_extension(x509.NameConstraints(permitted_subtrees=[x509.DNSName("localhost"),
                                                                      x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
                                                                      x509.IPAddress(ipaddress.ip_network("::1/128"))],
                                                  excluded_subtrees=None), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        _write_key(ca_key_path, ca_key)
        files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        files.cert.unlink(missing_ok=True)
    if not (_valid(files.cert) and files.key.exists()):
        signer = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        assert isinstance(signer, ec.EllipticCurvePrivateKey)
        ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365))
                .add_extension(x509.SubjectAlternativeName(_names()), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                               critical=False)
                .sign(signer, hashes.SHA256()))
        _write_key(files.key, key)
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


def trust_hint(ca: Path) -> str:
    """How to trust the emulator's CA, for one call or for the whole machine."""
    return (f"The local URLs use a certificate from mlfn's local CA ({ca}); it only covers localhost names.\n"
            f"  one call:     curl --cacert {ca} URL  |  SSL_CERT_FILE={ca} python ...  |  `mlfn invoke` trusts it\n"
            f"  this machine: sudo cp {ca} /usr/local/share/ca-certificates/mlfn-local.crt"
            " && sudo update-ca-certificates")
