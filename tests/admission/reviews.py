"""AdmissionReviews around kubectl's objects, wrapped the way the API server wraps them.

:func:`wrap` reproduces the request members ``CreateV1AdmissionReview`` of
``k8s.io/apiserver`` (v0.37.2, ``pkg/admission/plugin/webhook/request/admissionreview.go``)
fills in, so tests can judge every object kind offline; ``captured/`` holds what a real API
server sent, for comparison.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

DATA = Path(__file__).parents[1] / "data" / "admission"

#: Plural resource of each kind, as the API server names them.
RESOURCES = {
    "Pod": "pods",
    "ReplicationController": "replicationcontrollers",
    "Deployment": "deployments",
    "ReplicaSet": "replicasets",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "Job": "jobs",
    "CronJob": "cronjobs",
}
KINDS: tuple[str, ...] = (
    "pod",
    "deployment",
    "replicaset",
    "statefulset",
    "daemonset",
    "job",
    "cronjob",
    "replicationcontroller",
)


def load_object(name: str) -> dict[str, Any]:
    """``objects/<name>.json``, made by kubectl."""
    value: dict[str, Any] = json.loads((DATA / "objects" / f"{name}.json").read_text())
    return value


def load_captured(name: str) -> bytes:
    """``captured/<name>.json``: a review a real API server sent, byte for byte."""
    return (DATA / "captured" / f"{name}.json").read_bytes()


def request_dict(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    namespace: str = "default",
    old: dict[str, Any] | None = None,
    sub_resource: str = "",
    kind: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """The ``request`` stanza the API server sends for ``obj``."""
    source = obj if obj is not None else old
    assert source is not None
    api_version = source["apiVersion"]
    group, _, version = api_version.rpartition("/")
    group_, version_, kind_ = kind or (group, version, source["kind"])
    obj = copy.deepcopy(obj) if obj is not None else None
    if obj is not None:
        obj.setdefault("metadata", {})["namespace"] = namespace
    gvk = {"group": group_, "version": version_, "kind": kind_}
    gvr = {"group": group_, "version": version_, "resource": RESOURCES.get(kind_, "things")}
    options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions"}.get(operation)
    options = {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"} if options_kind else None
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": dict(gvk),
        "requestResource": dict(gvr),
        "name": source.get("metadata", {}).get("name", ""),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {
            "username": "opkey-admin",
            "groups": ["system:masters", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=00"]},
        },
        "object": obj,
        "oldObject": old,
        "dryRun": False,
        "options": options,
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return request


def wrap(obj: dict[str, Any] | None, **options: Any) -> bytes:
    """An ``admission.k8s.io/v1`` AdmissionReview request for ``obj``, as JSON bytes."""
    review = {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": request_dict(obj, **options),
    }
    return json.dumps(review).encode()
