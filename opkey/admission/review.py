"""Reading ``admission.k8s.io/v1`` AdmissionReview requests, strictly and within limits.

The API server POSTs one ``AdmissionReview`` per admission call (schema: ``spec/admission.md``).
This module turns its bytes into an :class:`AdmissionRequest` or raises
:class:`~opkey.errors.AdmissionReviewError`; it does no I/O and reads no clock.

Why strict: a gate that guesses lets a request it misread through. So

* the body is bounded in size (:data:`MAX_REVIEW_BYTES`) and nesting (:data:`MAX_REVIEW_DEPTH`)
  before it is parsed, and parsed by :func:`opkey.jose.parse_json` (no duplicate member names,
  no ``NaN``, no lone surrogates): a duplicated ``image`` key must not be read one way here and
  another way by the API server;
* only ``admission.k8s.io/v1`` is read. ``v1beta1`` is refused with a message that says to list
  only ``v1`` in the webhook's ``admissionReviewVersions`` (the API server sends the first
  version of that list it supports, so a ``v1``-only webhook never receives ``v1beta1``);
* the review and request members are the ones Kubernetes defines; an unknown member, a wrong
  type or a missing ``uid``, ``kind``, ``resource``, ``operation`` or ``userInfo`` is an error
  that names the member (``request.kind.kind: expected a string, found integer 3``);
* the object must be of the kind the request says (``apiVersion``/``kind``), and in the
  request's namespace when it names one.

The admitted objects themselves (``object``, ``oldObject``, ``options``) are not checked against
Kubernetes' schemas (the API server validated them before calling a validating webhook), only
kept read-only; :mod:`opkey.admission.images` reads what the gate needs from them, strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from opkey.errors import AdmissionReviewError, FormatError
from opkey.jose import check_size, freeze_json, parse_json_object

__all__ = [
    "API_VERSION",
    "MAX_REVIEW_BYTES",
    "MAX_REVIEW_DEPTH",
    "AdmissionRequest",
    "GroupVersionKind",
    "GroupVersionResource",
    "Operation",
    "UserInfo",
    "parse_admission_review",
]

#: The only AdmissionReview version read (and written).
API_VERSION = "admission.k8s.io/v1"
_KIND = "AdmissionReview"
_V1BETA1 = "admission.k8s.io/v1beta1"

#: Largest review body accepted. The API server refuses request bodies over 3 MiB and etcd
#: objects over 1.5 MiB; a review carries the object and the old object, in JSON, so 8 MiB holds
#: every review a real API server sends while bounding what one request can make the gate parse.
MAX_REVIEW_BYTES = 8 * 1024 * 1024
#: Deepest nesting accepted. A minimal CronJob's review nests 15 levels (its ``managedFields``);
#: affinity rules, volumes and deeper ``managedFields`` add several more.
MAX_REVIEW_DEPTH = 64
#: Longest ``uid`` accepted: the API server sends a 36-character UUID.
MAX_UID_LENGTH = 128

_REVIEW_KEYS = ("apiVersion", "kind", "request")
_REQUEST_KEYS = (
    "uid",
    "kind",
    "resource",
    "subResource",
    "requestKind",
    "requestResource",
    "requestSubResource",
    "name",
    "namespace",
    "operation",
    "userInfo",
    "object",
    "oldObject",
    "dryRun",
    "options",
)
_USER_KEYS = ("username", "uid", "groups", "extra")


class Operation(str, Enum):
    """The operation being admitted."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    CONNECT = "CONNECT"


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    """A fully qualified type: ``group`` is ``""`` for the core group (Pods)."""

    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        """``apiVersion`` as objects write it: ``apps/v1``, or ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.api_version} {self.kind}"


@dataclass(frozen=True, slots=True)
class GroupVersionResource:
    """A fully qualified resource (``apps/v1 deployments``)."""

    group: str
    version: str
    resource: str

    def __str__(self) -> str:
        prefix = f"{self.group}/{self.version}" if self.group else self.version
        return f"{prefix} {self.resource}"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """Who made the request, as the API server authenticated them."""

    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """One admission request, read from an ``admission.k8s.io/v1`` AdmissionReview.

    ``object``, ``old_object`` and ``options`` are read-only views of the JSON objects (``None``
    when absent or ``null``: ``object`` for DELETE, ``old_object`` for CREATE). ``sub_resource``
    is ``""`` for the main resource.
    """

    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    operation: Operation
    user_info: UserInfo
    sub_resource: str = ""
    request_kind: GroupVersionKind | None = None
    request_resource: GroupVersionResource | None = None
    request_sub_resource: str = ""
    name: str = ""
    namespace: str = ""
    object: Mapping[str, Any] | None = field(default=None, repr=False)
    old_object: Mapping[str, Any] | None = field(default=None, repr=False)
    options: Mapping[str, Any] | None = field(default=None, repr=False)
    dry_run: bool = False

    @property
    def resource_path(self) -> str:
        """``pods``, or ``pods/ephemeralcontainers`` for a subresource."""
        if self.sub_resource:
            return f"{self.resource.resource}/{self.sub_resource}"
        return self.resource.resource


def _quote(text: str) -> str:
    """``text`` quoted for an error message: at most 40 characters, non-ASCII escaped."""
    shown = text if len(text) <= 40 else text[:40] + "..."
    return repr(shown.encode("unicode_escape").decode("ascii"))


def _describe(value: Any) -> str:
    """A found value in an error message, short and safe to print."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"string {_quote(value)}"
    if isinstance(value, (int, float)):
        return f"{'integer' if isinstance(value, int) else 'number'} {value}"
    return type(value).__name__  # pragma: no cover - JSON has no other types


class _Reader:
    """Typed access to one JSON object, with its key path and the request's uid for errors."""

    def __init__(self, table: Mapping[str, Any], path: str, uid: str | None) -> None:
        self.table = table
        self.path = path
        self.uid = uid

    def error(self, key: str | None, message: str, found: object = None) -> AdmissionReviewError:
        where = f"{self.path}.{key}" if key and self.path else (key or self.path or _KIND)
        return AdmissionReviewError(f"{where}: {message}", uid=self.uid, found=found)

    def only(self, allowed: tuple[str, ...]) -> None:
        for key in self.table:
            if key not in allowed:
                raise self.error(
                    None, f"unknown member {_quote(key)}; expected {', '.join(allowed)}", found=key
                )

    def string(self, key: str, *, required: bool = False, non_empty: bool = False) -> str:
        if key not in self.table:
            if required:
                raise self.error(key, "required")
            return ""
        value = self.table[key]
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, found {_describe(value)}", found=value)
        if non_empty and not value:
            raise self.error(key, "must not be empty")
        return value

    def table_of(self, key: str, *, required: bool = False) -> _Reader | None:
        value = self.table.get(key)
        if value is None:
            if required:
                raise self.error(key, "required" if key not in self.table else "must not be null")
            return None
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected an object, found {_describe(value)}", found=value)
        return _Reader(value, f"{self.path}.{key}" if self.path else key, self.uid)

    def object_or_null(self, key: str) -> Mapping[str, Any] | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected an object or null, found {_describe(value)}")
        result: Mapping[str, Any] = freeze_json(value)
        return result


def parse_admission_review(
    body: bytes | str,
    *,
    max_bytes: int = MAX_REVIEW_BYTES,
    max_depth: int = MAX_REVIEW_DEPTH,
) -> AdmissionRequest:
    """Parse an ``admission.k8s.io/v1`` AdmissionReview request body.

    Raises :class:`~opkey.errors.AdmissionReviewError` for anything but a well-formed v1 review
    request; its ``uid`` is set once the request's ``uid`` has been read.
    """
    if not isinstance(body, (bytes, str)):
        raise TypeError(f"body must be bytes or str, not {type(body).__name__}")
    check_size(len(body), max_bytes, "AdmissionReview", error=AdmissionReviewError)
    try:
        data = parse_json_object(
            body, what="AdmissionReview", max_length=max_bytes, max_depth=max_depth
        )
    except FormatError as exc:
        raise AdmissionReviewError(str(exc)) from None
    review = _Reader(data, "", None)
    api_version = review.string("apiVersion", required=True)
    if api_version == _V1BETA1:
        raise review.error(
            "apiVersion",
            f"{_V1BETA1} is not accepted; list only v1 in the webhook's admissionReviewVersions",
            found=api_version,
        )
    if api_version != API_VERSION:
        raise review.error(
            "apiVersion", f"expected {API_VERSION}, found {_describe(api_version)}", api_version
        )
    kind = review.string("kind", required=True)
    if kind != _KIND:
        raise review.error("kind", f"expected {_KIND}, found {_describe(kind)}", found=kind)
    if "response" in data:
        raise review.error("response", "a review sent for a decision carries no response yet")
    review.only(_REVIEW_KEYS)
    request = review.table_of("request", required=True)
    assert request is not None
    return _parse_request(request)


def _parse_uid(request: _Reader) -> str:
    uid = request.string("uid", required=True, non_empty=True)
    if len(uid) > MAX_UID_LENGTH:
        raise request.error("uid", f"{len(uid)} characters is more than {MAX_UID_LENGTH}")
    if not all(" " < c < "\x7f" for c in uid):
        raise request.error("uid", "must be printable ASCII without spaces", found=uid)
    return uid


def _parse_request(request: _Reader) -> AdmissionRequest:
    uid = _parse_uid(request)
    request.uid = uid
    request.only(_REQUEST_KEYS)
    kind = _parse_gvk(request.table_of("kind", required=True))
    resource = _parse_gvr(request.table_of("resource", required=True))
    request_kind = _parse_gvk(request.table_of("requestKind"))
    request_resource = _parse_gvr(request.table_of("requestResource"))
    assert kind is not None
    assert resource is not None
    operation_name = request.string("operation", required=True)
    try:
        operation = Operation(operation_name)
    except ValueError:
        names = ", ".join(op.value for op in Operation)
        raise request.error(
            "operation", f"expected one of {names}, found {_describe(operation_name)}"
        ) from None
    user = request.table_of("userInfo", required=True)
    assert user is not None
    dry_run = request.table.get("dryRun", False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        raise request.error("dryRun", f"expected a boolean, found {_describe(dry_run)}")
    parsed = AdmissionRequest(
        uid=uid,
        kind=kind,
        resource=resource,
        operation=operation,
        user_info=_parse_user(user),
        sub_resource=request.string("subResource"),
        request_kind=request_kind,
        request_resource=request_resource,
        request_sub_resource=request.string("requestSubResource"),
        name=request.string("name"),
        namespace=request.string("namespace"),
        object=request.object_or_null("object"),
        old_object=request.object_or_null("oldObject"),
        options=request.object_or_null("options"),
        dry_run=dry_run,
    )
    if operation in (Operation.CREATE, Operation.UPDATE) and parsed.object is None:
        raise request.error("object", f"required for {operation.value}")
    if operation is Operation.UPDATE and parsed.old_object is None:
        raise request.error("oldObject", "required for UPDATE")
    for key, obj in (("object", parsed.object), ("oldObject", parsed.old_object)):
        # CONNECT carries connect options (PodExecOptions…), not an object of the kind.
        if obj is not None and operation is not Operation.CONNECT:
            _check_object_identity(request, key, obj, parsed)
    return parsed


def _parse_gvk(table: _Reader | None) -> GroupVersionKind | None:
    return None if table is None else GroupVersionKind(*_group_version(table, "kind"))


def _parse_gvr(table: _Reader | None) -> GroupVersionResource | None:
    return None if table is None else GroupVersionResource(*_group_version(table, "resource"))


def _group_version(table: _Reader, last: str) -> tuple[str, str, str]:
    """``group``, ``version`` and the kind or resource name: what both API coordinates hold."""
    table.only(("group", "version", last))
    return (
        table.string("group"),
        table.string("version", required=True, non_empty=True),
        table.string(last, required=True, non_empty=True),
    )


def _parse_user(user: _Reader) -> UserInfo:
    user.only(_USER_KEYS)
    groups = user.table.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise user.error("groups", "expected an array of strings", found=groups)
    extra_reader = user.table_of("extra")
    extra: dict[str, tuple[str, ...]] = {}
    if extra_reader is not None:
        for key, values in extra_reader.table.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise extra_reader.error(key, "expected an array of strings", found=values)
            extra[key] = tuple(values)
    return UserInfo(
        username=user.string("username"),
        uid=user.string("uid"),
        groups=tuple(groups),
        extra=MappingProxyType(extra),
    )


def _check_object_identity(
    request: _Reader, key: str, obj: Mapping[str, Any], parsed: AdmissionRequest
) -> None:
    """The object is of the request's kind, and in its namespace when both name one."""
    reader = _Reader(obj, f"{request.path}.{key}" if request.path else key, parsed.uid)
    api_version = reader.string("apiVersion", required=True)
    kind = reader.string("kind", required=True)
    if (api_version, kind) != (parsed.kind.api_version, parsed.kind.kind):
        raise reader.error(
            None,
            f"is a {api_version} {kind}, but the request is for a {parsed.kind}",
            found=f"{api_version} {kind}",
        )
    metadata = reader.table_of("metadata")
    if metadata is None:
        return
    namespace = metadata.string("namespace")
    if namespace and parsed.namespace and namespace != parsed.namespace:
        raise metadata.error(
            "namespace",
            f"object is in namespace {namespace!r}, the request in {parsed.namespace!r}",
            found=namespace,
        )
