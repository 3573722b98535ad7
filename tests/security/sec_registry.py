"""Hostile registries, slow servers, a CONNECT proxy and TLS material for the registry attacks.

* A registry that is *not* on loopback is played by pytest-httpserver behind
  :func:`routed_client`: requests for ``https://PUBLIC`` and ``https://PUBLIC2`` (public
  addresses) reach the local server, so opkey's URL rules see a remote registry while the bytes
  come from the test.
* :class:`SlowServer` is a raw socket server of the test's own that trickles its answer one
  byte at a time, which no HTTP framework does on demand.
* :class:`ConnectProxy` is a small HTTP CONNECT proxy on loopback that sends every tunnel to one
  local port and records what it was asked for.
* :func:`tls_files` makes a CA and a server certificate for the names given.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import select
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer

from opkey.digest import Digest
from opkey.registry import DockerCredentialStore, RegistryClient
from opkey.registry.retry import RetryPolicy
from tests.helpers import RoutingTransport

#: Public addresses (example.com's) that :func:`routed_client` sends to the local server.
PUBLIC = "93.184.215.14"
PUBLIC2 = "93.184.215.15"

#: Fast retries, so that bounded behaviour is measured in seconds.
FAST_RETRY = RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=0.05, deadline=60)


def routed_client(server: HTTPServer, **options: Any) -> RegistryClient:
    """A client that believes ``https://PUBLIC`` and ``https://PUBLIC2`` are remote
    registries; both are ``server``. No user docker config, fast retries."""
    base = server.url_for("/").rstrip("/")
    options.setdefault(
        "transport", RoutingTransport({f"https://{PUBLIC}": base, f"https://{PUBLIC2}": base})
    )
    options.setdefault("docker_config", DockerCredentialStore())
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("timeout", 10.0)
    options.setdefault("env", {})
    return RegistryClient(**options)


def hits(server: HTTPServer, path: str) -> int:
    """Requests ``server`` received for ``path``."""
    return sum(1 for request, _ in server.log if request.path == path)


def oci_manifest(layers: Sequence[dict[str, Any]], config: bytes = b"{}") -> bytes:
    """A compact OCI image manifest with the given layer descriptors."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": len(config),
                "digest": str(Digest.of_bytes(config)),
            },
            "layers": list(layers),
        },
        separators=(",", ":"),
    ).encode()


# -- a server that answers one byte at a time ----------------------------------------------------


@dataclass
class SlowServer:
    """Accepts connections on 127.0.0.1, sends ``head`` at once, then ``answer`` one byte every
    ``interval`` seconds (a header line that never ends, when ``answer`` is empty)."""

    answer: bytes = b""
    head: bytes = b""
    interval: float = 0.2
    port: int = 0
    connections: int = 0
    _sock: socket.socket = field(default_factory=socket.socket, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)

    def __enter__(self) -> SlowServer:
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._sock.close()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn, suppress(OSError):
            conn.settimeout(1.0)
            with suppress(OSError):
                conn.recv(65536)
            if self.head:
                conn.sendall(self.head)
            data = self.answer or b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 1_000_000
            for index in range(len(data)):
                if self._stop.wait(self.interval):
                    return
                conn.sendall(data[index : index + 1])


# -- a static registry that keeps nothing of what it serves ------------------------------------


class StaticServer:
    """Serves fixed answers by path from a plain ``http.server`` on 127.0.0.1, counting
    requests and keeping nothing else (pytest-httpserver keeps every response it sends, which
    would hide the memory a client uses)."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        import http.server

        self.routes = routes
        self.counts: dict[str, int] = {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                owner.counts[path] = owner.counts.get(path, 0) + 1
                status, headers, body = owner.routes.get(path, (404, {}, b""))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"


# -- a CONNECT proxy -------------------------------------------------------------------------


@dataclass
class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 that tunnels every request to ``upstream_port`` on
    127.0.0.1 (it is the proxy, not the client, that resolves the target name) and records
    each ``CONNECT`` target."""

    upstream_port: int
    port: int = 0
    targets: list[str] = field(default_factory=list)
    _sock: socket.socket = field(default_factory=socket.socket, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)

    def __enter__(self) -> ConnectProxy:
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._tunnel, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _tunnel(self, client: socket.socket) -> None:
        with client, suppress(OSError):
            client.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _ = [*request_line.split(" "), "", ""][:3]
            self.targets.append(f"{method} {target}")
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            with upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pipe(client, upstream)

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while not self._stop.is_set():
            readable, _, _ = select.select([a, b], [], [], 0.2)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                peers[sock].sendall(data)


# -- TLS --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    certificate: Path
    key: Path


def tls_files(directory: Path, names: Sequence[str]) -> TlsFiles:
    """A CA, and a server certificate it signed for ``names`` (DNS names or IP addresses)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opkey test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


# -- credential helpers -------------------------------------------------------------------------


def write_helper(directory: Path, name: str, body: str) -> Path:
    """An executable ``docker-credential-<name>`` in ``directory``: a Python script whose
    ``body`` runs with ``server`` (standard input) and ``log`` (a file beside it) defined."""
    import sys

    path = directory / f"docker-credential-{name}"
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, time\n"
        "server = sys.stdin.read()\n"
        f"log = {str(directory / (name + '.log'))!r}\n"
        "open(log, 'a').write(json.dumps({'args': sys.argv[1:], 'server': server}) + '\\n')\n"
        + body
        + "\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def helper_calls(directory: Path, name: str) -> list[dict[str, Any]]:
    """What a helper written by :func:`write_helper` was asked."""
    log = directory / f"{name}.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@contextmanager
def elapsed() -> Iterator[Callable[[], float]]:
    """``with elapsed() as took: ...; took()`` gives the seconds the block ran."""
    start = time.monotonic()
    end: list[float] = []
    try:
        yield lambda: (end[0] if end else time.monotonic()) - start
    finally:
        end.append(time.monotonic())
