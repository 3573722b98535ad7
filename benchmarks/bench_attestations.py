"""Attestation benchmarks: one attestation layer verified, from its bytes to the decision,
against the summed cost of its primitive operations.

An item is what ``opkey verify`` reads for one attestation in a registry: the DSSE envelope
blob of an ``.att`` layer (or a referrer's) with its annotations (PK token, detached OSM over
the PAE, predicate type). Verifying it parses the envelope and the in-toto statement strictly
(the SLSA provenance predicate opkey writes for a GitHub job), checks the subject, verifies the
PK token under the trust, the OSM over the PAE and the DSSE signature, then decides a
requirement naming the predicate type, a condition on the predicate and the provenance
agreement with the signer's token.

The floor is :mod:`benchmarks.bench_core`'s for an image signature (the OP signature or
GQ256 exponentiations, the CIC and OSM ES256 verifies, the SHA3-256 commitment and PK token
hash, the key thumbprint) with the DSSE signature's ES256 verify over the PAE in place of
cosign's over the payload. *Cold* passes use a pool of distinct PK tokens and a fresh verifier;
*cached* ones verify the pool again with the PK tokens remembered: the floor is then the OSM
and DSSE verifies.

Run alone with ``python -m benchmarks.bench_attestations`` or through ``benchmarks/run.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import fixtures
from benchmarks.bench_core import (
    _clear_parse_caches,
    _fastest_backend,
    _Floor,
    _per_item,
    _primitives,
)
from benchmarks.harness import Figure, ratio_figure
from opkey.attestation import SignedAttestation
from opkey.digest import Digest
from opkey.intoto import SLSA_PROVENANCE_V1, Statement, Subject
from opkey.policy.predicates import PredicateCondition
from opkey.policy.signoff import SignerRequirement
from opkey.provenance import github_provenance
from opkey.verification.evidence import AttestationEvidence

__all__ = ["run"]

_IMAGE = Digest(fixtures.IMAGE_DIGEST)


def _layer(signer: Any) -> tuple[bytes, dict[str, str], SignedAttestation]:
    predicate = github_provenance(signer.pktoken.claims, server_url="https://github.com")
    statement = Statement.about(
        [Subject.of("registry.example/app", _IMAGE)], SLSA_PROVENANCE_V1, predicate
    )
    attestation = signer.attest(statement)
    return (
        attestation.envelope_bytes(),
        attestation.layer_annotations(SLSA_PROVENANCE_V1),
        attestation,
    )


def _ci_mint(provider: fixtures.Provider) -> Callable[[Any], str]:
    """The fixtures' GitHub-like claims, with the two a provenance also names."""

    def mint(claims: Any) -> str:
        extra = {"job_workflow_ref": claims["workflow_ref"], "run_attempt": "1"}
        return provider.mint({**claims, **extra})

    return mint


def _pipeline(
    provider: fixtures.Provider, *, use_gq: bool, pool: int, figures: list[Figure]
) -> None:
    kind = "attestation" + ("_gq256" if use_gq else "_rs256")
    signers = [
        fixtures.make_signer(provider.jwk, _ci_mint(provider), use_gq=use_gq) for _ in range(pool)
    ]
    made = [_layer(s) for s in signers]
    items: Sequence[tuple[bytes, dict[str, str]]] = [
        (envelope, notes) for envelope, notes, _ in made
    ]
    prims = []
    for signer, (_, _, attestation) in zip(signers, made, strict=True):
        p = _primitives(signer, attestation.attached_osm, None)
        p.cosign_payload = attestation.envelope.pae
        p.cosign_der = attestation.signature
        prims.append(p)
    requirement = SignerRequirement(
        "build",
        fixtures.policy(),
        predicate_type=SLSA_PROVENANCE_V1,
        predicate=(
            PredicateCondition(
                "/buildDefinition/buildType",
                "equals",
                "https://actions.github.io/buildtypes/workflow/v1",
            ),
        ),
    )

    def verify_with(verifier: Any) -> Callable[[tuple[bytes, dict[str, str]]], object]:
        def verify(item: tuple[bytes, dict[str, str]]) -> object:
            evidence = AttestationEvidence.from_layer(item[0], item[1])
            identity = verifier.check(evidence, _IMAGE)
            requirement.check(identity.claims, identity.statement)
            return identity

        return verify

    def cold() -> Callable[[tuple[bytes, dict[str, str]]], object]:
        _clear_parse_caches()
        return verify_with(fixtures.verifier(provider, use_gq=use_gq))

    warm = fixtures.verifier(provider, use_gq=use_gq)
    for item in items:  # every item verifies and meets the requirement before any timing
        verify_with(warm)(item)
    cold_time = _per_item(items, cold)
    cached_time = _per_item(items, lambda: verify_with(warm))
    floors = {}
    for cached in (False, True):
        floor = _Floor(provider, use_gq=use_gq, cached=cached).prepare(prims)
        floors[cached] = _per_item(prims, lambda: floor)  # noqa: B023 - used at once
    size = sum(len(envelope) for envelope, _ in items) // len(items)
    figures += [
        Figure(
            f"{kind}_cold_per_s",
            round(1 / cold_time),
            "verifications/s",
            sides={"per_verification_us": round(cold_time * 1e6, 1), "envelope_bytes": size},
        ),
        ratio_figure(f"{kind}_cold_vs_primitives", cold_time, floors[False], target=1.5),
        Figure(
            f"{kind}_cached_per_s",
            round(1 / cached_time),
            "verifications/s",
            sides={"per_verification_us": round(cached_time * 1e6, 1)},
        ),
        ratio_figure(f"{kind}_cached_vs_primitives", cached_time, floors[True], target=1.5),
    ]


def run(context: dict[str, float] | None = None, *, pool: int = 100) -> list[Figure]:
    """Attestations verified per second, cold and cached, against their primitive floors."""
    _fastest_backend()
    provider = fixtures.Provider.create()
    figures: list[Figure] = []
    for use_gq in (True, False):
        _pipeline(provider, use_gq=use_gq, pool=pool, figures=figures)
    return figures


if __name__ == "__main__":
    for figure in run(pool=int(sys.argv[1]) if len(sys.argv) > 1 else 100):
        print(figure.name, figure.value, figure.unit, figure.sides)
