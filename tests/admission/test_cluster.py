"""Against a real kube-apiserver: the webhook is called, its answers reach kubectl, and the
reviews it sends are what the core reads.

Each test needs etcd (Debian ``etcd-server``), kubectl (``kubernetes-client``) and the
``kube-apiserver`` built by ``python tests/tools/build.py kube-apiserver``; without them they
skip (and fail under ``CI=true``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from opkey import AdmissionReviewError
from opkey.admission import (
    ImageCheck,
    ImageOutcome,
    images_to_verify,
    parse_admission_config,
    parse_admission_review,
    plan_admission,
    review_error_response,
)
from tests.admission.conftest import (
    ALLOWED_IMAGE,
    DENIED_IMAGE,
    WEBHOOK_NAME,
    RegisteredWebhook,
)
from tests.admission.kube import Handler, Kubectl
from tests.admission.reviews import DATA, KINDS
from tests.admission.test_images import DIGEST, expected

DEPLOY = Path(__file__).parents[2] / "deploy"
DENIED = f'admission webhook "{WEBHOOK_NAME}" denied the request: '

GATE_CONFIG = parse_admission_config(
    """
version = 1

[[rules]]
name = "acme"
namespaces = ["admission-*"]
images = ["ghcr.io/acme/**", "registry.example/acme/**"]
policy = "release.toml"

[[rules]]
name = "hub-audit"
namespaces = ["admission-*"]
images = ["docker.io/library/*"]
policy = "audit.toml"
mode = "warn"
require_digest = false
"""
)


def stand_in_verify(check: ImageCheck) -> ImageOutcome:
    """The server step verifies signatures; here an image passes when pinned to DIGEST."""
    if str(check.reference.digest) == DIGEST:
        return check.passed()
    return check.failed(f"no signature of {check.reference} satisfies {check.rule.policy.name}")


def gate_handler(body: bytes) -> bytes:
    """A webhook made of the core: parse, plan, stand-in verification, decide."""
    try:
        plan = plan_admission(parse_admission_review(body), GATE_CONFIG)
    except AdmissionReviewError as exc:
        response = review_error_response(exc)
        if response is None:
            raise
        return response.to_json()
    return plan.decide([stand_in_verify(check) for check in plan.checks]).to_json()


def allow_all(body: bytes) -> bytes:
    uid = json.loads(body)["request"]["uid"]
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    return json.dumps({**review, "response": {"uid": uid, "allowed": True}}).encode()


def pod_manifest(name: str, *images: str) -> str:
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": containers},
        }
    )


def test_smoke_one_image_admitted_one_refused_with_the_webhook_message(
    kubectl: Kubectl, admission_webhook: RegisteredWebhook, test_namespace: str
) -> None:
    admitted = kubectl.run("run", "good", f"--image={ALLOWED_IMAGE}", "-n", test_namespace)
    assert "pod/good created" in admitted.stdout
    pod = kubectl.run("get", "pod", "good", "-n", test_namespace, "-o", "json").json()
    assert pod["spec"]["containers"][0]["image"] == ALLOWED_IMAGE

    refused = kubectl.run(
        "run", "bad", f"--image={DENIED_IMAGE}", "-n", test_namespace, check=False
    )
    assert refused.returncode != 0
    assert f"{DENIED}image {DENIED_IMAGE} is not allowed" in refused.stderr
    missing = kubectl.run("get", "pod", "bad", "-n", test_namespace, check=False)
    assert "NotFound" in missing.stderr
    reviews = admission_webhook.reviews()
    assert [r["request"]["name"] for r in reviews] == ["good", "bad"]  # type: ignore[index]


@pytest.mark.parametrize("kind", KINDS)
def test_the_review_the_api_server_sends_is_read_by_the_core(
    kind: str,
    kubectl: Kubectl,
    admission_webhook: RegisteredWebhook,
    webhook_handler: Callable[[Handler], None],
    test_namespace: str,
) -> None:
    webhook_handler(allow_all)
    kubectl.run("create", "-n", test_namespace, "-f", str(DATA / "objects" / f"{kind}.json"))
    (received,) = admission_webhook.take()
    request = parse_admission_review(received[1])
    # The API server tells the webhook its deadline (the configuration's timeoutSeconds).
    assert received[0] == "/validate?timeout=10s"
    assert request.namespace == test_namespace
    assert images_to_verify(request) == expected(kind)


def test_core_denial_reaches_kubectl_with_every_refused_image(
    kubectl: Kubectl, webhook_handler: Callable[[Handler], None], test_namespace: str
) -> None:
    webhook_handler(gate_handler)
    result = kubectl.run(
        "create",
        "-n",
        test_namespace,
        "-f",
        str(DATA / "objects" / "deployment.json"),
        check=False,
    )
    assert result.returncode != 0
    assert f"{DENIED}opkey refused 2 of 3 images: " in result.stderr
    assert (
        'spec.template.spec.containers[0].image "registry.example/acme/api:2.1": not pinned by '
        "digest; rule acme requires registry.example/acme/api@sha256:…"
    ) in result.stderr
    assert 'spec.template.spec.initContainers[0].image "registry.example/acme/api-migrate:2.1"' in (
        result.stderr
    )


def test_core_admission_and_warnings_reach_kubectl(
    kubectl: Kubectl, webhook_handler: Callable[[Handler], None], test_namespace: str
) -> None:
    webhook_handler(gate_handler)
    manifest = pod_manifest("mixed", f"ghcr.io/acme/web@{DIGEST}", "nginx:1.27")
    result = kubectl.run("create", "-n", test_namespace, "-f", "-", stdin=manifest)
    assert "pod/mixed created" in result.stdout
    assert (
        'Warning: opkey (warn, rule hub-audit): spec.containers[1].image "nginx:1.27": no '
        "signature of docker.io/library/nginx:1.27 satisfies audit.toml"
    ) in result.stderr


def test_core_escapes_what_a_terminal_would_obey(
    kubectl: Kubectl, webhook_handler: Callable[[Handler], None], test_namespace: str
) -> None:
    webhook_handler(gate_handler)
    manifest = pod_manifest("tricky", "ghcr.io/acme/web:1\u202e1.exe")
    result = kubectl.run("create", "-n", test_namespace, "-f", "-", stdin=manifest, check=False)
    assert result.returncode != 0
    assert '"ghcr.io/acme/web:1\\u202e1.exe": not a valid image reference' in result.stderr
    assert "\u202e" not in result.stderr


def test_a_bounded_message_for_many_images_is_accepted(
    kubectl: Kubectl, webhook_handler: Callable[[Handler], None], test_namespace: str
) -> None:
    webhook_handler(gate_handler)
    images = [f"ghcr.io/acme/service-{i:03d}:{'v' * 100}" for i in range(60)]
    result = kubectl.run(
        "create",
        "-n",
        test_namespace,
        "-f",
        "-",
        stdin=pod_manifest("many", *images),
        check=False,
    )
    assert result.returncode != 0
    assert f"{DENIED}opkey refused 60 of 60 images: spec.containers[0].image" in result.stderr
    assert "more\n" in result.stderr or result.stderr.rstrip().endswith("more")


def test_kubectl_debug_sends_the_ephemeral_container_to_the_gate(
    kubectl: Kubectl,
    admission_webhook: RegisteredWebhook,
    webhook_handler: Callable[[Handler], None],
    test_namespace: str,
) -> None:
    webhook_handler(gate_handler)
    kubectl.run(
        "create",
        "-n",
        test_namespace,
        "-f",
        "-",
        stdin=pod_manifest("target", f"ghcr.io/acme/web@{DIGEST}"),
    )
    admission_webhook.take()
    result = kubectl.run(
        "debug",
        "-n",
        test_namespace,
        "pod/target",
        "--image=ghcr.io/acme/debug:1",
        "--container=dbg",
        "--profile=general",
        check=False,
    )
    assert result.returncode != 0
    assert (
        f"{DENIED}opkey refused 1 of 1 image: spec.ephemeralContainers[0].image "
        '"ghcr.io/acme/debug:1": not pinned by digest'
    ) in result.stderr
    (received,) = admission_webhook.take()
    assert parse_admission_review(received[1]).resource_path == "pods/ephemeralcontainers"

    admitted = kubectl.run(
        "debug",
        "-n",
        test_namespace,
        "pod/target",
        f"--image=ghcr.io/acme/debug@{DIGEST}",
        "--container=dbg",
        "--profile=general",
    )
    assert admitted.returncode == 0
    pod = kubectl.run("get", "pod", "target", "-n", test_namespace, "-o", "json").json()
    assert [c["name"] for c in pod["spec"]["ephemeralContainers"]] == ["dbg"]


def test_deploy_files_pass_server_side_dry_run(kubectl: Kubectl) -> None:
    files = sorted(DEPLOY.glob("*.yaml"))
    assert files, "deploy/ has no manifests"
    kubectl.run("create", "namespace", "opkey-system", check=False)
    client = kubectl.run("apply", "--dry-run=client", "-f", str(DEPLOY))
    server = kubectl.run("apply", "--dry-run=server", "-f", str(DEPLOY))
    for result in (client, server):
        assert "validatingwebhookconfiguration.admissionregistration.k8s.io/opkey-admission" in (
            result.stdout
        )
        assert "deployment.apps/opkey-admission" in result.stdout
        assert "service/opkey-admission" in result.stdout
    assert "(server dry run)" in server.stdout


def test_deployed_webhook_rules_cover_exactly_the_kinds_the_core_reads(kubectl: Kubectl) -> None:
    from opkey.admission.images import WORKLOAD_KINDS
    from tests.admission.reviews import RESOURCES

    made = kubectl.run(
        "create", "--dry-run=client", "-o", "json", "-f", str(DEPLOY / "40-webhook.yaml")
    ).json()
    (hook,) = made["webhooks"]
    covered = {
        (group, version, resource)
        for rule in hook["rules"]
        for group in rule["apiGroups"]
        for version in rule["apiVersions"]
        for resource in rule["resources"]
    }
    read = {(group, version, RESOURCES[kind]) for group, version, kind in WORKLOAD_KINDS}
    assert covered == read | {("", "v1", "pods/ephemeralcontainers")}
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in hook["rules"])
    assert hook["failurePolicy"] == "Fail"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["sideEffects"] == "None"
    assert 1 <= hook["timeoutSeconds"] <= 30
    assert hook["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["opkey-system"]}
    ]
