"""Why a TLS connection failed, in words a dashboard can group by."""

from __future__ import annotations

import ssl

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h).
_VERIFY_CODES = {
    9: "not_yet_valid",
    10: "expired",
    2: "unknown_issuer",
    7: "unknown_issuer",  # certificate signature failure
    24: "unknown_issuer",  # invalid CA certificate
    27: "unknown_issuer",  # certificate not trusted
    28: "unknown_issuer",  # certificate rejected
    18: "unknown_issuer",  # self-signed leaf
    19: "unknown_issuer",  # self-signed certificate in chain
    20: "unknown_issuer",
    21: "unknown_issuer",
    62: "hostname_mismatch",
    64: "hostname_mismatch",  # IP address mismatch
}


def find_tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The SSL error behind an exception, following __cause__ and __context__ chains. The
    most informative one wins: OpenSSL's own verification error, when some wrapper (aiohttp's
    ClientConnectorCertificateError) carries it, over the wrapper."""
    seen: set[int] = set()
    found: list[ssl.SSLError] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        wrapped = getattr(current, "certificate_error", None)
        if isinstance(wrapped, ssl.SSLError):
            found.append(wrapped)
        if isinstance(current, ssl.SSLError):
            found.append(current)
        current = current.__cause__ or current.__context__
    verified = [e for e in found if getattr(e, "verify_code", None) is not None]
    best = verified or found
    return best[0] if best else None


def classify_tls_error(error: ssl.SSLError) -> tuple[str, str]:
    """(machine reason, human message) for an SSL error."""
    code = getattr(error, "verify_code", None)
    if isinstance(error, ssl.SSLCertVerificationError) and code is not None:
        reason = _VERIFY_CODES.get(code, "handshake")
        return reason, f"certificate verify failed: {error.verify_message}"
    # Not every SSLError comes from OpenSSL with a reason attached.
    return "handshake", f"TLS handshake failed: {getattr(error, 'reason', None) or error}"


# Alerts a server sends when it refuses the client's certificate, or wants one and got none
# (RFC 8446 6.2). Received, never sent by recmon: its own verdicts on the server's
# certificate are SSLCertVerificationError.
_REFUSED_CERTIFICATE_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "certificate required",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad certificate",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported certificate",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "certificate revoked",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate expired",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate unknown",
    "TLSV1_ALERT_UNKNOWN_CA": "unknown CA",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
}


def refused_certificate_alert(error: ssl.SSLError) -> str | None:
    """The server's alert, in words ("certificate required"), when it refused recmon's client
    certificate; None for any other TLS failure."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return None
    reason = getattr(error, "reason", None) or ""
    words = _REFUSED_CERTIFICATE_ALERTS.get(reason)
    if words is None:
        # Some layers keep only the message: "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] ...".
        words = next((w for k, w in _REFUSED_CERTIFICATE_ALERTS.items() if k in str(error)), None)
    return words
