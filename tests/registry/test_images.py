"""Signing and verifying container images in the real distribution registry."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from opkey import issuers
from opkey.cli import main
from opkey.cosign import COSIGN_SIGNATURE, OPKEY_OSM, OPKEY_PKTOKEN, simple_signing_payload
from opkey.digest import Digest
from opkey.errors import PolicyError, RegistryError, SignatureError
from opkey.images import sign_image, verify_image
from opkey.jwks.client import JwksClient
from opkey.jwks.sources import LiveKeys
from opkey.keys import PublicJWK
from opkey.policy.file import parse_policy_file
from opkey.policy.signoff import Requirement
from opkey.policy.workloads import GitHubWorkflow
from opkey.providers import GitHubActionsProvider
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import list_signatures, signature_tag
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.devidp.identities import GitHubWorkload
from opkey.sandbox.registry import seed_image
from opkey.signer import Signer
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from tests.registries import RunningRegistry

pytestmark = pytest.mark.registry

REPO_ID = "614000001"


@pytest.fixture
def idp(make_dev_idp: Callable[..., DevIdP]) -> DevIdP:
    return make_dev_idp()


def _signer(idp: DevIdP, workflow: str = "release.yml", repo: str = "octo-org/octo-repo") -> Signer:
    if workflow != "release.yml" or repo != "octo-org/octo-repo":
        workload = GitHubWorkload.for_repository(repo, workflow_file=workflow)
        idp.provider.settings = dataclasses.replace(idp.provider.settings, github=workload)
    provider = GitHubActionsProvider.from_env(idp.env(), jwks=JwksClient([idp.issuer]))
    return Signer.from_provider(provider)


def _verifier(idp: DevIdP) -> Verifier:
    return Verifier(
        Trust(
            [
                TrustedIssuer(
                    issuers.github_actions(issuer=idp.issuer), [LiveKeys(JwksClient([idp.issuer]))]
                )
            ]
        )
    )


def _policy(idp: DevIdP, repository_id: str = REPO_ID) -> GitHubWorkflow:
    return GitHubWorkflow(issuer=idp.issuer, repository_id=repository_id)


@pytest.mark.both_registries
def test_sign_tag_verify_round_trip(
    idp: DevIdP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    tagged = registry_image.with_tag("v1")
    signed = sign_image(registry_client, str(tagged).split("@")[0], _signer(idp))
    assert signed.digest == registry_image.digest, "the tag was resolved to the digest"
    result = verify_image(registry_client, tagged, _verifier(idp), Requirement.of(_policy(idp)))
    assert [i.claims["repository_id"] for i in result.verdict.identities] == [REPO_ID]
    with pytest.raises(PolicyError, match="repository_id"):
        verify_image(
            registry_client, tagged, _verifier(idp), Requirement.of(_policy(idp, "614000002"))
        )


@pytest.mark.both_registries
def test_layer_is_cosign_compatible(
    idp: DevIdP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    """The raw signature verifies from the stored bytes alone, as `cosign verify --key` would."""
    signer = _signer(idp)
    sign_image(registry_client, registry_image, signer)
    (layer,) = list_signatures(registry_client, registry_image)
    assert layer.descriptor.media_type == "application/vnd.dev.cosign.simplesigning.v1+json"
    expected = simple_signing_payload(registry_image.cosign_name, registry_image.require_digest())
    assert layer.payload == expected
    assert json.loads(layer.payload)["critical"]["type"] == "cosign container image signature"
    # cosign --key: PEM public key + base64 DER signature + payload bytes, nothing else
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = signer.signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = serialization.load_pem_public_key(pem)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(
        base64.b64decode(layer.annotations[COSIGN_SIGNATURE]),
        layer.payload,
        ec.ECDSA(hashes.SHA256()),
    )


def _rewrite_sig(
    client: RegistryClient, image: ImageReference, mutate: Callable[[dict[str, Any]], None]
) -> None:
    sig_ref = image.with_tag(signature_tag(image.require_digest()))
    manifest = client.get_manifest(sig_ref)
    document = json.loads(manifest.raw)
    mutate(document)
    client.put_manifest(sig_ref, json.dumps(document).encode(), document["mediaType"])


def _annotation(document: dict[str, Any], name: str, value: str, index: int = 0) -> None:
    document["layers"][index]["annotations"][name] = value


def _flip_tail(value: str) -> str:
    return value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB")


@pytest.mark.parametrize(
    ("key", "tamper", "message"),
    [
        (OPKEY_OSM, _flip_tail, "signature does not verify"),
        (OPKEY_OSM, lambda v: v.replace("..", ".e30."), "detached JWS"),
        (
            COSIGN_SIGNATURE,
            lambda v: base64.b64encode(b"\x30" + bytes(70)).decode(),
            "cosign signature does not verify",
        ),
        (COSIGN_SIGNATURE, lambda v: "!!", "not base64"),
        (OPKEY_PKTOKEN, lambda v: "x:y:z", "compact PK token"),
    ],
    ids=["osm-signature", "osm-attached", "cosign-signature", "cosign-base64", "pktoken"],
)
def test_tampered_annotations_are_rejected(
    idp: DevIdP,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    key: str,
    tamper: Callable[[str], str],
    message: str,
) -> None:
    sign_image(registry_client, registry_image, _signer(idp))

    def mutate(document: dict[str, Any]) -> None:
        annotations = document["layers"][0]["annotations"]
        annotations[key] = tamper(annotations[key])

    _rewrite_sig(registry_client, registry_image, mutate)
    with pytest.raises(SignatureError, match=message):
        verify_image(registry_client, registry_image, _verifier(idp), Requirement.of(_policy(idp)))


def test_pktoken_swapped_for_another_signers_is_rejected(
    idp: DevIdP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    sign_image(registry_client, registry_image, _signer(idp))
    other = _signer(idp)
    _rewrite_sig(
        registry_client,
        registry_image,
        lambda d: _annotation(d, OPKEY_PKTOKEN, other.pktoken.to_compact()),
    )
    with pytest.raises(SignatureError, match="another PK token"):
        verify_image(registry_client, registry_image, _verifier(idp), Requirement.of(_policy(idp)))


@pytest.mark.both_registries
def test_tampered_layer_payload_is_rejected(
    idp: DevIdP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    sign_image(registry_client, registry_image, _signer(idp))
    forged = simple_signing_payload("evil.example/other", registry_image.require_digest())
    registry_client.push_blob(registry_image, forged)

    def mutate(document: dict[str, Any]) -> None:
        document["layers"][0]["digest"] = str(Digest.of_bytes(forged))
        document["layers"][0]["size"] = len(forged)

    _rewrite_sig(registry_client, registry_image, mutate)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_image(registry_client, registry_image, _verifier(idp), Requirement.of(_policy(idp)))


@pytest.mark.both_registries
def test_signature_copied_from_another_image_is_rejected(
    idp: DevIdP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    sign_image(registry_client, registry_image, _signer(idp))
    other = seed_image(registry_client, registry_image.with_tag("other"), content=b"other")
    source = registry_image.with_tag(signature_tag(registry_image.require_digest()))
    manifest = registry_client.get_manifest(source)
    target = other.with_tag(signature_tag(other.require_digest()))
    registry_client.put_manifest(target, manifest.raw, manifest.media_type)
    with pytest.raises(SignatureError, match=f"not {other.require_digest()}"):
        verify_image(registry_client, other, _verifier(idp), Requirement.of(_policy(idp)))


@pytest.mark.both_registries
def test_unsigned_image_and_garbage_sig_tag(
    idp: DevIdP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    with pytest.raises(SignatureError, match="has no signatures"):
        verify_image(registry_client, registry_image, _verifier(idp), Requirement.of(_policy(idp)))
    # a .sig tag that points at an ordinary image
    sig = registry_image.with_tag(signature_tag(registry_image.require_digest()))
    seed_image(registry_client, sig, content=b"not a signature")
    with pytest.raises(RegistryError):
        verify_image(registry_client, registry_image, _verifier(idp), Requirement.of(_policy(idp)))
    with pytest.raises(RegistryError):
        sign_image(registry_client, registry_image, _signer(idp))


@pytest.mark.both_registries
def test_sixteen_concurrent_signers_all_land_and_verify(
    idp: DevIdP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    signers = [_signer(idp) for _ in range(16)]
    errors: list[BaseException] = []

    def sign(signer: Signer) -> None:
        try:
            sign_image(registry_client, registry_image, signer)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sign, args=(s,)) for s in signers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    result = verify_image(
        registry_client, registry_image, _verifier(idp), Requirement.of(_policy(idp))
    )
    assert len(result.verdict.signatures) == 16
    assert len(result.verdict.identities) == 16
    assert {i.key_thumbprint for i in result.verdict.identities} == {
        s.pktoken.cic_claims.upk.thumbprint() for s in signers
    }


@pytest.mark.both_registries
def test_multi_signer_policy_on_an_image(
    idp: DevIdP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    ref = "octo-org/octo-repo/.github/workflows/{}@refs/heads/main"
    policy_file = parse_policy_file(f"""
version = 1
[[issuers]]
issuer = "{idp.issuer}"
commitment = "aud"
require_gq = true
algorithms = ["GQ256"]
[[signers]]
name = "build"
github.issuer = "{idp.issuer}"
github.repository_id = "{REPO_ID}"
github.workflow_ref = "{ref.format("build.yml")}"
[[signers]]
name = "scan"
github.issuer = "{idp.issuer}"
github.repository_id = "{REPO_ID}"
github.workflow_ref = "{ref.format("scan.yml")}"
[[signers]]
name = "deploy"
github.issuer = "{idp.issuer}"
github.repository_id = "{REPO_ID}"
github.workflow_ref = "{ref.format("staging-deploy.yml")}"
""")
    verifier = _verifier(idp)
    for stage in ("build.yml", "scan.yml"):
        sign_image(registry_client, registry_image, _signer(idp, stage))
    with pytest.raises(PolicyError, match="'deploy'"):
        verify_image(registry_client, registry_image, verifier, policy_file.requirement)
    sign_image(registry_client, registry_image, _signer(idp, "staging-deploy.yml"))
    result = verify_image(registry_client, registry_image, verifier, policy_file.requirement)
    assert len(result.verdict.identities) == 3


@pytest.mark.both_registries
def test_cli_sign_and_verify_image(
    idp: DevIdP,
    registry_image: ImageReference,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    registry_server: RunningRegistry,
) -> None:
    for name, value in idp.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-opkey-test")
    tagged = str(registry_image.with_tag("v1")).split("@")[0]
    assert main(["sign", tagged]) == 0
    assert f"signed {registry_image.name}" in capsys.readouterr().err
    base = ["verify", tagged, "--issuer", idp.issuer]
    assert main([*base, "--github-repository-id", REPO_ID, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is True
    assert out["image"].endswith(str(registry_image.require_digest()))
    assert main([*base, "--github-repository-id", "614000002"]) == 1
    assert "repository_id" in capsys.readouterr().err
    assert main([*base, "--github-repository-id", REPO_ID, "--bundle", "x"]) == 2


def test_ephemeral_key_must_be_the_upk(idp: DevIdP) -> None:
    signer = _signer(idp)
    assert isinstance(signer.pktoken.cic_claims.upk, PublicJWK)


def test_cli_inspect_lists_signatures_and_exports_the_chosen_key(
    idp: DevIdP,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    signers = [_signer(idp), _signer(idp, "scan.yml")]
    for signer in signers:
        sign_image(registry_client, registry_image, signer)
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-opkey-test")
    tagged = str(registry_image.with_tag("v1")).split("@")[0]
    assert main(["inspect", tagged]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is False
    assert report["image"] == str(registry_image)
    assert report["signature_tag"] == signature_tag(registry_image.require_digest())
    assert [s["ephemeral_key_thumbprint"] for s in report["signatures"]] == [
        s.pktoken.cic_claims.upk.thumbprint() for s in signers
    ]
    assert {s["docker_manifest_digest"] for s in report["signatures"]} == {
        str(registry_image.digest)
    }
    assert main(["inspect", tagged, "--public-key"]) == 2
    assert "2 opkey signatures (0, 1); choose one with --signature" in capsys.readouterr().err
    assert main(["inspect", tagged, "--public-key", "-", "--signature", "1"]) == 0
    assert capsys.readouterr().out.encode() == signers[1].pktoken.cic_claims.upk.to_pem()
    assert main(["inspect", tagged, "--pktoken", "--signature", "0"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(signers[0].pktoken.to_json())
    assert main(["inspect", tagged, "--public-key", "--signature", "2"]) == 2
    assert "no signature 2" in capsys.readouterr().err
