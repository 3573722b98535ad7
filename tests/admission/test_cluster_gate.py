"""The whole path: kubectl → a real kube-apiserver → ``opkey admission serve`` → registry, IdP.

The gate runs as a process with a serving certificate of the test CA, registered with a
``ValidatingWebhookConfiguration`` (``failurePolicy: Fail``, ``caBundle`` the test CA) for
namespaces labelled ``opkey-gate-test``. Images live in the real distribution registry and are
signed with PK tokens of the dev IdP. Needs etcd, kubectl and the kube-apiserver tool (skips
without them, fails under ``CI=true``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from opkey.registry.reference import ImageReference
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.registry import LocalRegistry, seed_image
from tests.admission.conftest import webhook_configuration
from tests.admission.kube import ClusterPKI, KubeApiServer, Kubectl
from tests.admission.serving import GateProcess, image_in, policy_file, sign
from tests.conftest import make_registry_client

pytestmark = pytest.mark.registry

HOOK = "gate.admission.opkey.test"
CONFIGURATION = "opkey-gate-test"
LABEL = "opkey-gate-test"
DENIED = f'admission webhook "{HOOK}" denied the request: '


@dataclass
class ClusterGate:
    gate: GateProcess
    kubectl: Kubectl
    signed: ImageReference
    unsigned: ImageReference
    namespaces: list[str]

    def namespace(self) -> str:
        name = f"gate-{len(self.namespaces)}-{int(time.time() * 1000) % 100000}"
        manifest = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {LABEL: "true"}},
        }
        self.kubectl.run("create", "-f", "-", stdin=json.dumps(manifest))
        self.namespaces.append(name)
        return name


def _registered(kubectl: Kubectl, gate: GateProcess, ca_bundle: str) -> None:
    configuration = webhook_configuration(f"https://127.0.0.1:{gate.port}/validate", ca_bundle)
    configuration["metadata"] = {"name": CONFIGURATION}
    hooks = configuration["webhooks"]
    assert isinstance(hooks, list)
    hook: dict[str, object] = hooks[0]
    hook["name"] = HOOK
    hook["namespaceSelector"] = {"matchExpressions": [{"key": LABEL, "operator": "Exists"}]}
    kubectl.run("create", "-f", "-", stdin=json.dumps(configuration))


def _wait_until_called(cluster: ClusterGate, timeout: float = 30) -> None:
    """The API server picks a new configuration up asynchronously: probe until the gate logs."""
    namespace = cluster.namespace()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.kubectl.run("run", "probe", "--image=probe.example/x:1", "-n", namespace,
                            "--dry-run=server", check=False)  # fmt: skip
        if any(e.get("event") == "admission" and e.get("namespace") == namespace
               for e in cluster.gate.logs()):  # fmt: skip
            return
        time.sleep(0.5)
    raise RuntimeError(f"the API server did not call the gate within {timeout:.0f} s")


@pytest.fixture(scope="module")
def cluster(
    kube_apiserver: KubeApiServer,
    kubectl: Kubectl,
    kube_pki: ClusterPKI,
    registry_server: LocalRegistry,
    dev_idp: DevIdP,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterGate]:
    root = tmp_path_factory.mktemp("cluster-gate")
    client = make_registry_client()
    signed = seed_image(client, image_in(registry_server.host, "deploy"))
    sign(client, signed, dev_idp)
    unsigned = seed_image(client, image_in(registry_server.host, "deploy-unsigned"))
    policy = policy_file(root / "policy.toml", dev_idp)
    gate = GateProcess(["--policy", str(policy)], kube_pki.webhook, kube_pki.ca_file,
                       root / "gate.log").start()  # fmt: skip
    state = ClusterGate(gate, kubectl, signed, unsigned, [])
    try:
        _registered(kubectl, gate, kube_pki.ca_bundle)
        _wait_until_called(state)
        yield state
    finally:
        kubectl.run("delete", "validatingwebhookconfiguration", CONFIGURATION, check=False)
        for name in state.namespaces:
            kubectl.run("delete", "namespace", name, "--wait=false", check=False)
        gate.stop()


def test_kubectl_creates_a_pod_with_a_signed_image(cluster: ClusterGate) -> None:
    namespace = cluster.namespace()
    result = cluster.kubectl.run("run", "signed", f"--image={cluster.signed}", "-n", namespace)
    assert "pod/signed created" in result.stdout
    pod = cluster.kubectl.run("get", "pod", "signed", "-n", namespace, "-o", "json").json()
    assert pod["spec"]["containers"][0]["image"] == str(cluster.signed)
    (entry,) = [e for e in cluster.gate.logs() if e.get("name") == "signed"]
    assert entry["decision"] == "allowed"
    assert entry["images"][0]["digest"] == str(cluster.signed.digest)


def test_kubectl_is_refused_a_pod_with_an_unsigned_image_and_told_why(
    cluster: ClusterGate,
) -> None:
    namespace = cluster.namespace()
    result = cluster.kubectl.run(
        "run", "unsigned", f"--image={cluster.unsigned}", "-n", namespace, check=False
    )
    assert result.returncode != 0
    assert (
        f'{DENIED}opkey refused 1 of 1 image: spec.containers[0].image "{cluster.unsigned}": '
        "the image has no signatures"
    ) in result.stderr
    missing = cluster.kubectl.run("get", "pod", "unsigned", "-n", namespace, check=False)
    assert "NotFound" in missing.stderr


def test_a_deployment_whose_init_container_is_unsigned_is_refused(cluster: ClusterGate) -> None:
    namespace = cluster.namespace()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {
                    "initContainers": [{"name": "migrate", "image": str(cluster.unsigned)}],
                    "containers": [{"name": "api", "image": str(cluster.signed)}],
                },
            },
        },
    }
    result = cluster.kubectl.run(
        "create", "-n", namespace, "-f", "-", stdin=json.dumps(deployment), check=False
    )
    assert result.returncode != 0
    assert f'{DENIED}opkey refused 1 of 2 images: spec.template.spec.initContainers[0].image "' in (
        result.stderr
    )
    deployment["spec"]["template"]["spec"]["initContainers"] = []  # type: ignore[index]
    created = cluster.kubectl.run(
        "create", "-n", namespace, "-f", "-", stdin=json.dumps(deployment)
    )
    assert "deployment.apps/api created" in created.stdout
