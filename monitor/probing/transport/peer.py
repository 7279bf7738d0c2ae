"""Which address answered a probe: the peer of its connection, named the same way by every
transport (response extensions, or an attribute on the error when no response came)."""

from __future__ import annotations

from typing import TypeVar

# httpx response extensions (and attributes of a transport's exception) this package sets.
PEER = "recmon_peer"  # "ip:port", "[v6]:port"
VIA_PROXY = "recmon_via_proxy"  # True: the peer is the proxy, not the origin's backend
# () -> seconds the whole response waited for its reader after its last byte was read (0.0
# until then): the probe's latency leaves that wait out.
WAITED = "recmon_waited"
# () -> how late the whole response's read may have been stamped (the busy stretch before the
# poll that reported its last bytes: monitor.telemetry.polltime), or None when that is not
# known (a loop without a timed selector, a request that did not go out at the probe's start).
READ_DOUBT = "recmon_read_doubt"

E = TypeVar("E", bound=BaseException)


def format_peer(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def with_peer(exc: E, peer: str, via_proxy: bool = False) -> E:
    """The error, marked with the address it came from (read back by peer_of_error)."""
    if peer:
        setattr(exc, PEER, peer)
        setattr(exc, VIA_PROXY, via_proxy)
    return exc


def peer_of_error(exc: BaseException) -> tuple[str, bool]:
    """The address an error came from, looking through its causes; ("", False) if unknown."""
    seen: BaseException | None = exc
    while seen is not None:
        peer = getattr(seen, PEER, "")
        if peer:
            return str(peer), bool(getattr(seen, VIA_PROXY, False))
        seen = seen.__cause__
    return "", False
