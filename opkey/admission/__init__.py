"""The admission gate's pure core: Kubernetes AdmissionReviews in, admission responses out.

opkey verifies images at deploy time as a validating admission webhook. This package holds
everything in that path that needs no I/O (schema and rules: ``spec/admission.md``)::

    from opkey.admission import load_admission_config, parse_admission_review, plan_admission

    config = load_admission_config("/etc/opkey/admission.toml")      # at start-up
    request = parse_admission_review(body)                            # per HTTP request
    plan = plan_admission(request, config)
    outcomes = [verify(check) for check in plan.checks]               # the I/O edge
    body = plan.decide(outcomes).to_json()

* :mod:`~opkey.admission.review`: strict ``admission.k8s.io/v1`` request parsing;
* :mod:`~opkey.admission.images`: every container image of a workload object, with its path;
* :mod:`~opkey.admission.config`: the TOML rules choosing a policy by namespace and image;
* :mod:`~opkey.admission.plan`: which images to verify under which rule, the rest settled;
* :mod:`~opkey.admission.response`: the bounded, sanitised response.

Around the core, with I/O (imported by name, not from this package, so that reading reviews
loads neither the registry client nor the HTTP server):

* :mod:`~opkey.admission.gate`: :class:`~opkey.admission.gate.Gate`, judging a review within a
  deadline: verdict cache, registry, ``verify_image``, fail-closed;
* :mod:`~opkey.admission.cache`: the verdict cache (repository, digest, policy fingerprint);
* :mod:`~opkey.admission.policies`: policy files loaded into verifiers, fingerprinted;
* :mod:`~opkey.admission.refresh`: provider keys refreshed in the background;
* :mod:`~opkey.admission.server`, :mod:`~opkey.admission.metrics`,
  :mod:`~opkey.admission.service`: the HTTPS server (aiohttp), Prometheus metrics (the
  ``admission`` extra), and their assembly for ``opkey admission serve``.

A review that cannot be read raises :class:`~opkey.errors.AdmissionReviewError`;
:func:`review_error_response` turns it into a denial when its ``uid`` is known.
"""

from __future__ import annotations

from opkey.admission.config import (
    AdmissionConfig,
    AdmissionRule,
    ImagePattern,
    Mode,
    NamespaceGlob,
    Unmatched,
    admission_config_from_dict,
    load_admission_config,
    parse_admission_config,
)
from opkey.admission.images import (
    ContainerImage,
    ContainerRole,
    images_of_object,
    images_to_verify,
    pod_spec_path,
)
from opkey.admission.plan import AdmissionPlan, ImageCheck, plan_admission
from opkey.admission.response import (
    AdmissionResponse,
    ImageOutcome,
    decide,
    review_error_response,
)
from opkey.admission.review import (
    AdmissionRequest,
    GroupVersionKind,
    GroupVersionResource,
    Operation,
    UserInfo,
    parse_admission_review,
)

__all__ = [
    "AdmissionConfig",
    "AdmissionPlan",
    "AdmissionRequest",
    "AdmissionResponse",
    "AdmissionRule",
    "ContainerImage",
    "ContainerRole",
    "GroupVersionKind",
    "GroupVersionResource",
    "ImageCheck",
    "ImageOutcome",
    "ImagePattern",
    "Mode",
    "NamespaceGlob",
    "Operation",
    "Unmatched",
    "UserInfo",
    "admission_config_from_dict",
    "decide",
    "images_of_object",
    "images_to_verify",
    "load_admission_config",
    "parse_admission_config",
    "parse_admission_review",
    "plan_admission",
    "pod_spec_path",
    "review_error_response",
]
