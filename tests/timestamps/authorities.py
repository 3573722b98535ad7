"""Real RFC 3161 time-stamping authorities on loopback for the tests, and ways to make them fail.

Two independent implementations:

* **sigstore's timestamp-authority** (``tests/tools/timestamp-authority``, built from the Go
  module proxy), with its in-memory signer (it generates a root, an intermediate and a TSA
  certificate at start-up, served at ``/api/v1/timestamp/certchain``) or its file signer with a
  chain of ours. It always opens a metrics listener on ``:2112`` of every interface, so it runs
  in a network namespace of its own (``unshare --net``) and serves its API on a Unix socket in
  the test's directory; a loopback front forwards to it.
* **OpenSSL** (``openssl ts -reply``) behind a small loopback HTTP handler, with a TSA key and
  certificate made here (root → intermediate → TSA certificate with the critical
  extendedKeyUsage timeStamping). ``faketime`` moves its clock.

Every authority is reached through a :class:`TsaFront` on ``127.0.0.1``: a threaded HTTP server
that hands each query to its backend and can inject a :class:`Fault` (slow, garbage, a token for
another nonce or other data, a policy the authority refuses). Certificates and keys live in the
test's temporary directories.
"""

from __future__ import annotations

import enum
import hashlib
import http.client
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from rfc3161_client import _rust as rfc3161_rust

from opkey import TimestampAuthority

__all__ = [
    "Fault",
    "OpenSslBackend",
    "Pki",
    "Reply",
    "SigstoreServer",
    "TsaFront",
    "make_pki",
    "resign_token",
]

QUERY = "application/timestamp-query"
REPLY = "application/timestamp-reply"
#: A TSA policy no authority here accepts (sigstore's answers HTTP 400 to it).
UNACCEPTED_POLICY = "1.3.6.1.4.1.99999.77"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer of an authority."""

    status: int
    content_type: str
    body: bytes


Backend = Callable[[bytes], Reply]


# -- certificates -----------------------------------------------------------------------------


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Pki:
    """A TSA's certificates and key, written to ``directory``."""

    directory: Path
    root: x509.Certificate
    intermediate: x509.Certificate | None
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    issuer_key: ec.EllipticCurvePrivateKey

    @property
    def leaf_pem_path(self) -> Path:
        return self.directory / "tsa.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "tsa.key"

    @property
    def chain_pem(self) -> bytes:
        """Root, intermediate, TSA certificate: the chain a verifier configures."""
        return b"".join(_pem(c) for c in self.cas) + _pem(self.leaf)

    @property
    def cas(self) -> list[x509.Certificate]:
        return [self.root] + ([self.intermediate] if self.intermediate else [])

    @property
    def ca_pem(self) -> bytes:
        """Root and intermediate only: trust in any TSA certificate they issue."""
        return b"".join(_pem(c) for c in self.cas)

    @property
    def leaf_first_pem(self) -> bytes:
        """TSA certificate, intermediate, root: the order sigstore's file signer wants."""
        return _pem(self.leaf) + b"".join(_pem(c) for c in reversed(self.cas))

    def authority(self, *, pin_leaf: bool = True) -> TimestampAuthority:
        return TimestampAuthority.from_pem(self.chain_pem if pin_leaf else self.ca_pem)

    def issue(
        self,
        common_name: str,
        *,
        eku: list[x509.ObjectIdentifier] | None,
        eku_critical: bool = True,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """Another end-entity certificate from this PKI's issuing CA."""
        issuer = self.intermediate or self.root
        return _leaf(common_name, issuer, self.issuer_key, eku, eku_critical, not_before, not_after)


def _ca(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signing_key: ec.EllipticCurvePrivateKey,
    *,
    timestamping_eku: bool = False,
) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    )
    if timestamping_eku:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def _leaf(
    common_name: str,
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    eku: list[x509.ObjectIdentifier] | None,
    eku_critical: bool,
    not_before: datetime | None,
    not_after: datetime | None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = datetime.now(timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, "opkey tests"))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
    return builder.sign(issuer_key, hashes.SHA256()), key


def make_pki(
    directory: Path,
    *,
    name: str = "opkey test TSA",
    intermediate: bool = True,
    names_of: TimestampAuthority | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Pki:
    """A root, optionally an intermediate, and a TSA certificate, written to ``directory``.

    ``names_of`` copies the subject names of another authority's CAs: an impostor chain whose
    names match but whose keys do not.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if names_of is not None:
        root_name = names_of.root.subject
        middle_name = names_of.intermediates[-1].subject if names_of.intermediates else None
        intermediate = middle_name is not None
    else:
        root_name = _name(f"{name} root", "opkey tests")
        middle_name = _name(f"{name} intermediate", "opkey tests")
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca(root_name, root_name, root_key, root_key)
    issuer, issuer_key, middle = root, root_key, None
    if intermediate:
        assert middle_name is not None
        middle_key = ec.generate_private_key(ec.SECP256R1())
        middle = _ca(middle_name, root_name, middle_key, root_key, timestamping_eku=True)
        issuer, issuer_key = middle, middle_key
    leaf, leaf_key = _leaf(
        name, issuer, issuer_key, [ExtendedKeyUsageOID.TIME_STAMPING], True, not_before, not_after
    )
    pki = Pki(directory, root, middle, leaf, leaf_key, issuer_key)
    pki.leaf_pem_path.write_bytes(_pem(leaf))
    pki.key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pki.key_path.chmod(0o600)
    return pki


# -- faults and the loopback front ------------------------------------------------------------


class Fault(enum.Enum):
    """What a :class:`TsaFront` does instead of answering faithfully."""

    SLOW = "slow"  # answers only after ``slow_seconds``
    GARBAGE = "garbage"  # 200 with bytes that are no time-stamp response
    WRONG_NONCE = "wrong-nonce"  # forwards the same imprint under a fresh nonce
    WRONG_IMPRINT = "wrong-imprint"  # forwards a query for other data
    UNACCEPTED_POLICY = "unaccepted-policy"  # forwards the query asking for a foreign policy


def _run(argv: list[str], *, timeout: float = 30) -> bytes:
    result = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {result.stderr.decode(errors='replace')[-500:]}")
    return result.stdout


def openssl_query(
    openssl: str, directory: Path, digest: bytes, *, policy: str | None = None
) -> bytes:
    """A fresh DER query (new random nonce, certReq) for a SHA-256 ``digest``, made by OpenSSL."""
    out = directory / f"query-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}.tsq"
    argv = [openssl, "ts", "-query", "-digest", digest.hex(), "-sha256", "-cert", "-out", str(out)]
    if policy is not None:
        argv += ["-tspolicy", policy]
    _run(argv)
    try:
        return out.read_bytes()
    finally:
        out.unlink()


class TsaFront:
    """A loopback HTTP endpoint for one authority, with optional fault injection.

    ``POST /`` (any path) with ``Content-Type: application/timestamp-query`` hands the body to
    the backend; ``GET`` of a path listed in ``pages`` returns that page.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        openssl: str,
        work: Path,
        fault: Fault | None = None,
        slow_seconds: float = 5.0,
        pages: dict[str, bytes] | None = None,
    ) -> None:
        self.backend = backend
        self.openssl = openssl
        self.work = work
        self.fault = fault
        self.slow_seconds = slow_seconds
        self.pages = dict(pages or {})
        self.queries: list[bytes] = []
        self._closing = threading.Event()
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                page = front.pages.get(self.path)
                if page is None:
                    self._send(Reply(404, "text/plain", b"not found"))
                else:
                    self._send(Reply(200, "application/pem-certificate-chain", page))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 64 * 1024))
                self._send(front.answer(body, self.headers.get("Content-Type") or ""))

            def _send(self, reply: Reply) -> None:
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the slow fault)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def answer(self, query: bytes, content_type: str) -> Reply:
        """What the authority answers to ``query`` under the current fault."""
        if content_type.split(";")[0].strip() != QUERY:
            return Reply(415, "text/plain", b"expected application/timestamp-query")
        self.queries.append(query)
        fault = self.fault
        if fault is Fault.SLOW:
            self._closing.wait(self.slow_seconds)
        elif fault is Fault.GARBAGE:
            return Reply(200, REPLY, hashlib.sha512(query).digest() * 3)
        elif fault is not None:
            digest = rfc3161_rust.parse_timestamp_request(query).message_imprint.message
            if fault is Fault.WRONG_IMPRINT:
                digest = hashlib.sha256(b"other data than what was asked" + digest).digest()
            policy = UNACCEPTED_POLICY if fault is Fault.UNACCEPTED_POLICY else None
            query = openssl_query(self.openssl, self.work, digest, policy=policy)
        return self.backend(query)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def free_port_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# -- OpenSSL ----------------------------------------------------------------------------------


@dataclass
class OpenSslBackend:
    """``openssl ts -reply`` with a TSA certificate and key of ours, optionally under faketime.

    The token carries only the TSA certificate: OpenSSL writes the ``certs`` of its
    configuration in the order given, not in the DER order of a SET OF that rfc3161-client
    (rightly) insists on, so a verifier configures the intermediates instead.
    """

    openssl: str
    pki: Pki
    work: Path
    faketime: tuple[str, str] | None = None  # (faketime binary, offset such as "+2h")
    digests: str = "sha256, sha384, sha512"
    certificate: Path | None = None  # sign with another certificate (same key) than pki.leaf
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        serial = self.work / "serial"
        serial.write_text("01\n")
        signer = self.certificate or self.pki.leaf_pem_path
        self.config = self.work / "tsa.cnf"
        self.config.write_text(
            "[ tsa ]\n"
            "default_tsa = opkey_tsa\n"
            "[ opkey_tsa ]\n"
            f"serial = {serial}\n"
            "crypto_device = builtin\n"
            f"signer_cert = {signer}\n"
            f"signer_key = {self.pki.key_path}\n"
            "signer_digest = sha256\n"
            "default_policy = 1.3.6.1.4.1.99999.1\n"
            "other_policies = 1.3.6.1.4.1.99999.2\n"
            f"digests = {self.digests}\n"
            "accuracy = secs:1\n"
            "clock_precision_digits = 0\n"
            "ordering = no\n"
            "tsa_name = yes\n"
            "ess_cert_id_chain = no\n"
            "ess_cert_id_alg = sha256\n"
        )

    def __call__(self, query: bytes) -> Reply:
        with self._lock:  # one serial file
            request = self.work / "request.tsq"
            response = self.work / "response.tsr"
            request.write_bytes(query)
            argv = [self.openssl, "ts", "-reply", "-config", str(self.config)]
            argv += ["-queryfile", str(request), "-out", str(response)]
            if self.faketime is not None:
                argv = [self.faketime[0], "-f", self.faketime[1], *argv]
            result = subprocess.run(argv, capture_output=True, timeout=30, check=False)
            if result.returncode != 0 or not response.is_file():
                return Reply(500, "text/plain", result.stderr[-500:])
            body = response.read_bytes()
            response.unlink()
            return Reply(200, REPLY, body)


def resign_token(openssl: str, work: Path, response_der: bytes, cert: Path, key: Path) -> bytes:
    """The same TSTInfo as ``response_der``, CMS-signed by ``cert`` instead, as a response.

    OpenSSL's ``ts -reply`` refuses to sign with a certificate that is not for time-stamping,
    so a token from such a signer is made with ``openssl cms -sign`` over a real token's
    content, and turned back into a time-stamp response with ``ts -reply -token_in``.
    """
    work.mkdir(parents=True, exist_ok=True)
    response, token, content = work / "in.tsr", work / "in.tst", work / "tstinfo.der"
    signed, out = work / "resigned.tst", work / "resigned.tsr"
    response.write_bytes(response_der)
    _run([openssl, "ts", "-reply", "-in", str(response), "-token_out", "-out", str(token)])
    verify = [openssl, "cms", "-verify", "-noverify", "-binary", "-inform", "DER"]
    _run([*verify, "-in", str(token), "-out", str(content)])
    sign = [openssl, "cms", "-sign", "-binary", "-nodetach", "-nosmimecap", "-md", "sha256"]
    sign += ["-econtent_type", "1.2.840.113549.1.9.16.1.4", "-in", str(content)]
    sign += ["-signer", str(cert), "-inkey", str(key), "-outform", "DER", "-out", str(signed)]
    _run(sign)
    _run([openssl, "ts", "-reply", "-in", str(signed), "-token_in", "-out", str(out)])
    return out.read_bytes()


# -- sigstore's timestamp-authority -----------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class SigstoreServer:
    """``timestamp-server serve`` in a network namespace of its own, on a Unix socket.

    ``signer="memory"`` generates its chain in memory; ``signer="file"`` uses ``pki``'s key and
    chain (the server checks that chain at start-up against its clock).
    """

    def __init__(
        self,
        binary: Path,
        unshare: str,
        work: Path,
        *,
        pki: Pki | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.socket = work / "tsa.sock"
        self.log = work / "timestamp-server.log"
        argv = [unshare, "--net", "--", str(binary), "serve", "--scheme", "unix"]
        argv += ["--socket-path", str(self.socket), "--disable-ntp-monitoring"]
        argv += ["--log-type", "prod", "--graceful-timeout", "1s"]
        if pki is None:
            argv += ["--timestamp-signer", "memory"]
        else:
            chain = work / "chain.pem"
            chain.write_bytes(pki.leaf_first_pem)
            argv += ["--timestamp-signer", "file", "--file-signer-key-path", str(pki.key_path)]
            argv += ["--certificate-chain-path", str(chain)]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + start_timeout
        while b"Serving timestamp server" not in self.log.read_bytes():
            if self._process.poll() is not None or time.monotonic() > deadline:
                output = self.log.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"timestamp-server did not start:\n{output}")
            time.sleep(0.05)

    def request(self, method: str, path: str, body: bytes = b"", content_type: str = "") -> Reply:
        connection = _UnixConnection(self.socket, timeout=30)
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, response.getheader("Content-Type") or "", response.read())
        finally:
            connection.close()

    def backend(self, query: bytes) -> Reply:
        """Forward a query to ``POST /api/v1/timestamp``."""
        return self.request("POST", "/api/v1/timestamp", query, QUERY)

    def chain_pem(self) -> bytes:
        """The server's certificate chain (leaf first), from its ``certchain`` endpoint."""
        reply = self.request("GET", "/api/v1/timestamp/certchain")
        if reply.status != 200:
            raise RuntimeError(f"certchain: HTTP {reply.status}: {reply.body[:200]!r}")
        return reply.body

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
