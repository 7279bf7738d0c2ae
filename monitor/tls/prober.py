"""The TLS prober: every address of a host, certificates read even when they are invalid.

Fetch first, verify separately. A handshake that does not verify reads the leaf certificate
(and the intermediates the backend sends with it) from every backend — also an expired,
untrusted or wrongly named one, exactly when it matters most (tools that verify first report
nothing then). Validity and name are judged in code against the injected clock; trust is
judged by a second, verifying handshake, whose OpenSSL verdict (which builds the chain the
server sends) gives the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass

from monitor.core.certinfo import CertificateInfo, matches_hostname, parse_certificate
from monitor.core.clock import Clock
from monitor.core.tlsreasons import classify_tls_error, find_tls_error

# Reasons a certificate is invalid (vs. a backend that could not be asked at all).
INVALID_REASONS = ("expired", "not_yet_valid", "unknown_issuer", "hostname_mismatch")


@dataclass(frozen=True, slots=True)
class TlsResult:
    host: str
    port: int
    address: str
    server_name: str
    ok: bool
    # "" when ok; else expired, not_yet_valid, unknown_issuer, hostname_mismatch, handshake,
    # connect_error, timeout or dns_error.
    reason: str
    message: str
    certificate: CertificateInfo | None  # whenever one was received, valid or not
    duration_s: float
    checked_at: float
    # The intermediates served after the leaf, in the order sent: an expiring intermediate
    # breaks clients as surely as an expiring leaf.
    chain: tuple[CertificateInfo, ...] = ()

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def invalid(self) -> bool:
        """Clients reject what this backend serves: a bad certificate, or one read but refused
        in the verifying handshake (a weak key, a deprecated algorithm)."""
        return self.reason in INVALID_REASONS or (
            self.reason == "handshake" and self.certificate is not None
        )


def unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Security level 0: a backend with a weak key or DH group still shows its certificate
    # here; the verifying handshake is the one that judges it.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def verifying_context(ca_file: str | None = None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


async def resolve_addresses(host: str, port: int) -> list[str]:
    """Every A and AAAA address of the host, deduplicated, in resolver order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _, _, _, _, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


_ENCODING_DER = 2  # _ssl.ENCODING_DER, for the 3.11-3.12 certificate objects


def _served_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """DER of every certificate the server sent after its leaf, unverified. Public from
    Python 3.13 (SSLObject.get_unverified_chain); on 3.11-3.12 the same call sits on the
    underlying _ssl object."""
    read = getattr(ssl_object, "get_unverified_chain", None)
    if read is None:
        read = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if read is None:
        return []
    try:
        served = read() or []
    except (ssl.SSLError, ValueError):
        return []
    ders = [c if isinstance(c, bytes) else c.public_bytes(_ENCODING_DER) for c in served]
    return ders[1:]  # [0] is the leaf


async def _handshake(
    address: str, port: int, server_name: str, context: ssl.SSLContext
) -> tuple[bytes, list[bytes]]:
    _, writer = await asyncio.open_connection(
        address, port, ssl=context, server_hostname=server_name, ssl_handshake_timeout=None
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise ssl.SSLError("the server sent no certificate")
        return bytes(der), _served_chain(ssl_object)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def probe_tls(
    host: str,
    port: int,
    address: str,
    *,
    server_name: str | None = None,
    deadline_s: float,
    clock: Clock,
    trust: ssl.SSLContext,
) -> TlsResult:
    """Read and judge the certificate one backend address serves. Never raises for anything
    the backend does."""
    name = server_name or host
    started, checked_at = clock.monotonic(), clock.time()

    chain: tuple[CertificateInfo, ...] = ()  # filled in once the certificates are read

    def result(reason: str, message: str, cert: CertificateInfo | None) -> TlsResult:
        return TlsResult(
            host,
            port,
            address,
            name,
            not reason,
            reason,
            message,
            cert,
            clock.monotonic() - started,
            checked_at,
            chain,
        )

    try:
        async with asyncio.timeout(deadline_s):
            der, chain_ders = await _handshake(address, port, name, unverified_context())
    except TimeoutError:
        return result("timeout", f"no TLS handshake within {deadline_s:g}s", None)
    except ssl.SSLError as exc:
        return result("handshake", f"TLS handshake failed: {exc.reason or exc}", None)
    except OSError as exc:
        return result("connect_error", f"{type(exc).__name__}: {exc}", None)
    try:
        cert = parse_certificate(der)
    except ValueError as exc:
        return result("handshake", f"unparseable certificate: {exc}", None)
    chain = tuple(_parsed(chain_ders))

    now = clock.time()
    if now > cert.not_after:
        return result(
            "expired", f"certificate expired {(now - cert.not_after) / 86400:.1f} days ago", cert
        )
    if now < cert.not_before:
        return result("not_yet_valid", "certificate is not valid yet", cert)
    if not matches_hostname(cert, name):
        names = ", ".join((*cert.dns_names, *cert.ip_addresses)) or cert.common_name or "none"
        return result(
            "hostname_mismatch", f"certificate is not valid for {name} (valid for: {names})", cert
        )
    try:
        async with asyncio.timeout(deadline_s):
            await _handshake(address, port, name, trust)
    except TimeoutError:
        return result("timeout", f"verifying handshake took longer than {deadline_s:g}s", cert)
    except (ssl.SSLError, OSError) as exc:
        tls_error = find_tls_error(exc)
        if tls_error is None:
            return result("connect_error", f"{type(exc).__name__}: {exc}", cert)
        reason, message = classify_tls_error(tls_error)
        return result(reason, message, cert)
    return result("", "", cert)


def _parsed(ders: list[bytes]) -> list[CertificateInfo]:
    parsed = []
    for der in ders:
        with contextlib.suppress(ValueError):  # an unparseable extra is no reason to fail
            parsed.append(parse_certificate(der))
    return parsed


async def probe_host(
    host: str,
    port: int,
    *,
    addresses: list[str] | None,
    deadline_s: float,
    clock: Clock,
    trust: ssl.SSLContext,
) -> list[TlsResult]:
    """Probe every backend address of a host at once; an explicit list wins over DNS."""
    if not addresses:
        try:
            async with asyncio.timeout(deadline_s):
                addresses = await resolve_addresses(host, port)
        except (OSError, TimeoutError) as exc:
            now = clock.time()
            return [
                TlsResult(
                    host,
                    port,
                    "",
                    host,
                    False,
                    "dns_error",
                    f"cannot resolve {host}: {exc}",
                    None,
                    0.0,
                    now,
                )
            ]
    return list(
        await asyncio.gather(
            *(
                probe_tls(host, port, a, deadline_s=deadline_s, clock=clock, trust=trust)
                for a in addresses
            )
        )
    )
