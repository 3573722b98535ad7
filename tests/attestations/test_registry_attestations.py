"""Attestations in real registries: cosign's ``.att`` tag and OCI 1.1 referrers, on
distribution 2.8 (no referrers API: the referrers tag schema) and on go-containerregistry's
registry (the referrers API), with the dev IdP's GitHub-style tokens."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from opkey import issuers
from opkey.errors import PolicyError, RegistryError, SignatureError
from opkey.images import attest_image, image_tree, sign_image, verify_image
from opkey.intoto import SLSA_PROVENANCE_V1
from opkey.jwks.client import JwksClient
from opkey.jwks.sources import LiveKeys
from opkey.policy.predicates import PredicateCondition
from opkey.policy.signoff import Requirement
from opkey.policy.workloads import GitHubWorkflow
from opkey.provenance import provenance_for
from opkey.providers import GitHubActionsProvider
from opkey.registry.attestations import attestation_layers, attestation_tag
from opkey.registry.client import RegistryClient
from opkey.registry.mediatypes import INTOTO_ARTIFACT, OCI_INDEX
from opkey.registry.reference import ImageReference
from opkey.registry.referrers import list_referrers, referrers_tag
from opkey.registry.signatures import signature_layers
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.devidp.identities import GitHubWorkload
from opkey.signer import Signer
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from tests.registries import GgcrRegistry, RunningRegistry

pytestmark = pytest.mark.registry

REPO_ID = "614000001"
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
PASSED = {"scanner": {"uri": "https://scanner.example/v2", "result": "PASSED"}}


@pytest.fixture
def idp(make_dev_idp: Callable[..., DevIdP]) -> DevIdP:
    return make_dev_idp()


def signer_for(idp: DevIdP, workflow: str = "release.yml", **overrides: Any) -> Signer:
    workload = GitHubWorkload.for_repository(
        "octo-org/octo-repo", workflow_file=workflow, **overrides
    )
    idp.provider.settings = dataclasses.replace(idp.provider.settings, github=workload)
    provider = GitHubActionsProvider.from_env(idp.env(), jwks=JwksClient([idp.issuer]))
    return Signer.from_provider(provider)


def verifier_for(idp: DevIdP) -> Verifier:
    keys = LiveKeys(JwksClient([idp.issuer]))
    return Verifier(Trust([TrustedIssuer(issuers.github_actions(issuer=idp.issuer), [keys])]))


def policy(idp: DevIdP, **claims: str) -> GitHubWorkflow:
    return GitHubWorkflow(issuer=idp.issuer, repository_id=REPO_ID, **claims)


def scan_requirement(idp: DevIdP, result: str = "PASSED") -> Requirement:
    condition = PredicateCondition("/scanner/result", "equals", result)
    return Requirement.of(policy(idp), predicate_type=VULN, predicate=[condition])


@pytest.mark.both_registries
def test_att_tag_round_trip(
    idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    registry_image: ImageReference,
) -> None:
    tagged = str(registry_image.with_tag("v1")).split("@")[0]
    attested = attest_image(registry_client, tagged, signer_for(idp), "vuln", PASSED)
    assert attested.digest == registry_image.digest, "the tag was resolved to the digest"
    (layer,) = attestation_layers(registry_client, registry_image)
    assert layer.descriptor.media_type == "application/vnd.dsse.envelope.v1+json"
    assert layer.annotations["predicateType"] == VULN
    assert json.loads(layer.payload)["payloadType"] == "application/vnd.in-toto+json"
    assert len(signature_layers(registry_client, registry_image)) == 0, "no .sig was written"
    result = verify_image(registry_client, tagged, verifier_for(idp), scan_requirement(idp))
    (outcome,) = result.verdict.signatures
    assert outcome.label == "attestation layer 0"
    assert outcome.identity is not None
    assert outcome.identity.statement is not None
    assert outcome.identity.statement.predicate == PASSED
    # The predicate as asked, and only that type.
    with pytest.raises(PolicyError, match="FAILED"):
        verify_image(registry_client, tagged, verifier_for(idp), scan_requirement(idp, "FAILED"))
    with pytest.raises(PolicyError, match=r"not https://slsa\.dev/provenance/v1"):
        verify_image(
            registry_client,
            tagged,
            verifier_for(idp),
            Requirement.of(policy(idp), predicate_type=SLSA_PROVENANCE_V1),
        )
    # A plain signature requirement finds no signature at all.
    with pytest.raises(SignatureError, match="has no signatures"):
        verify_image(registry_client, tagged, verifier_for(idp), Requirement.of(policy(idp)))


@pytest.mark.both_registries
def test_referrers_round_trip(
    idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    registry_image: ImageReference,
) -> None:
    signer = signer_for(idp)
    provenance = provenance_for(signer.pktoken.claims, server_url=None)
    attest_image(
        registry_client, registry_image, signer, "slsaprovenance1", provenance, storage="referrers"
    )
    sign_image(registry_client, registry_image, signer, storage="referrers")
    referrers = list_referrers(registry_client, registry_image)
    assert len(referrers) == 2
    index_tag = registry_image.with_tag(referrers_tag(registry_image.require_digest()))
    fallback = registry_client.find_manifest(index_tag)
    if isinstance(registry_server, GgcrRegistry):
        assert referrers.source == "api"
        assert fallback is None, "with the referrers API no referrers tag is written"
    else:
        assert referrers.source == "tag"
        assert fallback is not None
        assert fallback.media_type == OCI_INDEX
        types = {m["artifactType"] for m in fallback.document["manifests"]}
        assert types == {INTOTO_ARTIFACT, "application/vnd.dev.cosign.artifact.sig.v1+json"}
    assert (
        registry_client.find_manifest(
            registry_image.with_tag(attestation_tag(registry_image.require_digest()))
        )
        is None
    )
    verifier = verifier_for(idp)
    attested = verify_image(
        registry_client,
        registry_image,
        verifier,
        Requirement.of(policy(idp), predicate_type=SLSA_PROVENANCE_V1),
    )
    assert [o.genuine for o in attested.verdict.signatures] == [True]
    signed = verify_image(registry_client, registry_image, verifier, Requirement.of(policy(idp)))
    assert [o.label.startswith("referrer sha256:") for o in signed.verdict.signatures] == [True]
    tree = image_tree(registry_client, registry_image)
    assert sorted((e.layout, e.kind) for e in tree.entries) == [
        ("referrer", "attestation"),
        ("referrer", "signature"),
    ]


@pytest.mark.both_registries
def test_auto_storage_follows_the_registry(
    idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    registry_image: ImageReference,
) -> None:
    attest_image(registry_client, registry_image, signer_for(idp), "vuln", PASSED, storage="auto")
    tree = image_tree(registry_client, registry_image)
    expected = "referrer" if isinstance(registry_server, GgcrRegistry) else ".att"
    assert [(e.layout, e.predicate_type) for e in tree.entries] == [(expected, VULN)]


def _attest_concurrently(
    factory: Callable[..., RegistryClient], image: ImageReference, signer: Signer, storage: str
) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def attest(n: int) -> None:
        client = factory()  # separate clients: separate attesters
        barrier.wait()
        try:
            attest_image(client, image, signer, "vuln", {**PASSED, "n": n}, storage=storage)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attest, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.both_registries
@pytest.mark.parametrize("storage", ["tag", "referrers"])
def test_16_concurrent_attesters_lose_nothing(
    idp: DevIdP,
    storage: str,
    registry_client_factory: Callable[..., RegistryClient],
    registry_image: ImageReference,
) -> None:
    signer = signer_for(idp)
    _attest_concurrently(registry_client_factory, registry_image, signer, storage)
    client = registry_client_factory()
    result = verify_image(client, registry_image, verifier_for(idp), scan_requirement(idp))
    found = [
        o.identity.statement.predicate["n"]
        for o in result.verdict.genuine
        if o.identity and o.identity.statement
    ]
    assert sorted(found) == list(range(16))
    if storage == "tag":
        assert len(attestation_layers(client, registry_image)) == 16


@pytest.mark.both_registries
def test_an_attestation_copied_to_another_image_is_rejected(
    idp: DevIdP,
    registry_client: RegistryClient,
    registry_image: ImageReference,
) -> None:
    from opkey.registry.attestations import attach_attestation
    from opkey.sandbox.registry import seed_image

    attest_image(registry_client, registry_image, signer_for(idp), "vuln", PASSED)
    (layer,) = attestation_layers(registry_client, registry_image)
    other = seed_image(
        registry_client,
        ImageReference.parse(f"{registry_image.registry}/{registry_image.repository}:other"),
        content=b"another image",
    )
    attach_attestation(registry_client, other, layer.payload, dict(layer.annotations))
    with pytest.raises(SignatureError, match="the attestation is about"):
        verify_image(registry_client, other, verifier_for(idp), scan_requirement(idp))


@pytest.mark.both_registries
def test_garbage_in_the_att_tag_is_never_overwritten(
    idp: DevIdP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    att = registry_image.with_tag(attestation_tag(registry_image.require_digest()))
    manifest = registry_client.get_manifest(registry_image)
    registry_client.put_manifest(att, manifest.raw, manifest.media_type)
    with pytest.raises(RegistryError, match="does not hold a cosign attestation manifest"):
        attest_image(registry_client, registry_image, signer_for(idp), "vuln", PASSED)
    assert registry_client.get_manifest(att).digest == manifest.digest
