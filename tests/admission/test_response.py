"""Planning and responses: settled images, outcomes per check, bounded and sanitised text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opkey import AdmissionReviewError
from opkey.admission import (
    AdmissionPlan,
    AdmissionRequest,
    ContainerImage,
    ContainerRole,
    ImageOutcome,
    Mode,
    decide,
    parse_admission_config,
    parse_admission_review,
    plan_admission,
    review_error_response,
)
from opkey.admission.response import (
    MAX_MESSAGE_CHARS,
    MAX_REASON_CHARS,
    MAX_WARNING_CHARS,
    MAX_WARNINGS_CHARS,
)
from tests.admission.reviews import load_object, wrap

DIGEST = "sha256:4c1e997385b8fb4ad4d1d3c7e5af7ff3f882e04d1fc45ee6a0d22b1c4b0d1c8c"
CONFIG = parse_admission_config(
    """
version = 1

[[rules]]
name = "acme-prod"
namespaces = ["prod"]
images = ["ghcr.io/acme/**", "registry.example/acme/**"]
policy = "release.toml"

[[rules]]
name = "nginx-audit"
namespaces = ["prod"]
images = ["docker.io/library/*"]
policy = "audit.toml"
mode = "warn"
require_digest = false
"""
)


def request_for(kind: str, namespace: str = "prod") -> AdmissionRequest:
    return parse_admission_review(wrap(load_object(kind), namespace=namespace))


def image(text: str, path: str = "spec.containers[0].image") -> ContainerImage:
    return ContainerImage(text, path, "c", ContainerRole.CONTAINER)


def test_plan_settles_what_the_config_decides_and_checks_the_rest() -> None:
    plan = plan_admission(request_for("deployment"), CONFIG)
    # api:2.1 is a tag under a require_digest rule; nginx@digest goes to the warn rule;
    # the init container api-migrate:2.1 is a tag too.
    assert [(c.image.image, c.rule.name) for c in plan.checks] == [
        (f"docker.io/library/nginx@{DIGEST}", "nginx-audit")
    ]
    assert [(v.image.image, v.allowed, v.rule) for v in plan.settled] == [
        ("registry.example/acme/api:2.1", False, "acme-prod"),
        ("registry.example/acme/api-migrate:2.1", False, "acme-prod"),
    ]
    assert "not pinned by digest; rule acme-prod requires registry.example/acme/api@sha256:" in (
        plan.settled[0].reason
    )
    response = plan.decide([plan.checks[0].passed()])
    assert not response.allowed
    assert response.code == 403
    assert response.message is not None
    assert response.message.startswith("opkey refused 2 of 3 images: spec.template.spec.")
    assert '"registry.example/acme/api:2.1"' in response.message
    assert "initContainers[0].image" in response.message


def test_all_checks_passing_admits() -> None:
    plan = plan_admission(request_for("pod"), parse_admission_config(_allow_tags_config()))
    assert len(plan.checks) == 2
    assert not plan.settled
    response = plan.decide([check.passed() for check in plan.checks])
    assert response.allowed
    assert response.to_dict() == {"uid": plan.request.uid, "allowed": True}


def _allow_tags_config() -> str:
    return """
version = 1
[[rules]]
name = "acme"
namespaces = ["prod"]
images = ["ghcr.io/acme/**"]
policy = "p.toml"
require_digest = false
"""


def test_a_check_without_a_outcome_fails() -> None:
    plan = plan_admission(request_for("pod"), parse_admission_config(_allow_tags_config()))
    response = plan.decide([plan.checks[0].passed()])
    assert not response.allowed
    assert response.message is not None
    assert response.message.endswith(
        'initContainers[0].image "ghcr.io/acme/config-fetcher:1.4": not verified'
    )


def test_a_outcome_for_a_foreign_image_is_a_programming_error() -> None:
    plan = plan_admission(request_for("pod"), parse_admission_config(_allow_tags_config()))
    with pytest.raises(ValueError, match="not checks of this plan"):
        plan.decide([ImageOutcome(image("x"), True)])


def test_warn_mode_failures_admit_with_a_warning() -> None:
    plan = plan_admission(request_for("statefulset"), _nginx_only_config("warn"))
    assert not plan.checks
    response = plan.decide([])
    assert response.allowed
    assert response.warnings[0] == (
        'opkey (warn): spec.template.spec.containers[0].image "postgres:16.4@' + DIGEST + '": '
        "no rule of the gate covers docker.io/library/postgres in namespace 'prod'"
    )
    assert len(response.warnings) == 3
    assert all(w.startswith("opkey (warn): spec.template.spec.") for w in response.warnings)
    assert (
        "no rule of the gate covers quay.io/prometheuscommunity/postgres-exporter"
        in (response.warnings[1])
    )


def _nginx_only_config(unmatched: str) -> Any:
    return parse_admission_config(
        f'version = 1\nunmatched = "{unmatched}"\n[[rules]]\nname = "n"\nnamespaces = ["x"]\n'
        'images = ["docker.io/library/nginx"]\npolicy = "p"\n'
    )


def test_unmatched_deny_and_allow() -> None:
    denied = plan_admission(request_for("job"), _nginx_only_config("deny")).decide([])
    assert not denied.allowed
    assert denied.message is not None
    assert "no rule of the gate covers ghcr.io/acme/backup in namespace 'prod'" in denied.message
    allowed = plan_admission(request_for("job"), _nginx_only_config("allow")).decide([])
    assert allowed.allowed
    assert allowed.warnings == ()


def test_an_invalid_reference_is_refused_before_any_rule() -> None:
    pod = load_object("pod")
    pod["spec"]["containers"][0]["image"] = "ghcr.io/Acme/web:1"
    request = parse_admission_review(wrap(pod, namespace="prod"))
    plan = plan_admission(request, parse_admission_config(_allow_tags_config()))
    assert plan.settled[0].image.image == "ghcr.io/Acme/web:1"
    assert plan.settled[0].reason.startswith("not a valid image reference (invalid repository")
    assert plan.settled[0].mode is Mode.ENFORCE


def test_response_review_shape_matches_what_the_api_server_reads() -> None:
    outcome = ImageOutcome(image("ghcr.io/acme/x:1"), False, "no signature", rule="r")
    response = decide(request_for("pod"), [outcome])
    review = json.loads(response.to_json())
    assert review == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": response.uid,
            "allowed": False,
            "status": {
                "status": "Failure",
                "code": 403,
                "reason": "Forbidden",
                "message": "opkey refused 1 of 1 image: spec.containers[0].image "
                '"ghcr.io/acme/x:1": no signature',
            },
        },
    }


def test_control_and_bidi_characters_are_escaped() -> None:
    """Through opkey's one sanitiser (``opkey.remote_text.printable``): every character that
    is not printable is shown as a visible escape, a no-break space and a private-use code
    point too."""
    evil = "ghcr.io/acme/x:1\u202egnp.exe\x1b[31m\n"
    outcome = ImageOutcome(image(evil), False, "bad\x00reason\u2028\xa0\U000f0000")
    response = decide(request_for("pod"), [outcome])
    assert response.message is not None
    assert "\\u202e" in response.message
    assert "\\u001b" in response.message  # the image is JSON-quoted first
    assert "bad\\x00reason\\u2028\\xa0\\U000f0000" in response.message
    assert response.message.isprintable()
    warned = decide(request_for("pod"), [ImageOutcome(image(evil), False, "x", mode=Mode.WARN)])
    assert warned.allowed
    assert warned.warnings
    assert all(w.isprintable() for w in warned.warnings)


def test_escapes_count_towards_the_limits() -> None:
    """An escape is up to ten characters for one: the reason's bound is on what is sent."""
    response = decide(
        request_for("pod"), [ImageOutcome(image("ghcr.io/a/b:1"), False, "\u202e" * 1000)]
    )
    assert response.message is not None
    reason = response.message.split('"ghcr.io/a/b:1": ', 1)[1]
    assert len(reason) <= MAX_REASON_CHARS
    assert reason.startswith("\\u202e\\u202e")
    assert reason.endswith("…")
    assert response.message.isprintable()
    plain = decide(request_for("pod"), [ImageOutcome(image("ghcr.io/a/b:1"), False, "r" * 400)])
    assert plain.message is not None
    assert plain.message.endswith(": " + "r" * (MAX_REASON_CHARS - 1) + "…")


def test_messages_are_bounded_and_count_what_is_left_out() -> None:
    outcomes = [
        ImageOutcome(
            image(f"ghcr.io/acme/{'x' * 300}{i}:1", f"spec.containers[{i}].image"),
            False,
            "r" * 1000,
        )
        for i in range(100)
    ]
    response = decide(request_for("pod"), outcomes)
    assert response.message is not None
    assert len(response.message) <= MAX_MESSAGE_CHARS
    assert response.message.startswith("opkey refused 100 of 100 images: ")
    assert response.message.endswith(" more")
    shown = response.message.count("spec.containers[")
    assert f"and {100 - shown} more" in response.message
    warned = decide(
        request_for("pod"),
        [ImageOutcome(v.image, False, v.reason, mode=Mode.WARN) for v in outcomes],
    )
    assert warned.allowed
    assert all(len(w) <= MAX_WARNING_CHARS for w in warned.warnings)
    assert sum(len(w) for w in warned.warnings) <= MAX_WARNINGS_CHARS
    assert warned.warnings[-1].endswith("more warnings not shown")


def test_identical_warnings_are_given_once() -> None:
    outcome = ImageOutcome(image("ghcr.io/acme/x:1"), False, "x", mode=Mode.WARN)
    assert len(decide(request_for("pod"), [outcome, outcome]).warnings) == 1


def test_review_error_response_answers_a_request_with_a_uid() -> None:
    body = json.loads(wrap(load_object("pod"), namespace="prod"))
    body["request"]["object"]["spec"]["containers"] = []
    request = parse_admission_review(json.dumps(body))
    with pytest.raises(AdmissionReviewError) as info:
        plan_admission(request, CONFIG)
    response = review_error_response(info.value)
    assert response is not None
    assert response.uid == request.uid
    assert not response.allowed
    assert response.code == 400
    assert response.message == (
        "opkey cannot judge this request: object.spec.containers: empty; "
        "a pod spec lists at least one container"
    )
    assert review_error_response(AdmissionReviewError("no uid here")) is None


def test_plan_is_frozen() -> None:
    plan = plan_admission(request_for("pod"), CONFIG)
    assert isinstance(plan, AdmissionPlan)
    with pytest.raises(AttributeError):
        plan.checks = ()  # type: ignore[misc]
