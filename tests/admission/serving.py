"""Helpers of the gate's tests: signed images, policy files, reviews, and the gate as a process.

* :func:`policy_file` writes a policy file requiring the dev IdP's GitHub-style workload;
* :func:`sign` signs an image in a real registry with a PK token from the dev IdP;
* :func:`review` builds an ``admission.k8s.io/v1`` review of a Pod (the shape the API server
  sends, as in ``tests/data/admission/captured``);
* :class:`GateProcess` runs ``opkey admission serve`` as a subprocess (as a Deployment runs it),
  waits for ``/readyz`` over HTTPS, and keeps its JSON logs; :func:`post` sends it a request.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opkey.images import sign_image
from opkey.jwks.client import JwksClient
from opkey.providers import GitHubActionsProvider
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.devidp.identities import GitHubWorkload
from opkey.signer import Signer
from tests.admission.kube import CertFiles, free_port

ROOT = Path(__file__).resolve().parents[2]
REPO_ID = "614000001"
OTHER_REPO_ID = "614000002"


def policy_file(
    path: Path, idp: DevIdP, repository_id: str = REPO_ID, *, extra_issuer: str = ""
) -> Path:
    """A policy file: the dev IdP as a GitHub-style issuer, one signer from ``repository_id``."""
    path.write_text(
        f"""version = 1

[[issuers]]
issuer = "{idp.issuer}"
commitment = "aud"
require_gq = true
expiry = "never"
{extra_issuer}
[[signers]]
name = "build"
github = {{ issuer = "{idp.issuer}", repository_id = "{repository_id}" }}
"""
    )
    return path


def signer(idp: DevIdP, repository: str = "octo-org/octo-repo") -> Signer:
    """A signer with a PK token of the dev IdP's GitHub-style workload for ``repository``."""
    if repository != "octo-org/octo-repo":
        workload = GitHubWorkload.for_repository(repository, workflow_file="release.yml")
        idp.provider.settings = dataclasses.replace(idp.provider.settings, github=workload)
    provider = GitHubActionsProvider.from_env(idp.env(), jwks=JwksClient([idp.issuer]))
    return Signer.from_provider(provider)


def sign(client: RegistryClient, image: ImageReference, idp: DevIdP) -> ImageReference:
    """Sign ``image`` (its digest) in its registry."""
    return sign_image(client, image, signer(idp))


def pod(name: str, *images: str, namespace: str = "apps") -> dict[str, Any]:
    """A Pod object as the API server sends it (enough of it for the gate)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]},
    }


def review(obj: Mapping[str, Any], *, uid: str | None = None, operation: str = "CREATE") -> bytes:
    """An ``admission.k8s.io/v1`` review of ``obj`` (a Pod), as bytes."""
    namespace = obj.get("metadata", {}).get("namespace", "apps")
    request = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": obj.get("metadata", {}).get("name", ""),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
        "object": obj,
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    document = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(document).encode()


@dataclass(frozen=True)
class Reply:
    """One HTTP answer from the gate."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def response(self) -> dict[str, Any]:
        """The AdmissionReview's ``response``."""
        document = self.json()
        assert document["apiVersion"] == "admission.k8s.io/v1"
        assert document["kind"] == "AdmissionReview"
        response: dict[str, Any] = document["response"]
        return response


def client_context(ca_file: Path) -> ssl.SSLContext:
    """TLS for a client of the gate: trusts the test CA only."""
    return ssl.create_default_context(cafile=str(ca_file))


def post(
    port: int,
    body: bytes,
    context: ssl.SSLContext,
    *,
    path: str = "/validate?timeout=10s",
    content_type: str = "application/json",
    timeout: float = 30.0,
) -> Reply:
    """POST ``body`` to the gate on 127.0.0.1."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        answer = connection.getresponse()
        return Reply(answer.status, answer.read(), dict(answer.getheaders()))
    finally:
        connection.close()


def get(port: int, path: str, context: ssl.SSLContext, *, timeout: float = 10.0) -> Reply:
    """GET ``path`` from the gate on 127.0.0.1."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return Reply(answer.status, answer.read(), dict(answer.getheaders()))
    finally:
        connection.close()


class GateProcess:
    """``opkey admission serve`` on 127.0.0.1 as a subprocess, its logs in ``log``."""

    def __init__(
        self,
        args: Sequence[str],
        cert: CertFiles,
        ca_file: Path,
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.cert = cert
        self.context = client_context(ca_file)
        self.log = log
        self.argv = [
            sys.executable,
            "-m",
            "opkey",
            "admission",
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--tls-cert",
            str(cert.cert),
            "--tls-key",
            str(cert.key),
            *args,
        ]
        self.env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> GateProcess:
        """Start and wait until ``/readyz`` answers 200."""
        with self.log.open("wb") as handle:
            self._process = subprocess.Popen(
                self.argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the gate exited {self._process.returncode}:\n{self.output()}")
            try:
                if get(self.port, "/readyz", self.context, timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the gate was not ready within {timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        """Everything the gate wrote."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def logs(self) -> list[dict[str, Any]]:
        """Its JSON log lines, decoded."""
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def post(self, body: bytes, **options: Any) -> Reply:
        """POST ``body`` to ``/validate``."""
        return post(self.port, body, self.context, **options)

    def get(self, path: str) -> Reply:
        """GET ``path``."""
        return get(self.port, path, self.context)

    @property
    def returncode(self) -> int | None:
        """The exit status once exited."""
        return None if self._process is None else self._process.poll()

    def stop(self) -> int | None:
        """SIGTERM, then wait (kill after 10 s); the exit status."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        return process.returncode


def image_in(registry_host: str, name: str) -> ImageReference:
    """A reference ``<registry>/<name>-<random>:v1`` for a fresh repository."""
    return ImageReference.parse(f"{registry_host}/{name}-{uuid.uuid4().hex[:8]}:v1")


def distinct_port() -> int:
    """A free port (for a registry that is not there)."""
    return free_port()
