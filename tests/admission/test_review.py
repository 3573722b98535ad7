"""Strict AdmissionReview parsing: real reviews read, malformed ones refused with the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opkey import AdmissionReviewError, FormatError
from opkey.admission import (
    GroupVersionKind,
    GroupVersionResource,
    Operation,
    parse_admission_review,
)
from opkey.admission.review import MAX_REVIEW_BYTES
from tests.admission.reviews import DATA, load_object, request_dict, wrap

DOCS = DATA / "docs"


def review_of(request: dict[str, Any], **top: Any) -> bytes:
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    review.update(top)
    return json.dumps(review).encode()


def deployment_request() -> dict[str, Any]:
    return request_dict(load_object("deployment"), namespace="prod")


def refused(body: bytes | str, match: str) -> AdmissionReviewError:
    with pytest.raises(AdmissionReviewError, match=match) as info:
        parse_admission_review(body)
    return info.value


def test_a_wrapped_kubectl_object_parses_into_typed_fields() -> None:
    request = parse_admission_review(wrap(load_object("deployment"), namespace="prod"))
    assert request.kind == GroupVersionKind("apps", "v1", "Deployment")
    assert request.resource == GroupVersionResource("apps", "v1", "deployments")
    assert request.operation is Operation.CREATE
    assert request.namespace == "prod"
    assert request.name == "api"
    assert request.user_info.username == "opkey-admin"
    assert request.user_info.groups == ("system:masters", "system:authenticated")
    assert request.object is not None
    assert request.object["kind"] == "Deployment"
    assert request.old_object is None
    assert request.dry_run is False
    with pytest.raises(TypeError):
        request.object["kind"] = "Pod"  # type: ignore[index]


def test_the_docs_example_in_v1beta1_is_refused_with_what_to_configure() -> None:
    error = refused(
        (DOCS / "k8s-docs_scale-request_v1beta1.json").read_bytes(),
        r"^apiVersion: admission.k8s.io/v1beta1 is not accepted; list only v1 in the webhook's "
        r"admissionReviewVersions$",
    )
    assert isinstance(error, FormatError)
    assert error.uid is None


def test_the_docs_example_in_v1_parses_every_member() -> None:
    request = parse_admission_review((DOCS / "k8s-docs_scale-request_v1.json").read_bytes())
    assert request.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert request.kind == GroupVersionKind("autoscaling", "v1", "Scale")
    assert request.sub_resource == "scale"
    assert request.request_sub_resource == "scale"
    assert request.resource_path == "deployments/scale"
    assert request.operation is Operation.UPDATE
    assert request.user_info.extra == {"some-key": ("some-value1", "some-value2")}
    assert request.options is not None
    assert request.options["kind"] == "UpdateOptions"


def test_kubernetes_round_trip_fixture_with_a_response_is_not_a_request() -> None:
    refused(
        (DOCS / "k8s-api-v0.37.2_admission.k8s.io.v1.AdmissionReview.json").read_bytes(),
        "^response: a review sent for a decision carries no response yet$",
    )
    refused(
        (DOCS / "k8s-api-v0.37.2_admission.k8s.io.v1beta1.AdmissionReview.json").read_bytes(),
        "v1beta1 is not accepted",
    )


def test_kubernetes_round_trip_request_names_the_invalid_operation() -> None:
    fixture = json.loads(
        (DOCS / "k8s-api-v0.37.2_admission.k8s.io.v1.AdmissionReview.json").read_bytes()
    )
    del fixture["response"]
    error = refused(
        json.dumps(fixture),
        r"^request.operation: expected one of CREATE, UPDATE, DELETE, CONNECT, "
        r"found string 'operationValue'$",
    )
    assert error.uid == "uidValue"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("uid"), "^request.uid: required$"),
        (lambda r: r.update(uid=""), "^request.uid: must not be empty$"),
        (lambda r: r.update(uid=7), "^request.uid: expected a string, found integer 7$"),
        (lambda r: r.update(uid="a\nb"), "^request.uid: must be printable ASCII"),
        (lambda r: r.update(uid="u" * 129), "^request.uid: 129 characters is more than 128$"),
        (lambda r: r.pop("kind"), "^request.kind: required$"),
        (lambda r: r.update(kind=None), "^request.kind: must not be null$"),
        (lambda r: r["kind"].update(kind=3), "^request.kind.kind: expected a string, found "),
        (lambda r: r["kind"].pop("version"), "^request.kind.version: required$"),
        (lambda r: r["kind"].update(extra="x"), "^request.kind: unknown member 'extra'"),
        (lambda r: r.pop("resource"), "^request.resource: required$"),
        (lambda r: r["resource"].update(resource=""), "^request.resource.resource: must not be"),
        (lambda r: r.pop("operation"), "^request.operation: required$"),
        (lambda r: r.update(operation="create"), "^request.operation: expected one of"),
        (lambda r: r.pop("userInfo"), "^request.userInfo: required$"),
        (lambda r: r["userInfo"].update(groups="admins"), "^request.userInfo.groups: expected"),
        (lambda r: r["userInfo"].update(extra={"k": "v"}), r"^request.userInfo.extra.k: expected"),
        (lambda r: r.update(dryRun="no"), "^request.dryRun: expected a boolean, found string"),
        (lambda r: r.update(object=None), "^request.object: required for CREATE$"),
        (lambda r: r.update(object=[1]), "^request.object: expected an object or null"),
        (lambda r: r.update(subResource=1), "^request.subResource: expected a string"),
        (lambda r: r.update(patch="x"), "^request: unknown member 'patch'; expected uid, kind"),
        (
            lambda r: r["object"].update(kind="Pod"),
            "^request.object: is a apps/v1 Pod, but the request is for a apps/v1 Deployment$",
        ),
        (
            lambda r: r["object"].update(apiVersion="apps/v1beta2"),
            "^request.object: is a apps/v1beta2 Deployment, but the request is for",
        ),
        (
            lambda r: r["object"]["metadata"].update(namespace="kube-system"),
            "^request.object.metadata.namespace: object is in namespace 'kube-system', the "
            "request in 'prod'$",
        ),
    ],
)
def test_a_malformed_request_names_the_member(mutate: Any, message: str) -> None:
    request = deployment_request()
    uid = request["uid"]
    mutate(request)
    error = refused(review_of(request), message)
    # Once the uid is read, the error carries it, so the gate can answer the request.
    if "request.uid" not in message:
        assert error.uid == uid


def test_update_needs_the_old_object() -> None:
    request = request_dict(load_object("deployment"), operation="UPDATE", namespace="prod")
    refused(review_of(request), "^request.oldObject: required for UPDATE$")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "invalid JSON"),
        (b"[]", "expected a JSON object, found list"),
        (b"\xff{}", "not valid UTF-8"),
        (b'{"apiVersion": "admission.k8s.io/v1", "apiVersion": "x"}', "duplicate JSON member"),
        (b'{"kind": "AdmissionReview", "request": {}}', "^apiVersion: required$"),
        (b'{"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview"}', "^apiVersion: exp"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "Review"}', "^kind: expected Adm"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "^request: req"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": 1}',
            "^request: expected an object, found integer 1$",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "x": 1}',
            "^AdmissionReview: unknown member 'x'; expected apiVersion, kind, request$",
        ),
        (b'{"apiVersion": NaN}', "JSON constant NaN is not allowed"),
        (b"[" * 100 + b"]" * 100, "nested"),
    ],
)
def test_a_malformed_review_is_refused(body: bytes, message: str) -> None:
    error = refused(body, message)
    assert error.uid is None


def test_a_duplicated_image_key_inside_the_object_is_refused() -> None:
    """Two ``image`` members: Go's decoder takes the last, a naive one the first."""
    body = wrap(load_object("deployment"), namespace="prod").replace(
        b'"image": "registry.example/acme/api:2.1"',
        b'"image": "registry.example/acme/api:2.1", "image": "evil.example/x:1"',
    )
    assert b"evil.example" in body
    refused(body, "duplicate JSON member name 'image'")


def test_size_is_bounded_before_parsing() -> None:
    body = b" " * (MAX_REVIEW_BYTES + 1)
    refused(body, f"^AdmissionReview: {MAX_REVIEW_BYTES + 1} bytes is more than the")
    small = wrap(load_object("deployment"), namespace="prod")
    with pytest.raises(AdmissionReviewError, match="is more than the 100 allowed"):
        parse_admission_review(small, max_bytes=100)


def test_depth_is_bounded_and_real_reviews_fit() -> None:
    """A captured CronJob review nests 15 levels (its managedFields): within the default."""
    body = (DATA / "captured" / "cronjob-create.json").read_bytes()
    request = parse_admission_review(body)
    assert request.kind.kind == "CronJob"
    parse_admission_review(body, max_depth=15)
    with pytest.raises(AdmissionReviewError, match="nested deeper than 14 levels"):
        parse_admission_review(body, max_depth=14)


def test_delete_has_no_object_and_parses() -> None:
    request = request_dict(
        None, operation="DELETE", namespace="prod", old=load_object("deployment")
    )
    parsed = parse_admission_review(review_of(request))
    assert parsed.object is None
    assert parsed.old_object is not None
