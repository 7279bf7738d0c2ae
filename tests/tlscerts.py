"""Test certificates made on the spot: a CA, and leaves that are valid, expiring, expired, not
yet valid, from another issuer, or for another name."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

UTC = datetime.UTC


@dataclass(frozen=True)
class Issued:
    cert_pem: Path
    key_pem: Path
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()


class CertificateAuthority:
    def __init__(
        self,
        directory: Path,
        name: str = "recmon test CA",
        *,
        parent: CertificateAuthority | None = None,
        valid_from: float = -365,
        valid_days: float = 4015,
    ) -> None:
        """A root CA, or with `parent` an intermediate signed by it."""
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        start = datetime.datetime.now(UTC) + datetime.timedelta(days=valid_from)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(parent.certificate.subject if parent else subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(parent.key if parent else self.key, hashes.SHA256())
        )
        # What a server sends after a leaf this CA issued: the intermediates up to the root.
        self.chain: list[x509.Certificate] = (
            [self.certificate, *parent.chain] if parent is not None else []
        )
        self.pem = directory / f"{name.replace(' ', '-')}.pem"
        self.pem.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def intermediate(
        self, name: str, *, valid_from: float = -30, valid_days: float = 365
    ) -> CertificateAuthority:
        return CertificateAuthority(
            self.directory, name, parent=self, valid_from=valid_from, valid_days=valid_days
        )

    def issue(
        self,
        label: str,
        *,
        names: tuple[str, ...] = ("api.recmon.test",),
        valid_from: float = -30,
        valid_days: float = 90,
    ) -> Issued:
        """A leaf valid from `valid_from` days (relative to now) for `valid_days` days."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(UTC)
        start = now + datetime.timedelta(days=valid_from)
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=valid_days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_pem = self.directory / f"{label}.crt"
        key_pem = self.directory / f"{label}.key"
        cert_pem.write_bytes(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [certificate, *self.chain])
        )
        key_pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Issued(cert_pem, key_pem, certificate)
