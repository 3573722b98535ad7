"""A real OCI registry on loopback, for tests, benchmarks and demos.

Runs the CNCF distribution registry (Debian package ``docker-registry``) as a child process
with a generated configuration: filesystem storage in a directory of the caller's choosing,
deletes enabled, listening on ``127.0.0.1`` only. It can be stopped and started again on the
same port and storage, which is how the fault tests restart a registry in the middle of a run.
Optional basic (htpasswd, bcrypt) or token authentication, and TLS with a given certificate,
are configured the same way a production registry would be.

:func:`seed_image` pushes a tiny but genuine OCI image (gzip tar layer, image config) so that
there is something to sign.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from opkey.digest import Digest
from opkey.errors import ConfigError
from opkey.registry.client import RegistryClient
from opkey.registry.manifest import Descriptor, ImageManifest
from opkey.registry.mediatypes import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST
from opkey.registry.reference import ImageReference

__all__ = [
    "LocalRegistry",
    "TokenAuthConfig",
    "find_registry_binary",
    "free_port",
    "seed_image",
]

_INSTALL_HINT = "install it: apt-get install docker-registry"


def find_registry_binary() -> str | None:
    """Path of the distribution registry executable, or ``None`` when not installed."""
    found = shutil.which("docker-registry")
    if found:
        return found
    return "/usr/bin/docker-registry" if os.access("/usr/bin/docker-registry", os.X_OK) else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class TokenAuthConfig:
    """Token authentication: the registry trusts JWTs from ``issuer`` signed under a
    certificate in ``rootcertbundle`` and sends clients to ``realm`` for them."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


class LocalRegistry:
    """A distribution registry process on ``127.0.0.1:<port>`` storing under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        htpasswd: Path | None = None,
        token: TokenAuthConfig | None = None,
        binary: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.htpasswd = htpasswd
        self.token = token
        #: (certificate chain PEM, private key PEM): serve https instead of http
        self.tls = tls
        self.binary = binary or find_registry_binary()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The registry's base URL."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def storage(self) -> Path:
        """Where blobs and manifests are stored (kept across restarts)."""
        return self.root / "storage"

    @property
    def log_path(self) -> Path:
        """The registry's log file."""
        return self.root / "registry.log"

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {json.dumps(str(self.storage))}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
        ]
        if self.tls is not None:
            lines += [
                "  tls:",
                f"    certificate: {json.dumps(str(self.tls[0]))}",
                f"    key: {json.dumps(str(self.tls[1]))}",
            ]
        if self.htpasswd is not None:
            lines += [
                "auth:",
                "  htpasswd:",
                "    realm: opkey-test",
                f"    path: {json.dumps(str(self.htpasswd))}",
            ]
        elif self.token is not None:
            lines += [
                "auth:",
                "  token:",
                f"    realm: {json.dumps(self.token.realm)}",
                f"    service: {json.dumps(self.token.service)}",
                f"    issuer: {json.dumps(self.token.issuer)}",
                f"    rootcertbundle: {json.dumps(str(self.token.rootcertbundle))}",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> None:
        """Start the process and wait until ``/v2/`` answers."""
        if self.binary is None:
            raise ConfigError(f"the docker-registry program is not installed; {_INSTALL_HINT}")
        if self.running:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(self._config(), encoding="utf-8")
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [self.binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConfigError(
                    f"docker-registry exited with status {self._process.returncode}; "
                    f"see {self.log_path}"
                )
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise ConfigError(
            f"docker-registry did not answer within {timeout:g}s; see {self.log_path}"
        )

    def _answers(self) -> bool:
        connection: http.client.HTTPConnection
        if self.tls is not None:
            # Only "is it up?": the certificate is for the names the caller chose.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            connection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=1, context=context
            )
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/v2/")
            connection.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            connection.close()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Stop the process (storage is kept)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop and start again on the same port and storage."""
        self.stop()
        self.start()

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _layer_tarball(content: bytes) -> bytes:
    """A gzip'd tar holding one file, byte-stable for given content."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime, info.mode = len(content), 0, 0o644
        archive.addfile(info, io.BytesIO(content))
    return gzip.compress(tar_bytes.getvalue(), mtime=0)


def seed_image(
    client: RegistryClient, ref: ImageReference, *, content: bytes | None = None
) -> ImageReference:
    """Push a one-layer OCI image to ``ref`` (its tag, default ``latest``); return it by digest.

    ``content`` becomes the single file in the layer (random bytes when ``None``), so distinct
    calls give distinct images.
    """
    body = content if content is not None else os.urandom(16).hex().encode()
    tarball = _layer_tarball(body)
    diff_id = str(Digest.of_bytes(gzip.decompress(tarball)))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        separators=(",", ":"),
    ).encode()
    client.push_blob(ref, tarball)
    client.push_blob(ref, config)
    manifest = ImageManifest.build(
        OCI_MANIFEST,
        Descriptor(OCI_CONFIG, Digest.of_bytes(config), len(config)),
        [Descriptor(OCI_LAYER, Digest.of_bytes(tarball), len(tarball))],
    )
    digest = client.put_manifest(ref.with_tag(ref.tag or "latest"), manifest.encode(), OCI_MANIFEST)
    return ref.with_digest(digest)
