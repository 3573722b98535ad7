"""Fixtures of the admission tests: a real API server with a webhook registered on loopback.

* ``kube_pki``: the test CA and every certificate (session).
* ``kube_apiserver``: etcd (Debian ``etcd-server``) and ``kube-apiserver`` (built by
  ``tests/tools/build.py kube-apiserver``) on 127.0.0.1 for the whole session; skips when either
  is missing (fails under ``CI=true``).
* ``kubectl``: kubectl talking to it as an admin (client certificate in ``system:masters``).
* ``offline_kubectl``: kubectl with no server, for ``--dry-run=client`` objects.
* ``admission_webhook``: a :class:`~tests.admission.kube.WebhookServer` registered with a
  ``ValidatingWebhookConfiguration`` (``failurePolicy: Fail``, its ``caBundle`` the test CA) for
  the workload resources in namespaces labelled ``opkey-admission-test``; its handler is the
  tiny image allow-list of :func:`allow_list_handler` until a test sets another through
  ``webhook_handler``, which restores it afterwards.
* ``test_namespace``: a fresh namespace with that label, per test.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.admission.kube import (
    ClusterPKI,
    Etcd,
    Handler,
    KubeApiServer,
    Kubectl,
    WebhookServer,
)
from tests.toolchain import go_tool, system_tool

WEBHOOK_NAME = "images.admission.opkey.test"
CONFIGURATION_NAME = "opkey-admission-test"
NAMESPACE_LABEL = "opkey-admission-test"
#: The smoke test's allow-list: this image is admitted, every other refused.
ALLOWED_IMAGE = "registry.example/allowed/app:1.0"
DENIED_IMAGE = "registry.example/denied/app:1.0"
#: What the resources of the webhook rules are, as ``kubectl`` and the API server name them.
WORKLOAD_RESOURCES = {
    "": ["pods", "pods/ephemeralcontainers", "replicationcontrollers"],
    "apps": ["deployments", "replicasets", "statefulsets", "daemonsets"],
    "batch": ["jobs", "cronjobs"],
}


def allow_list_handler(body: bytes) -> bytes:
    """The tiny test webhook: admit :data:`ALLOWED_IMAGE` only, with a message naming others.

    Written against the raw JSON, not opkey's code, so the smoke test checks the cluster
    set-up alone.
    """
    review = json.loads(body)
    request = review["request"]
    obj = request.get("object") or {}
    spec = obj.get("spec") or {}
    images = [c.get("image") for c in spec.get("containers", []) + spec.get("initContainers", [])]
    refused = [image for image in images if image != ALLOWED_IMAGE]
    response: dict[str, object] = {"uid": request["uid"], "allowed": not refused}
    if refused:
        response["status"] = {"code": 403, "message": f"image {refused[0]} is not allowed"}
    return json.dumps(
        {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response}
    ).encode()


@dataclass
class RegisteredWebhook:
    """The test webhook and how it is registered."""

    server: WebhookServer
    name: str
    configuration: str
    namespace_label: str

    def take(self) -> list[tuple[str, bytes]]:
        """Requests received since the last call."""
        return self.server.take()

    def reviews(self) -> list[dict[str, object]]:
        """Requests received since the last call, decoded."""
        return [json.loads(body) for _, body in self.take()]


@pytest.fixture(scope="session")
def kube_pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    """The test cluster's CA and certificates."""
    return ClusterPKI(tmp_path_factory.mktemp("kube-pki"))


@pytest.fixture(scope="session")
def kube_apiserver(
    tmp_path_factory: pytest.TempPathFactory, kube_pki: ClusterPKI
) -> Iterator[KubeApiServer]:
    """etcd and kube-apiserver on 127.0.0.1 for the session (no controllers)."""
    binary = go_tool("kube-apiserver")
    etcd_binary = system_tool("etcd", "etcd-server")
    root = tmp_path_factory.mktemp("kube")
    etcd = Etcd(etcd_binary, root / "etcd")
    etcd.start()
    server = KubeApiServer(binary, root / "apiserver", etcd, kube_pki)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        etcd.stop()


@pytest.fixture(scope="session")
def kubectl(kube_apiserver: KubeApiServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl as the cluster's admin."""
    root = tmp_path_factory.mktemp("kubectl")
    config = kube_apiserver.write_kubeconfig(root / "kubeconfig")
    return Kubectl(system_tool("kubectl", "kubernetes-client"), config, root / "home")


@pytest.fixture(scope="session")
def offline_kubectl(tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl without a server (``--dry-run=client`` generators work offline)."""
    root = tmp_path_factory.mktemp("kubectl-offline")
    return Kubectl(system_tool("kubectl", "kubernetes-client"), None, root / "home")


def webhook_configuration(url: str, ca_bundle: str) -> dict[str, object]:
    """The ValidatingWebhookConfiguration registering the test webhook."""
    rules = [
        {
            "apiGroups": [group],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": resources,
            "scope": "Namespaced",
        }
        for group, resources in WORKLOAD_RESOURCES.items()
    ]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": {"url": url, "caBundle": ca_bundle},
                "rules": rules,
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": 10,
                "admissionReviewVersions": ["v1"],
                "namespaceSelector": {
                    "matchExpressions": [{"key": NAMESPACE_LABEL, "operator": "Exists"}]
                },
            }
        ],
    }


_namespaces = itertools.count()


def create_namespace(kubectl: Kubectl, prefix: str = "admission") -> str:
    """A new namespace with the label the webhook selects."""
    name = f"{prefix}-{next(_namespaces)}-{int(time.time() * 1000) % 100000}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {NAMESPACE_LABEL: "true"}},
    }
    kubectl.run("create", "-f", "-", stdin=json.dumps(manifest))
    return name


@pytest.fixture(scope="session")
def admission_webhook(
    kube_apiserver: KubeApiServer, kubectl: Kubectl, kube_pki: ClusterPKI
) -> Iterator[RegisteredWebhook]:
    """The test webhook, served on loopback and registered with the API server."""
    server = WebhookServer(kube_pki.webhook, allow_list_handler).start()
    configuration = webhook_configuration(server.url(), kube_pki.ca_bundle)
    try:
        kubectl.run("create", "-f", "-", stdin=json.dumps(configuration))
        webhook = RegisteredWebhook(server, WEBHOOK_NAME, CONFIGURATION_NAME, NAMESPACE_LABEL)
        _wait_until_called(kubectl, webhook)
        yield webhook
    finally:
        kubectl.run("delete", "validatingwebhookconfiguration", CONFIGURATION_NAME, check=False)
        server.stop()


def _wait_until_called(kubectl: Kubectl, webhook: RegisteredWebhook, timeout: float = 30) -> None:
    """The API server picks new webhook configurations up asynchronously: probe until it calls."""
    namespace = create_namespace(kubectl, "probe")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kubectl.run(
            "run",
            "probe",
            f"--image={DENIED_IMAGE}",
            "-n",
            namespace,
            "--dry-run=server",
            check=False,
        )
        if webhook.take():
            return
        time.sleep(0.5)
    raise RuntimeError(f"the API server did not call the webhook within {timeout:.0f} s")


@pytest.fixture
def webhook_handler(admission_webhook: RegisteredWebhook) -> Iterator[Callable[[Handler], None]]:
    """``set_handler(fn)``: answer with ``fn`` for this test (the allow-list after it)."""

    def set_handler(handler: Handler) -> None:
        admission_webhook.server.handler = handler

    yield set_handler
    admission_webhook.server.handler = allow_list_handler
    admission_webhook.take()


@pytest.fixture
def test_namespace(kubectl: Kubectl, admission_webhook: RegisteredWebhook) -> Iterator[str]:
    """A fresh namespace the webhook judges; deleted afterwards (without waiting)."""
    name = create_namespace(kubectl)
    admission_webhook.take()
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def admission_data() -> Path:
    """tests/data/admission."""
    return Path(__file__).parents[1] / "data" / "admission"
