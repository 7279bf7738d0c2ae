"""The sandbox's mTLS listener: TLS terminated in front of the plain sandbox, the way nginx or
envoy front an internal API, demanding a client certificate from a given CA.

Why not uvicorn's own TLS: asyncio's server side drops the TLS alert when it refuses a client
certificate and closes the connection, so a client sees "server disconnected" where a real
server says "certificate required" or "unknown CA". Here the handshake runs on a blocking
socket (OpenSSL writes its alert), and a refused connection is closed gracefully (the client's
request drained first) so that alert is read, not lost to a reset.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from collections.abc import Iterator

from monitor.telemetry.asgiserve import listen

HANDSHAKE_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 60.0


def server_context(certfile: str, keyfile: str, client_ca: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    context.load_verify_locations(client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class TlsFront:
    """Accepts TLS on `host:port`, relays each accepted connection to `backend`."""

    def __init__(
        self, context: ssl.SSLContext, backend: tuple[str, int], host: str, port: int = 0
    ) -> None:
        self.context = context
        self.backend = backend
        self.listener = listen(host, port)
        self.port: int = self.listener.getsockname()[1]
        self.accepted = 0  # handshakes that presented an acceptable certificate
        self.refused = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name="sandbox-tls", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @contextlib.contextmanager
    def _tracked(self, *socks: socket.socket) -> Iterator[None]:
        with self._lock:
            self._open.update(socks)
        try:
            yield
        finally:
            with self._lock:
                self._open.difference_update(socks)
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(HANDSHAKE_TIMEOUT_S)
        tls = self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            self.refused += 1
            _close_gracefully(tls)
            return
        self.accepted += 1
        try:
            backend = socket.create_connection(self.backend, timeout=HANDSHAKE_TIMEOUT_S)
        except OSError:
            tls.close()
            return
        with self._tracked(tls, backend):
            _relay(tls, backend)


def _close_gracefully(tls: ssl.SSLSocket) -> None:
    """The alert is written; stop sending and read what the client already sent, so closing
    does not reset the connection (a reset can overtake the alert)."""
    try:
        raw = socket.socket(fileno=tls.detach())
    except OSError:
        return
    with raw, contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_WR)
        raw.settimeout(1.0)
        while raw.recv(65536):
            pass


def _relay(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    tls.setblocking(False)
    plain.setblocking(False)
    with selectors.DefaultSelector() as selector:
        selector.register(tls, selectors.EVENT_READ)
        selector.register(plain, selectors.EVENT_READ)
        while True:
            ready = selector.select(timeout=IDLE_TIMEOUT_S)
            if not ready:
                return
            for key, _ in ready:
                source = key.fileobj
                target = plain if source is tls else tls
                assert isinstance(source, socket.socket)
                if not _pump(source, target):
                    return


def _pump(source: socket.socket, target: socket.socket) -> bool:
    """Move what `source` has to `target`; False at end of stream or on an error."""
    while True:
        try:
            data = source.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except OSError:
            return False
        if not data:
            return False
        try:
            target.settimeout(HANDSHAKE_TIMEOUT_S)
            target.sendall(data)
            target.setblocking(False)
        except OSError:
            return False
        # An SSL socket may hold decrypted bytes no selector sees.
        if not (isinstance(source, ssl.SSLSocket) and source.pending()):
            return True
