"""Every image of every workload kind is found, with its path; unreadable objects are refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from opkey import AdmissionReviewError
from opkey.admission import (
    ContainerImage,
    ContainerRole,
    GroupVersionKind,
    images_of_object,
    images_to_verify,
    parse_admission_review,
)
from tests.admission.reviews import DATA, KINDS, load_captured, load_object, wrap

DIGEST = "sha256:4c1e997385b8fb4ad4d1d3c7e5af7ff3f882e04d1fc45ee6a0d22b1c4b0d1c8c"
C, INIT, EPH = ContainerRole.CONTAINER, ContainerRole.INIT, ContainerRole.EPHEMERAL
TEMPLATE = "spec.template.spec"

#: What each object of tests/data/admission/objects holds: (path, image, container, role).
EXPECTED: dict[str, list[tuple[str, str, str, ContainerRole]]] = {
    "pod": [
        ("spec.containers[0].image", f"ghcr.io/acme/web@{DIGEST}", "web", C),
        ("spec.initContainers[0].image", "ghcr.io/acme/config-fetcher:1.4", "fetch-config", INIT),
    ],
    "deployment": [
        (f"{TEMPLATE}.containers[0].image", "registry.example/acme/api:2.1", "api", C),
        (f"{TEMPLATE}.containers[1].image", f"docker.io/library/nginx@{DIGEST}", "nginx", C),
        (
            f"{TEMPLATE}.initContainers[0].image",
            "registry.example/acme/api-migrate:2.1",
            "init",
            INIT,
        ),
    ],
    "replicaset": [
        (
            f"{TEMPLATE}.containers[0].image",
            f"registry.example:5000/team/frontend@{DIGEST}",
            "web",
            C,
        ),
        (f"{TEMPLATE}.containers[1].image", "envoyproxy/envoy:v1.31.0", "proxy", C),
        (
            f"{TEMPLATE}.initContainers[0].image",
            "registry.example:5000/team/migrate:3",
            "migrate",
            INIT,
        ),
    ],
    "statefulset": [
        (f"{TEMPLATE}.containers[0].image", f"postgres:16.4@{DIGEST}", "postgres", C),
        (
            f"{TEMPLATE}.containers[1].image",
            "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
            "exporter",
            C,
        ),
        (f"{TEMPLATE}.initContainers[0].image", "busybox:1.36", "init-perms", INIT),
    ],
    "daemonset": [
        (f"{TEMPLATE}.containers[0].image", f"ghcr.io/acme/node-agent@{DIGEST}", "agent", C),
        (f"{TEMPLATE}.initContainers[0].image", "localhost:5000/agent-setup:1", "setup", INIT),
    ],
    "job": [
        (f"{TEMPLATE}.containers[0].image", "ghcr.io/acme/backup:7", "backup", C),
        (f"{TEMPLATE}.initContainers[0].image", "alpine:3.20", "init", INIT),
    ],
    "cronjob": [
        (
            "spec.jobTemplate.spec.template.spec.containers[0].image",
            f"ghcr.io/acme/report@{DIGEST}",
            "nightly",
            C,
        ),
        (
            "spec.jobTemplate.spec.template.spec.initContainers[0].image",
            "quay.io/acme/report-init:0.9",
            "init",
            INIT,
        ),
    ],
    "replicationcontroller": [
        (f"{TEMPLATE}.containers[0].image", "gcr.io/acme-project/legacy-app:2019", "app", C),
        (f"{TEMPLATE}.initContainers[0].image", "docker.io/library/busybox:1.36", "wait", INIT),
    ],
}


def expected(kind: str) -> tuple[ContainerImage, ...]:
    return tuple(
        ContainerImage(image, path, name, role) for path, image, name, role in EXPECTED[kind]
    )


def test_every_kind_has_an_expectation() -> None:
    assert set(EXPECTED) == set(KINDS)
    assert {p.stem for p in (DATA / "objects").glob("*.json")} == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_kubectl_object_wrapped_as_the_api_server_does(kind: str) -> None:
    request = parse_admission_review(wrap(load_object(kind), namespace="prod"))
    assert images_to_verify(request) == expected(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_review_captured_from_the_api_server(kind: str) -> None:
    request = parse_admission_review(load_captured(f"{kind}-create"))
    assert request.namespace.startswith("capture-")
    assert request.dry_run is False
    assert images_to_verify(request) == expected(kind)


def test_captured_update_judges_only_the_changed_image() -> None:
    request = parse_admission_review(load_captured("deployment-update"))
    assert request.operation.value == "UPDATE"
    assert request.old_object is not None
    changed = ContainerImage(
        "registry.example/acme/api:2.2", f"{TEMPLATE}.containers[0].image", "api", C
    )
    assert images_to_verify(request) == (changed,)
    assert request.object is not None
    assert len(images_of_object(request.object, request.kind)) == 3


def test_captured_kubectl_debug_judges_the_ephemeral_container() -> None:
    request = parse_admission_review(load_captured("pod-ephemeralcontainers"))
    assert request.resource_path == "pods/ephemeralcontainers"
    assert request.kind == GroupVersionKind("", "v1", "Pod")
    debugger = ContainerImage("busybox:1.36", "spec.ephemeralContainers[0].image", "debugger", EPH)
    assert images_to_verify(request) == (debugger,)
    assert request.object is not None
    assert images_of_object(request.object, request.kind) == (*expected("pod"), debugger)


def test_ephemeral_containers_of_a_hand_made_pod_are_found() -> None:
    pod = load_object("pod")
    pod["spec"]["ephemeralContainers"] = [
        {"name": "dbg", "image": "nicolaka/netshoot:v0.13"},
        {"name": "dbg2", "image": "ghcr.io/acme/debug:1"},
    ]
    old = load_object("pod")
    old["metadata"]["namespace"] = "prod"
    body = wrap(
        pod, namespace="prod", operation="UPDATE", old=old, sub_resource="ephemeralcontainers"
    )
    found = images_to_verify(parse_admission_review(body))
    assert [(i.path, i.image, i.role) for i in found] == [
        ("spec.ephemeralContainers[0].image", "nicolaka/netshoot:v0.13", EPH),
        ("spec.ephemeralContainers[1].image", "ghcr.io/acme/debug:1", EPH),
    ]


def test_delete_judges_nothing() -> None:
    old = load_object("deployment")
    old["metadata"]["namespace"] = "prod"
    review = json.loads(wrap(old, namespace="prod"))
    review["request"].update(operation="DELETE", object=None, oldObject=old)
    assert images_to_verify(parse_admission_review(json.dumps(review))) == ()


def _mutated(kind: str, mutate: Any) -> bytes:
    obj = copy.deepcopy(load_object(kind))
    mutate(obj)
    return wrap(obj, namespace="prod")


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda o: _spec(o).pop("containers"),
            rf"^object\.{TEMPLATE}\.containers: required; a pod spec lists at least one",
        ),
        (lambda o: _spec(o).update(containers=[]), r"containers: empty; a pod spec lists"),
        (lambda o: _spec(o).update(containers={}), r"containers: expected an array"),
        (lambda o: _spec(o).update(initContainers="x"), r"initContainers: expected an array"),
        (lambda o: _spec(o)["containers"].append("nginx"), r"containers\[2\]: expected a cont"),
        (
            lambda o: _spec(o)["containers"][1].pop("image"),
            r"containers\[1\]\.image: container 'nginx' has no image",
        ),
        (lambda o: _spec(o)["containers"][0].update(image=""), r"\[0\]\.image: container 'api'"),
        (lambda o: _spec(o)["containers"][0].update(image=["a"]), r"\[0\]\.image: container"),
        (lambda o: _spec(o)["containers"][0].pop("name"), r"containers\[0\]\.name: expected"),
        (lambda o: o["spec"].pop("template"), r"^object\.spec\.template: a Deployment needs an"),
        (lambda o: o["spec"]["template"].update(spec=None), r"template\.spec: a Deployment"),
    ],
)
def test_an_unreadable_pod_spec_is_refused_with_its_path(mutate: Any, message: str) -> None:
    request = parse_admission_review(_mutated("deployment", mutate))
    with pytest.raises(AdmissionReviewError, match=message) as info:
        images_to_verify(request)
    assert info.value.uid == request.uid


def test_kinds_without_a_pod_spec_we_read_are_refused() -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    request = parse_admission_review(wrap(config_map, namespace="prod"))
    with pytest.raises(AdmissionReviewError, match=r"^a v1 ConfigMap holds no pod spec this gate"):
        images_to_verify(request)
    old_cronjob = load_object("cronjob")
    old_cronjob["apiVersion"] = "batch/v1beta1"
    request = parse_admission_review(wrap(old_cronjob, namespace="prod"))
    with pytest.raises(AdmissionReviewError, match=r"^a batch/v1beta1 CronJob holds no pod spec"):
        images_to_verify(request)


def test_subresources_other_than_ephemeral_containers_are_refused() -> None:
    body = (DATA / "docs" / "k8s-docs_scale-request_v1.json").read_bytes()
    request = parse_admission_review(body)
    with pytest.raises(AdmissionReviewError, match=r"^subresource deployments/scale of a auto"):
        images_to_verify(request)
    pod = load_object("pod")
    old = copy.deepcopy(pod)
    body = wrap(pod, namespace="prod", operation="UPDATE", old=old, sub_resource="status")
    with pytest.raises(AdmissionReviewError, match=r"^subresource pods/status of a v1 Pod"):
        images_to_verify(parse_admission_review(body))


def test_a_namespaced_kind_needs_the_request_namespace() -> None:
    review = json.loads(wrap(load_object("job"), namespace="prod"))
    review["request"]["namespace"] = ""
    request = parse_admission_review(json.dumps(review))
    with pytest.raises(AdmissionReviewError, match=r"^request.namespace: required for a batch/v1"):
        images_to_verify(request)
