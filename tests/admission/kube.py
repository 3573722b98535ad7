"""Real Kubernetes parts for the admission tests: etcd, kube-apiserver, kubectl and an HTTPS
webhook on loopback, with the certificates that tie them together.

* :class:`ClusterPKI` makes one test CA and the certificates every party needs: the API
  server's serving certificate, a client certificate in ``system:masters`` for kubectl, the
  webhook's serving certificate (all for ``127.0.0.1``), and the service-account signing key.
* :class:`Etcd` and :class:`KubeApiServer` run the Debian ``etcd`` and the ``kube-apiserver``
  built from the Go module proxy (``tests/tools/kube-apiserver``), bound to 127.0.0.1 on free
  ports, their data and logs in the test's tmp dir. No controllers run: namespaces and Pods
  are stored, nothing is scheduled, which is all an admission test needs. Anonymous access
  is off; authorization is ``AlwaysAllow`` for the authenticated client certificate.
* :class:`Kubectl` runs ``kubectl`` with a kubeconfig of its own (never the user's).
* :class:`WebhookServer` serves HTTPS on 127.0.0.1 with a handler function from
  AdmissionReview bytes to response bytes, and keeps every request body it received.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 120.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# -- certificates -------------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class CertFiles:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


class ClusterPKI:
    """One CA and the leaf certificates of a test cluster, written under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._now = datetime.datetime.now(datetime.timezone.utc)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opkey test cluster CA")])
        self._ca_name = name
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - datetime.timedelta(minutes=5))
            .not_valid_after(self._now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca_pem = self.ca_cert.public_bytes(serialization.Encoding.PEM)
        self.ca_file = root / "ca.pem"
        self.ca_file.write_bytes(self.ca_pem)
        self.apiserver = self._leaf("apiserver", "kube-apiserver", server=True)
        self.webhook = self._leaf("webhook", "opkey test webhook", server=True)
        self.admin = self._leaf("admin", "opkey-admin", server=False, org="system:masters")
        sa_key = ec.generate_private_key(ec.SECP256R1())
        self.sa_key = root / "sa.key"
        self.sa_key.write_bytes(_pem_key(sa_key))
        self.sa_pub = root / "sa.pub"
        self.sa_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    @property
    def ca_bundle(self) -> str:
        """The CA as a webhook ``caBundle`` (base64 of the PEM)."""
        return base64.b64encode(self.ca_pem).decode("ascii")

    def _leaf(
        self, stem: str, common_name: str, *, server: bool, org: str | None = None
    ) -> CertFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if org is not None:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self._ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - datetime.timedelta(minutes=5))
            .not_valid_after(self._now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(IPv4Address(LOOPBACK)), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        cert = builder.sign(self._ca_key, hashes.SHA256())
        files = CertFiles(self.root / f"{stem}.pem", self.root / f"{stem}-key.pem")
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(_pem_key(key))
        files.key.chmod(0o600)
        return files


# -- processes ----------------------------------------------------------------------------------


class _Process:
    """A server process whose output goes to a log file, stopped by :meth:`stop`."""

    name = "process"

    def __init__(self, log: Path) -> None:
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: Sequence[str]) -> None:
        with self.log.open("wb") as handle:
            self._process = subprocess.Popen(
                list(argv), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with status {self._process.returncode}:\n{self.tail()}"
            )

    def tail(self, lines: int = 40) -> str:
        """The last lines of the log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Terminate the process (kill it after 10 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class Etcd(_Process):
    """An etcd member on 127.0.0.1 with its data under ``root``."""

    name = "etcd"

    def __init__(self, binary: str, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        super().__init__(root / "etcd.log")
        self.binary = binary
        self.root = root
        self.client_port = free_port()
        self.peer_port = free_port()

    @property
    def url(self) -> str:
        """The client URL."""
        return f"http://{LOOPBACK}:{self.client_port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start etcd and wait until it reports healthy."""
        peer = f"http://{LOOPBACK}:{self.peer_port}"
        self._spawn(
            [
                self.binary,
                "--name=opkey-test",
                f"--data-dir={self.root / 'data'}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=opkey-test={peer}",
                "--initial-cluster-state=new",
                "--log-level=warn",
            ]
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:
                    if json.loads(reply.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"etcd did not become healthy in {timeout:.0f} s:\n{self.tail()}")


class KubeApiServer(_Process):
    """kube-apiserver on 127.0.0.1, storing in ``etcd``, trusting ``pki``'s CA for clients."""

    name = "kube-apiserver"

    def __init__(self, binary: Path, root: Path, etcd: Etcd, pki: ClusterPKI) -> None:
        root.mkdir(parents=True, exist_ok=True)
        super().__init__(root / "kube-apiserver.log")
        self.binary = binary
        self.root = root
        self.etcd = etcd
        self.pki = pki
        self.port = free_port()
        self.started_in: float | None = None

    @property
    def url(self) -> str:
        """The API server's URL."""
        return f"https://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the API server and wait until ``/readyz`` answers ``ok``."""
        pki = self.pki
        started = time.monotonic()
        self._spawn(
            [
                str(self.binary),
                f"--etcd-servers={self.etcd.url}",
                f"--etcd-prefix=/opkey-{self.port}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={self.port}",
                f"--tls-cert-file={pki.apiserver.cert}",
                f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.ca_file}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--authorization-mode=AlwaysAllow",
                "--anonymous-auth=false",
                "--enable-admission-plugins=ValidatingAdmissionWebhook",
                # No controller manager creates the default service account.
                "--disable-admission-plugins=ServiceAccount",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                f"--cert-dir={self.root / 'certs'}",
                "--v=1",
            ]
        )
        context = self.client_context()
        deadline = started + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                request = urllib.request.Request(f"{self.url}/readyz")
                with urllib.request.urlopen(request, timeout=5, context=context) as reply:
                    if reply.read().strip() == b"ok":
                        self.started_in = time.monotonic() - started
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"kube-apiserver not ready in {timeout:.0f} s:\n{self.tail()}")

    def client_context(self) -> ssl.SSLContext:
        """TLS for the admin client: trusts the test CA, presents the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        context.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return context

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for the admin client certificate."""
        pki = self.pki
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "opkey-test",
                    "cluster": {"server": self.url, "certificate-authority": str(pki.ca_file)},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(pki.admin.cert),
                        "client-key": str(pki.admin.key),
                    },
                }
            ],
            "contexts": [
                {"name": "opkey-test", "context": {"cluster": "opkey-test", "user": "admin"}}
            ],
            "current-context": "opkey-test",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path


# -- kubectl -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubectlResult:
    """What one kubectl run printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout as JSON."""
        return json.loads(self.stdout)


class Kubectl:
    """``kubectl`` with its own kubeconfig (or none, for offline ``--dry-run=client``)."""

    def __init__(self, binary: str, kubeconfig: Path | None, home: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        home.mkdir(parents=True, exist_ok=True)
        # kubectl caches discovery under $HOME/.kube; keep it in the test's tmp dir.
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "KUBECONFIG": str(kubeconfig) if kubeconfig else str(home / "no-kubeconfig"),
        }

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> KubectlResult:
        """Run kubectl; with ``check``, a non-zero exit raises with its output."""
        completed = subprocess.run(
            [self.binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        result = KubectlResult(completed.returncode, completed.stdout, completed.stderr)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result


# -- the webhook ---------------------------------------------------------------------------------

Handler = Callable[[bytes], bytes]


class WebhookServer:
    """An HTTPS admission webhook on 127.0.0.1 that answers with ``handler(body)``.

    Every request body is kept in :attr:`received` (with the request path), so tests can read
    what the API server actually sent.
    """

    def __init__(self, cert: CertFiles, handler: Handler) -> None:
        self.handler = handler
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        server = self

        class _Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 16 * 1024 * 1024))
                with server._lock:
                    server.received.append((self.path, body))
                    handler = server.handler
                try:
                    reply = handler(body)
                    status = 200
                except Exception as exc:  # the test sees the message in the API server's error
                    reply = f"webhook handler failed: {exc}".encode()
                    status = 500
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), _Handler)
        self._httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert.cert), str(cert.key))
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str = "/validate") -> str:
        """The webhook URL for a ValidatingWebhookConfiguration."""
        return f"https://{LOOPBACK}:{self.port}{path}"

    def start(self) -> WebhookServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def take(self) -> list[tuple[str, bytes]]:
        """The requests received since the last call, oldest first."""
        with self._lock:
            taken, self.received = self.received, []
        return taken
