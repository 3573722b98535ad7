"""Signed material for the benchmarks: a provider key, PK tokens, bundles and image layers.

Everything is made the way the real signers make it (``PKToken.create``, ``gq.sign_jwt``,
``Signer.sign_digest``, the annotations ``opkey.images.sign_image`` writes), with a fresh
ephemeral ES256 key and ID token per PK token, so that verifying a pool of them never hits a
cache unless a benchmark wants it to.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from opkey import gq
from opkey.cic import ClientInstanceClaims
from opkey.cosign import COSIGN_SIGNATURE, OPKEY_OSM, OPKEY_PKTOKEN, simple_signing_payload
from opkey.digest import Digest
from opkey.expiry import ExpiryPolicy
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jwks.keyset import KeySet
from opkey.jwks.sources import KeySource, PinnedKeys
from opkey.keys import PublicJWK, generate_signing_key
from opkey.pktoken import PKToken
from opkey.policy.claims import AllOf, ClaimEquals, ClaimGlob, Issuer, Policy
from opkey.registry.manifest import Descriptor
from opkey.registry.mediatypes import COSIGN_SIMPLESIGNING
from opkey.registry.signatures import SignatureLayer
from opkey.signer import Signer
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier

__all__ = [
    "DIGEST",
    "IMAGE_DIGEST",
    "IMAGE_REPOSITORY",
    "ISSUER",
    "NOW",
    "Provider",
    "image_layer",
    "issuer_config",
    "make_signer",
    "policy",
    "verifier",
]

ISSUER = "https://bench.example.test"
#: The verification time of every benchmark (tokens are issued at this instant).
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
DIGEST = Digest.of_bytes(b"opkey benchmark artifact\n")
IMAGE_REPOSITORY = "registry.example.test/octo-org/app"
IMAGE_DIGEST = "sha256:" + "5e" * 32


@dataclass(frozen=True)
class Provider:
    """An identity provider reduced to its RSA-2048 signing key and JWKS."""

    issuer: str
    private_key: rsa.RSAPrivateKey
    jwk: PublicJWK

    @classmethod
    def create(cls, issuer: str = ISSUER) -> Provider:
        """A fresh provider key (``kid`` ``bench-1``)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(issuer, key, PublicJWK.from_key(key.public_key(), alg="RS256", kid="bench-1"))

    @property
    def keys(self) -> KeySet:
        """The provider's JWKS."""
        return KeySet((self.jwk,))

    def mint(self, claims: Mapping[str, Any]) -> str:
        """A compact RS256 ID token, as the provider signs it."""
        import jwt

        return jwt.encode(
            dict(claims), self.private_key, algorithm="RS256", headers={"kid": "bench-1"}
        )


def workload_claims(issuer: str, identity: int, audience: str) -> dict[str, Any]:
    """GitHub Actions–like claims of workload ``identity`` (repository ``octo-org/app-N``)."""
    repository = f"octo-org/app-{identity}"
    iat = int(NOW.timestamp())
    return {
        "iss": issuer,
        "sub": f"repo:{repository}:ref:refs/heads/main",
        "aud": audience,
        "iat": iat,
        "nbf": iat - 5,
        "exp": iat + 300,
        "jti": str(uuid.uuid4()),
        "repository": repository,
        "repository_id": str(614000000 + identity),
        "repository_owner": "octo-org",
        "repository_owner_id": "90000001",
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "sha": "a3" * 20,
        "workflow": "release",
        "workflow_ref": f"{repository}/.github/workflows/release.yml@refs/heads/main",
        "event_name": "push",
        "runner_environment": "github-hosted",
        "run_id": "9000000001",
    }


def make_signer(
    provider_jwk: PublicJWK,
    mint: Callable[[Mapping[str, Any]], str],
    *,
    issuer: str = ISSUER,
    use_gq: bool,
    identity: int = 0,
) -> Signer:
    """A fresh ephemeral ES256 key and its PK token (``aud`` commitment, RS256 or GQ256)."""
    key = generate_signing_key("ES256")
    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = mint(workload_claims(issuer, identity, cic.commitment()))
    if use_gq:
        id_token = gq.sign_jwt(id_token, provider_jwk)
    return Signer(PKToken.create(id_token, cic, key), key)


def image_layer(signer: Signer) -> SignatureLayer:
    """One image signature layer with the annotations ``opkey.images.sign_image`` writes."""
    payload = simple_signing_payload(IMAGE_REPOSITORY, Digest(IMAGE_DIGEST))
    header, _, signature = signer.sign(payload).split(".")
    annotations = {
        COSIGN_SIGNATURE: base64.b64encode(signer.signing_key.sign_der(payload)).decode("ascii"),
        OPKEY_PKTOKEN: signer.pktoken.to_compact(),
        OPKEY_OSM: f"{header}..{signature}",
    }
    descriptor = Descriptor(
        COSIGN_SIMPLESIGNING, Digest.of_bytes(payload), len(payload), annotations
    )
    return SignatureLayer(payload, descriptor)


def issuer_config(issuer: str = ISSUER, *, use_gq: bool) -> IssuerConfig:
    """GitHub Actions–style settings: ``aud`` commitment, RS256 or GQ256 only."""
    return IssuerConfig(
        issuer=issuer,
        commitment=CommitmentType.AUD,
        algorithms=frozenset({"GQ256" if use_gq else "RS256"}),
        require_gq=use_gq,
        expiry=ExpiryPolicy.never(),
    )


def verifier(
    provider: Provider | None = None,
    *,
    use_gq: bool,
    issuer: str = ISSUER,
    keys: KeySource | None = None,
) -> Verifier:
    """A verifier trusting one issuer, with pinned keys unless ``keys`` is given."""
    if keys is None:
        assert provider is not None
        keys = PinnedKeys({issuer: provider.keys})
    return Verifier(
        Trust([TrustedIssuer(issuer_config(issuer, use_gq=use_gq), [keys])]), clock=lambda: NOW
    )


def policy(issuer: str = ISSUER) -> Policy:
    """What a deploy gate asks: the issuer, the organisation's repositories, the main branch."""
    return AllOf(
        [
            Issuer(issuer),
            ClaimGlob("repository", "octo-org/*"),
            ClaimEquals("ref", "refs/heads/main"),
        ]
    )
