"""What the gate must do for one request: which images to verify under which rule.

:func:`plan_admission` reads the request's images (:func:`~opkey.admission.images.
images_to_verify`) and the configuration, and settles every image it can without I/O:

* an image string that is not a valid reference is refused;
* an image that no rule covers is refused, warned about or admitted, as ``unmatched`` says;
* an image a ``require_digest`` rule covers that is not pinned by digest is refused (or warned
  about, under a ``warn`` rule): a validating webhook cannot rewrite the tag, and a tag may
  point elsewhere by the time the kubelet pulls it.

Every other image becomes an :class:`ImageCheck` for the I/O edge: resolve the reference (a
digest as written, or a tag under a rule that allows tags), verify it against the rule's policy
file, and give back :meth:`ImageCheck.passed` or :meth:`ImageCheck.failed`.
:meth:`AdmissionPlan.decide` then builds the response; a check left without an outcome counts as
failed, so a forgotten check can never admit an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from opkey.admission.config import AdmissionConfig, AdmissionRule, Mode, Unmatched
from opkey.admission.images import ContainerImage, images_to_verify
from opkey.admission.response import AdmissionResponse, ImageOutcome, decide
from opkey.admission.review import AdmissionRequest
from opkey.errors import ConfigError
from opkey.registry.reference import ImageReference

__all__ = ["AdmissionPlan", "ImageCheck", "plan_admission"]

#: Distinct image strings whose parsed reference is remembered (a gate sees the same few
#: images again and again; a reference is an immutable value, so sharing it is safe).
REFERENCE_CACHE_SIZE = 4096


@lru_cache(maxsize=REFERENCE_CACHE_SIZE)
def _parse_reference(text: str) -> ImageReference:
    return ImageReference.parse(text)


@dataclass(frozen=True, slots=True)
class ImageCheck:
    """An image that ``rule`` requires to be verified (``reference`` is its parsed form)."""

    image: ContainerImage
    reference: ImageReference
    rule: AdmissionRule

    def passed(self) -> ImageOutcome:
        """The outcome for an image that satisfied the rule's policy."""
        return ImageOutcome(self.image, True, mode=self.rule.mode, rule=self.rule.name)

    def failed(self, reason: str) -> ImageOutcome:
        """The outcome for an image that did not (``reason``: the verification error)."""
        return ImageOutcome(self.image, False, reason, mode=self.rule.mode, rule=self.rule.name)


@dataclass(frozen=True, slots=True)
class AdmissionPlan:
    """The images of one request: those still to verify, and those the configuration settled."""

    request: AdmissionRequest
    checks: tuple[ImageCheck, ...]
    settled: tuple[ImageOutcome, ...]

    def decide(self, outcomes: Sequence[ImageOutcome]) -> AdmissionResponse:
        """The response, from the settled outcomes and one outcome per check.

        A check without an outcome fails ("not verified"); an outcome for an image that is not a
        check of this plan is a programming error (``ValueError``).
        """
        given = {(v.image.path, v.image.image): v for v in outcomes}
        expected = {(c.image.path, c.image.image) for c in self.checks}
        unknown = set(given) - expected
        if unknown:
            raise ValueError(f"outcomes for images that are not checks of this plan: {unknown}")
        results = list(self.settled)
        for check in self.checks:
            outcome = given.get((check.image.path, check.image.image))
            results.append(outcome if outcome is not None else check.failed("not verified"))
        return decide(self.request, results)


def _settle(
    image: ContainerImage, namespace: str, config: AdmissionConfig
) -> ImageOutcome | ImageCheck:
    try:
        reference = _parse_reference(image.image)
    except ConfigError as exc:
        return ImageOutcome(image, False, f"not a valid image reference ({exc})")
    rule = config.rule_for(namespace, reference.name)
    if rule is None:
        if config.unmatched is Unmatched.ALLOW:
            return ImageOutcome(image, True)
        mode = Mode.WARN if config.unmatched is Unmatched.WARN else Mode.ENFORCE
        return ImageOutcome(
            image,
            False,
            f"no rule of the gate covers {reference.name} in namespace {namespace!r}",
            mode=mode,
        )
    if rule.require_digest and reference.digest is None:
        return ImageOutcome(
            image,
            False,
            f"not pinned by digest; rule {rule.name} requires {reference.name}@sha256:…",
            mode=rule.mode,
            rule=rule.name,
        )
    return ImageCheck(image, reference, rule)


def plan_admission(request: AdmissionRequest, config: AdmissionConfig) -> AdmissionPlan:
    """The plan for ``request`` under ``config``.

    Raises :class:`~opkey.errors.AdmissionReviewError` when the request's images cannot be read
    (see :func:`~opkey.admission.images.images_to_verify`).
    """
    checks: list[ImageCheck] = []
    settled: list[ImageOutcome] = []
    for image in images_to_verify(request):
        outcome = _settle(image, request.namespace, config)
        if isinstance(outcome, ImageCheck):
            checks.append(outcome)
        else:
            settled.append(outcome)
    return AdmissionPlan(request, tuple(checks), tuple(settled))
