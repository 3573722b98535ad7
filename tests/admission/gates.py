"""The gate as ``opkey admission serve`` builds it, for tests of the gate in any directory.

* ``make_gate``: a fixture; ``make_gate(policy, **options)`` builds a :class:`Gate` with
  :func:`opkey.admission.service.build_gate` from :class:`ServeOptions` (the TLS files are never
  read: nothing listens) and closes every gate it made after the test;
* :func:`judge`: the gate's judgement of a review of one Pod running ``images``.

A test module outside ``tests/admission`` imports the fixture by name (and lists it in
``__all__``, so the import is seen as used).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opkey.admission.gate import Gate, Judgement
from opkey.admission.service import ServeOptions, build_gate
from tests.admission.serving import pod, review

__all__ = ["judge", "make_gate"]


@pytest.fixture
def make_gate(tmp_path: Path) -> Iterator[Callable[..., Gate]]:
    """``make(policy, **options)``: a gate under the ``--policy`` file ``policy``."""
    made: list[Gate] = []

    def make(policy: Path, **options: object) -> Gate:
        settings = ServeOptions(
            listen="127.0.0.1:0",
            tls_cert=tmp_path / "unused.pem",
            tls_key=tmp_path / "unused-key.pem",
            policy=policy,
            **options,  # type: ignore[arg-type]
        )
        gate = build_gate(settings)
        made.append(gate)
        return gate

    yield make
    for gate in made:
        gate.close()


def judge(gate: Gate, *images: str, namespace: str = "apps") -> Judgement:
    """The gate's judgement of a review of a Pod ``web`` in ``namespace`` running ``images``."""
    return asyncio.run(gate.judge(review(pod("web", *images, namespace=namespace))))
