"""The gate's answer: an ``admission.k8s.io/v1`` AdmissionReview response, bounded and clean.

:func:`decide` turns one outcome per image into an :class:`AdmissionResponse`: denied when any
image fails in ``enforce`` mode (``status.code`` 403, a message naming every such image, its
path in the object and why), admitted otherwise, with one ``warnings`` entry per image that
failed in ``warn`` mode. :func:`review_error_response` answers a request that could not be read.

Text in a response reaches a person's terminal through ``kubectl`` and the API server's logs,
and much of it comes from the request (image strings are whatever the submitter wrote), so:

* every character that is not printable (controls, format characters such as bidirectional
  overrides and zero-width characters, line separators) is shown as a visible escape by
  opkey's one sanitiser, :func:`opkey.remote_text.printable` (``\\x1b``, ``\\u202e``); the API
  server also drops any warning that holds a control character, which would hide why an image
  was only admitted with a warning;
* images and reasons are shortened (:data:`MAX_IMAGE_CHARS`, :data:`MAX_REASON_CHARS`), the
  message to :data:`MAX_MESSAGE_CHARS` (it lists as many failures as fit and counts the rest);
* each warning stays within the API server's 256 characters, and all within its 4096.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opkey.admission.config import Mode
from opkey.admission.images import ContainerImage
from opkey.admission.review import API_VERSION, AdmissionRequest
from opkey.errors import AdmissionReviewError
from opkey.remote_text import printable

__all__ = [
    "MAX_IMAGE_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_REASON_CHARS",
    "MAX_WARNINGS_CHARS",
    "MAX_WARNING_CHARS",
    "AdmissionResponse",
    "ImageOutcome",
    "decide",
    "review_error_response",
]

#: Longest image string quoted in a message or warning.
MAX_IMAGE_CHARS = 160
#: Longest reason given for one image.
MAX_REASON_CHARS = 300
#: Longest ``status.message``.
MAX_MESSAGE_CHARS = 3000
#: The API server shortens warnings to 256 characters once they add up to 4096 (and drops any
#: beyond): each warning is kept within the first, and all of them within the second.
MAX_WARNING_CHARS = 256
MAX_WARNINGS_CHARS = 4096
_ELLIPSIS = "…"


def _clean(text: str, limit: int) -> str:
    """``text`` made printable, at most ``limit`` characters in all (its escapes included).

    :func:`~opkey.remote_text.printable` keeps ``limit`` characters of the original, each
    escaped as needed; the response's limits are on what is sent, so the escaped text is cut
    once more.
    """
    return _shorten(printable(text, limit=limit), limit)


def _shorten(text: str, limit: int) -> str:
    if len(text) > limit:
        return text[: limit - 1] + _ELLIPSIS
    return text


def _quote(text: str, limit: int) -> str:
    """``text`` shortened, JSON-quoted and made printable: ``"ghcr.io/acme/app:1"``."""
    quoted = json.dumps(_shorten(text, limit), ensure_ascii=False)
    return printable(quoted, limit=len(quoted))


@dataclass(frozen=True, slots=True)
class ImageOutcome:
    """The outcome for one image: admitted or not, why, and under which mode.

    ``reason`` says why a failed image failed (a verification error's message, "not pinned by
    digest"…); ``rule`` names the configuration rule that judged it, if one did.
    """

    image: ContainerImage
    allowed: bool
    reason: str = ""
    mode: Mode = Mode.ENFORCE
    rule: str | None = None

    def describe(self) -> str:
        """``spec.containers[0].image "ghcr.io/acme/app:1": reason`` (sanitised, bounded)."""
        reason = _clean(self.reason or "refused", MAX_REASON_CHARS)
        return f"{self.image.path} {_quote(self.image.image, MAX_IMAGE_CHARS)}: {reason}"


@dataclass(frozen=True, slots=True)
class AdmissionResponse:
    """An admission response: what :meth:`to_json` sends back to the API server."""

    uid: str
    allowed: bool
    code: int | None = None
    reason: str | None = None
    message: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``response`` stanza of the review."""
        response: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if self.code is not None or self.message is not None:
            status: dict[str, Any] = {"status": "Success" if self.allowed else "Failure"}
            if self.code is not None:
                status["code"] = self.code
            if self.reason is not None:
                status["reason"] = self.reason
            if self.message is not None:
                status["message"] = self.message
            response["status"] = status
        if self.warnings:
            response["warnings"] = list(self.warnings)
        return response

    def to_review(self) -> dict[str, Any]:
        """The whole ``AdmissionReview`` object."""
        return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": self.to_dict()}

    def to_json(self) -> bytes:
        """The HTTP response body (compact JSON, UTF-8)."""
        return json.dumps(self.to_review(), ensure_ascii=False, separators=(",", ":")).encode()


def _join_bounded(head: str, items: Sequence[str], limit: int) -> str:
    """``head`` then the items, ``; ``-separated, as many as fit in ``limit`` characters."""
    text = head
    for index, item in enumerate(items):
        rest = len(items) - index
        more = f"; and {rest} more" if rest > 1 else ""
        separator = ": " if index == 0 else "; "
        if len(text) + len(separator) + len(item) + len(more) > limit:
            return text + (f"; and {rest} more" if index else f" ({rest} not shown)")
        text += separator + item
    return text


def _bounded_warnings(items: Sequence[str]) -> tuple[str, ...]:
    kept: list[str] = []
    total = 0
    for index, item in enumerate(dict.fromkeys(items)):
        text = _shorten(item, MAX_WARNING_CHARS)
        if total + len(text) > MAX_WARNINGS_CHARS - 64:
            kept.append(f"opkey: {len(items) - index} more warnings not shown")
            break
        kept.append(text)
        total += len(text)
    return tuple(kept)


def decide(request: AdmissionRequest, outcomes: Sequence[ImageOutcome]) -> AdmissionResponse:
    """The response for ``request`` given one outcome per image judged.

    Denied (403) if any outcome failed in ``enforce`` mode; failures in ``warn`` mode become
    warnings either way. No outcomes (nothing to judge) means admitted.
    """
    refused = [v for v in outcomes if not v.allowed and v.mode is Mode.ENFORCE]
    warned = [v for v in outcomes if not v.allowed and v.mode is Mode.WARN]
    warnings = _bounded_warnings(
        [f"opkey (warn{f', rule {v.rule}' if v.rule else ''}): {v.describe()}" for v in warned]
    )
    if not refused:
        return AdmissionResponse(uid=request.uid, allowed=True, warnings=warnings)
    count = len({(v.image.path, v.image.image) for v in outcomes})
    noun = "image" if count == 1 else "images"
    head = f"opkey refused {len(refused)} of {count} {noun}"
    message = _join_bounded(head, [v.describe() for v in refused], MAX_MESSAGE_CHARS)
    return AdmissionResponse(
        uid=request.uid,
        allowed=False,
        code=403,
        reason="Forbidden",
        message=message,
        warnings=warnings,
    )


def review_error_response(error: AdmissionReviewError) -> AdmissionResponse | None:
    """A denial (400) naming why the request could not be read, if its ``uid`` is known.

    Without a ``uid`` no response can be matched to the request: the server answers the HTTP
    call with an error status instead, and the webhook's ``failurePolicy: Fail`` refuses it.
    """
    if error.uid is None:
        return None
    message = _clean(f"opkey cannot judge this request: {error}", MAX_MESSAGE_CHARS)
    return AdmissionResponse(
        uid=error.uid, allowed=False, code=400, reason="BadRequest", message=message
    )
