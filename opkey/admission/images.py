"""Every container image an admitted object would run, and where in the object it is written.

A gate that misses one image lets it run unchecked, so extraction is exhaustive and strict:

* the workload kinds whose objects hold a pod spec are listed in :data:`WORKLOAD_KINDS` with the
  path to it (``spec`` of a Pod, ``spec.template.spec`` of Deployments, ReplicaSets,
  StatefulSets, DaemonSets, Jobs and ReplicationControllers, ``spec.jobTemplate.spec.template
  .spec`` of CronJobs). A request for any other kind, or another version of these, is an
  :class:`~opkey.errors.AdmissionReviewError`: the webhook's rules sent something the gate does
  not know how to read, and guessing would let it through;
* in the pod spec, every entry of ``containers``, ``initContainers`` and
  ``ephemeralContainers`` yields one :class:`ContainerImage` (``containers`` must not be empty,
  every entry must be an object with a non-empty ``name`` and ``image`` string);
* the ``pods/ephemeralcontainers`` subresource (``kubectl debug``) sends the whole Pod; it can
  change only ``ephemeralContainers``, and all images of the Pod are read as for an update.

:func:`images_to_verify` says what an admission request asks the gate to check: every image of a
CREATE; on UPDATE, the images that are new or moved (an image string not at the same path in the
old object), so that relabelling a running Deployment does not re-judge images admitted
earlier, while changing an image, or adding a debug container, is judged; nothing for DELETE
and CONNECT, which start no container.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from opkey.admission.review import AdmissionRequest, GroupVersionKind, Operation
from opkey.errors import AdmissionReviewError

__all__ = [
    "EPHEMERAL_CONTAINERS",
    "WORKLOAD_KINDS",
    "ContainerImage",
    "ContainerRole",
    "images_of_object",
    "images_to_verify",
    "pod_spec_path",
]

#: Kinds that hold a pod spec, and the path to it, by (group, version, kind).
WORKLOAD_KINDS: Mapping[tuple[str, str, str], tuple[str, ...]] = {
    ("", "v1", "Pod"): ("spec",),
    ("", "v1", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "v1", "Deployment"): ("spec", "template", "spec"),
    ("apps", "v1", "ReplicaSet"): ("spec", "template", "spec"),
    ("apps", "v1", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "v1", "DaemonSet"): ("spec", "template", "spec"),
    ("batch", "v1", "Job"): ("spec", "template", "spec"),
    ("batch", "v1", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
#: The subresource through which ``kubectl debug`` adds ephemeral containers to a Pod.
EPHEMERAL_CONTAINERS = "ephemeralcontainers"
#: Most containers read from one pod spec (Kubernetes has no limit; real pods have a handful).
MAX_CONTAINERS = 256


class ContainerRole(str, Enum):
    """Which list of the pod spec a container is in (the value is the member name)."""

    CONTAINER = "containers"
    INIT = "initContainers"
    EPHEMERAL = "ephemeralContainers"


@dataclass(frozen=True, slots=True)
class ContainerImage:
    """One image as written in the object, and where.

    ``path`` is the image's location in the object, dotted with indices
    (``spec.jobTemplate.spec.template.spec.initContainers[0].image``): what a message shows so
    that the user can find the line to fix.
    """

    image: str
    path: str
    container: str
    role: ContainerRole


def pod_spec_path(kind: GroupVersionKind) -> tuple[str, ...] | None:
    """The path to the pod spec in objects of ``kind``, or ``None`` if it holds none we read."""
    return WORKLOAD_KINDS.get((kind.group, kind.version, kind.kind))


def _fail(uid: str | None, path: str, message: str, found: object = None) -> AdmissionReviewError:
    return AdmissionReviewError(f"{path}: {message}", uid=uid, found=found)


def images_of_object(
    obj: Mapping[str, Any], kind: GroupVersionKind, *, uid: str | None = None, where: str = ""
) -> tuple[ContainerImage, ...]:
    """Every container image of ``obj``, an object of ``kind``, in document order.

    ``where`` prefixes paths in error messages (``object``); ``uid`` goes into the errors.
    """
    steps = pod_spec_path(kind)
    if steps is None:
        known = ", ".join(str(GroupVersionKind(*key)) for key in WORKLOAD_KINDS)
        raise AdmissionReviewError(
            f"a {kind} holds no pod spec this gate reads (it reads {known}); "
            "the webhook's rules should not send it",
            uid=uid,
            found=str(kind),
        )
    node: Any = obj
    path = ""
    for step in steps:
        path = f"{path}.{step}" if path else step
        node = node.get(step) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            shown = f"{where}.{path}" if where else path
            raise _fail(uid, shown, f"a {kind.kind} needs an object here (its pod spec)")
    found: list[ContainerImage] = []
    for role in ContainerRole:
        entries = node.get(role.value)
        list_path = f"{path}.{role.value}"
        shown_list = f"{where}.{list_path}" if where else list_path
        if entries is None:
            if role is ContainerRole.CONTAINER:
                raise _fail(uid, shown_list, "required; a pod spec lists at least one container")
            continue
        if not isinstance(entries, (list, tuple)):
            raise _fail(uid, shown_list, "expected an array of containers")
        if role is ContainerRole.CONTAINER and not entries:
            raise _fail(uid, shown_list, "empty; a pod spec lists at least one container")
        for index, entry in enumerate(entries):
            entry_path = f"{list_path}[{index}]"
            shown = f"{where}.{entry_path}" if where else entry_path
            if not isinstance(entry, Mapping):
                raise _fail(uid, shown, "expected a container object")
            name = entry.get("name")
            if not isinstance(name, str) or not name:
                raise _fail(uid, f"{shown}.name", "expected a non-empty string", found=name)
            image = entry.get("image")
            if not isinstance(image, str) or not image:
                raise _fail(
                    uid,
                    f"{shown}.image",
                    f"container {name!r} has no image (expected a non-empty string)",
                    found=image,
                )
            found.append(ContainerImage(image, f"{entry_path}.image", name, role))
            if len(found) > MAX_CONTAINERS:
                raise _fail(uid, shown, f"more than {MAX_CONTAINERS} containers")
    return tuple(found)


def images_to_verify(request: AdmissionRequest) -> tuple[ContainerImage, ...]:
    """The images ``request`` asks the gate to judge (see the module docstring)."""
    if request.operation not in (Operation.CREATE, Operation.UPDATE):
        return ()
    if request.sub_resource not in ("", EPHEMERAL_CONTAINERS) or (
        request.sub_resource == EPHEMERAL_CONTAINERS and request.kind.kind != "Pod"
    ):
        raise AdmissionReviewError(
            f"subresource {request.resource_path} of a {request.kind} is not one this gate "
            "judges (only the object itself and pods/ephemeralcontainers); "
            "the webhook's rules should not send it",
            uid=request.uid,
            found=request.resource_path,
        )
    assert request.object is not None  # parse_admission_review requires it for CREATE/UPDATE
    if not request.namespace and pod_spec_path(request.kind) is not None:
        raise AdmissionReviewError(
            f"request.namespace: required for a {request.kind} (a namespaced kind)",
            uid=request.uid,
        )
    images = images_of_object(request.object, request.kind, uid=request.uid, where="object")
    if request.operation is Operation.CREATE:
        return images
    assert request.old_object is not None
    before = {
        (i.path, i.image)
        for i in images_of_object(
            request.old_object, request.kind, uid=request.uid, where="oldObject"
        )
    }
    return tuple(i for i in images if (i.path, i.image) not in before)
