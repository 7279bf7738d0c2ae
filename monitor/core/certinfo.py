"""What a certificate says, parsed with `cryptography` — for any certificate, including
expired, untrusted and wrongly named ones."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    subject: str
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    issuer: str
    serial: str  # hex, lowercase
    not_before: float  # Unix seconds
    not_after: float
    fingerprint_sha256: str  # hex, lowercase, no colons
    self_signed: bool


def parse_certificate(der: bytes) -> CertificateInfo:
    # Imported here: `cryptography.x509` costs every recmon start ~30 ms of CPU, and only a
    # TLS check or a client certificate ever parses one.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(sans.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns_names, ips = (), ()
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(common_names[0].value) if common_names else None
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        common_name=common_name,
        dns_names=dns_names,
        ip_addresses=ips,
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        self_signed=cert.issuer == cert.subject,
    )


def matches_hostname(cert: CertificateInfo, name: str) -> bool:
    """RFC 6125 basics: IP names against IP SANs; DNS names against DNS SANs, case-blind, a
    wildcard only as the whole leftmost label and matching exactly one label."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        return any(ipaddress.ip_address(ip) == address for ip in cert.ip_addresses)
    wanted = name.lower().rstrip(".").split(".")
    for pattern in cert.dns_names:
        labels = pattern.lower().rstrip(".").split(".")
        if len(labels) != len(wanted):
            continue
        if labels[0] == "*" and len(labels) > 2:
            if labels[1:] == wanted[1:]:
                return True
        elif labels == wanted:
            return True
    return False
