"""Admission core: what the gate spends on one review before and after verification.

A cached admission (every image's outcome remembered) costs the gate its HTTP handling plus
this core: strict parsing of the AdmissionReview (``parse_admission_review``), finding the images
and matching rules (``plan_admission``), and writing the response (``decide`` → ``to_json``).
The floor is what no gate can skip: ``json.loads`` of the same body and ``json.dumps`` of a
response. Inputs are real reviews captured from kube-apiserver (``tests/data/admission/
captured``): a Deployment CREATE (three images) and a CronJob CREATE (deep ``managedFields``).

Run alone with ``python -m benchmarks.bench_admission`` or through ``benchmarks/run.py``.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from benchmarks.harness import Figure, best_time, ratio_figure
from opkey.admission import parse_admission_config, parse_admission_review, plan_admission

__all__ = ["run"]

_CAPTURED = Path(__file__).resolve().parent.parent / "tests" / "data" / "admission" / "captured"
_CONFIG = parse_admission_config(
    """
version = 1
unmatched = "warn"

[[rules]]
name = "acme"
namespaces = ["capture-*"]
images = ["ghcr.io/acme/**", "registry.example/acme/**", "docker.io/library/*"]
policy = "release.toml"
require_digest = false
"""
)
#: The core's cost per review may be this many times the bare JSON round trip (strict parsing
#: with the duplicate-name hook, freezing, image and rule matching, sanitised response).
TARGET = 10.0


def _core(body: bytes) -> bytes:
    plan = plan_admission(parse_admission_review(body), _CONFIG)
    return plan.decide([check.passed() for check in plan.checks]).to_json()


def _floor(body: bytes) -> bytes:
    uid = json.loads(body)["request"]["uid"]
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    return json.dumps({**review, "response": {"uid": uid, "allowed": True}}).encode()


def run(context: dict[str, float] | None = None) -> list[Figure]:
    """One ratio figure per captured review."""
    figures = []
    for name in ("deployment-create", "cronjob-create"):
        body = (_CAPTURED / f"{name}.json").read_bytes()
        ours = best_time(functools.partial(_core, body), number=200)
        floor = best_time(functools.partial(_floor, body), number=200)
        figure = ratio_figure(
            f"admission core per review ({name}, {len(body)} bytes) vs JSON round trip",
            ours,
            floor,
            target=TARGET,
            floor_label="json",
        )
        figures.append(figure)
    return figures


if __name__ == "__main__":
    for figure in run():
        print(figure.to_dict(), file=sys.stdout)
