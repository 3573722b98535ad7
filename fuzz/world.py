"""The world the fuzz targets run in: provider keys, trusted issuers, valid seeds.

Everything is built with opkey itself and pyca/cryptography (no test helpers), so the harness
runs anywhere the library does. Provider keys can be kept in a directory (``fuzz/corpus/keys``
by default for the command line) so that a saved finding replays against the same keys; the
ephemeral keys and the seeds are fresh on every run, which is fine because a bundle carries
everything else it needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from opkey import gq, issuers
from opkey.attestation import SignedAttestation
from opkey.bundle import Bundle
from opkey.cic import ClientInstanceClaims
from opkey.digest import Digest
from opkey.expiry import ExpiryPolicy
from opkey.intoto import Statement, Subject
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jose import b64url_decode, b64url_encode, go_json
from opkey.jwks.keyset import KeySet
from opkey.jwks.sources import PinnedKeys
from opkey.keys import PublicJWK, SigningKey, generate_signing_key
from opkey.pktoken import PKToken
from opkey.policy.claims import AllOf, AnyOf, ClaimEquals, ClaimGlob, Issuer, Policy
from opkey.policy.workloads import GitHubWorkflow
from opkey.signer import Signer
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier

__all__ = ["ROOT", "Provider", "World", "build_world"]

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
#: The fixed verification time: 2026-01-01T00:00:00Z.
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOW_TS = int(NOW.timestamp())
CLIENT_ID = "fuzz-client"
DIGEST = Digest("sha256:" + "f0" * 32)
OTHER_DIGEST = Digest("sha256:" + "0f" * 32)


@dataclass
class Provider:
    """An identity provider reduced to its signing key and its verifier configuration."""

    config: IssuerConfig
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    kid: str

    @property
    def alg(self) -> str:
        return "RS256" if isinstance(self.private_key, rsa.RSAPrivateKey) else "ES256"

    @property
    def jwk(self) -> PublicJWK:
        return PublicJWK.from_key(self.private_key.public_key(), alg=self.alg, kid=self.kid)

    @property
    def keyset(self) -> KeySet:
        return KeySet((self.jwk,))

    def sign(self, data: bytes) -> bytes:
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def id_token(self, claims: dict[str, Any]) -> str:
        header = b64url_encode(go_json({"alg": self.alg, "kid": self.kid, "typ": "JWT"}))
        payload = b64url_encode(go_json(claims))
        signature = self.sign(f"{header}.{payload}".encode())
        return f"{header}.{payload}.{b64url_encode(signature)}"

    def claims(self, **overrides: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.config.issuer,
            "sub": "fuzz-subject",
            "aud": CLIENT_ID,
            "iat": NOW_TS - 60,
            "nbf": NOW_TS - 120,
            "exp": NOW_TS + 240,
            "email": "fuzz@example.test",
            "email_verified": True,
        }
        claims.update(overrides)
        return claims

    def pktoken(
        self,
        *,
        user_alg: str = "ES256",
        gq_sign: bool = False,
        extra: dict[str, str] | None = None,
        **claims: Any,
    ) -> tuple[PKToken, SigningKey]:
        """A PK token whose commitment sits where this provider's configuration says."""
        key = generate_signing_key(user_alg)
        cic = ClientInstanceClaims.create(key.public_jwk, extra=extra)
        commitment = self.config.commitment
        if commitment is CommitmentType.NONCE:
            claims.setdefault("nonce", cic.commitment())
        elif commitment is CommitmentType.AUD:
            claims.setdefault("aud", cic.commitment())
        else:
            # A single string, as OpenPubkey requires of GQ-bound tokens.
            claims.setdefault("aud", "OPENPUBKEY-PKTOKEN:fuzz")
        token = self.id_token(self.claims(**claims))
        if gq_sign or self.config.require_gq:
            bound = cic.commitment() if commitment is CommitmentType.GQ_BOUND else None
            token = gq.sign_jwt(token, self.jwk, cic=bound)
        return PKToken.create(token, cic, key), key


def _load_or_create(
    keys_dir: Path | None, name: str, make: Callable[[], Any]
) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if keys_dir is None:
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = make()
        return key
    path = keys_dir / f"{name}.pem"
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(loaded, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
        return loaded
    key = make()
    keys_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


@dataclass
class World:
    """Trusted issuers, a verifier, and the seed inputs of every target."""

    providers: dict[str, Provider]
    verifier: Verifier
    policy: Policy
    pktokens: list[PKToken] = field(default_factory=list)
    bundles: list[Bundle] = field(default_factory=list)
    decoys: list[Bundle] = field(default_factory=list)
    jwks_documents: list[bytes] = field(default_factory=list)
    discovery_documents: list[bytes] = field(default_factory=list)
    policy_files: list[bytes] = field(default_factory=list)
    #: seeds of the registry targets, by target name
    registry: dict[str, list[bytes]] = field(default_factory=dict)
    #: attestation bundles (an in-toto statement about ``DIGEST`` in a DSSE envelope)
    attestations: list[SignedAttestation] = field(default_factory=list)

    def accepted_content(self) -> set[tuple[bytes, str]]:
        """The signed content of every valid seed bundle: all a mutant may be accepted as."""
        return {(bundle.pktoken.to_json(), bundle.signature) for bundle in self.bundles}


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _real_github() -> tuple[list[str], KeySet]:
    tokens = [p.read_text().strip() for p in sorted((DATA / "github-actions").glob("gha-*.jwt"))]
    keys: list[PublicJWK] = []
    for path in sorted((DATA / "github-actions").glob("github-jwks_*.json")):
        for key in KeySet.from_json(path.read_bytes()):
            if all(key.thumbprint() != k.thumbprint() for k in keys):
                keys.append(key)
    return tokens, KeySet(tuple(keys))


def build_world(keys_dir: Path | None = None) -> World:
    """Build the world; ``keys_dir`` keeps provider keys across runs (``None``: in memory)."""
    nonce = Provider(
        IssuerConfig(
            "https://login.fuzz.example",
            CommitmentType.NONCE,
            algorithms=frozenset({"RS256", "GQ256"}),
            client_id=CLIENT_ID,
        ),
        _load_or_create(keys_dir, "nonce", _rsa),
        "login-1",
    )
    aud = Provider(
        issuers.github_actions(issuer="https://actions.fuzz.example"),
        _load_or_create(keys_dir, "aud", _rsa),
        "actions-1",
    )
    bound = Provider(
        issuers.gitlab_ci(issuer="https://gitlab.fuzz.example"),
        _load_or_create(keys_dir, "bound", _rsa),
        "gitlab-1",
    )
    ecp = Provider(
        IssuerConfig(
            "https://ec.fuzz.example",
            CommitmentType.NONCE,
            algorithms=frozenset({"ES256"}),
            client_id=CLIENT_ID,
            expiry=ExpiryPolicy.oidc(),
        ),
        _load_or_create(keys_dir, "ec", lambda: ec.generate_private_key(ec.SECP256R1())),
        "ec-1",
    )
    providers = {"nonce": nonce, "aud": aud, "bound": bound, "ec": ecp}
    github_tokens, github_keys = _real_github()
    github_config = issuers.github_actions()
    trusted = [
        TrustedIssuer(p.config, [PinnedKeys({p.config.issuer: p.keyset})])
        for p in providers.values()
    ]
    trusted.append(TrustedIssuer(github_config, [PinnedKeys({github_config.issuer: github_keys})]))
    verifier = Verifier(Trust(trusted), clock=lambda: NOW, cache_size=64)
    policy = AnyOf(
        [
            AllOf([Issuer(nonce.config.issuer), ClaimEquals("email_verified", True)]),
            AllOf([Issuer(ecp.config.issuer), ClaimGlob("sub", "fuzz-*")]),
            GitHubWorkflow(issuer=aud.config.issuer, repository_id="1001"),
            AllOf([Issuer(bound.config.issuer), ClaimEquals("project_id", "2002")]),
            GitHubWorkflow(repository_id="433903792"),
        ]
    )
    world = World(providers, verifier, policy)

    made: list[tuple[PKToken, SigningKey]] = [
        nonce.pktoken(),
        nonce.pktoken(user_alg="EdDSA", extra={"att": "00" * 32}),
        nonce.pktoken(user_alg="RS256", gq_sign=True, aud=["other", CLIENT_ID], azp=CLIENT_ID),
        aud.pktoken(repository_id="1001", repository="fuzz/app", ref="refs/heads/main"),
        bound.pktoken(project_id="2002", project_path="fuzz/app"),
        ecp.pktoken(sub="fuzz-ec"),
    ]
    with_cos, cos_key = nonce.pktoken()
    cos_signer = generate_signing_key()
    cos_header = b64url_encode(
        go_json({"alg": "ES256", "iss": "https://cosigner.fuzz.example", "kid": "c", "typ": "COS"})
    )
    cos_sig = cos_signer.sign(f"{cos_header}.{with_cos.payload_b64}".encode())
    document = json.loads(with_cos.to_json())
    document["signatures"].append({"protected": cos_header, "signature": b64url_encode(cos_sig)})
    document["signatures"][0]["header"] = {"note": "unsigned", "n": [1, 2, {"x": None}]}
    made.append((PKToken.from_json(json.dumps(document)), cos_key))
    for pkt, key in made:
        world.pktokens.append(pkt)
        world.bundles.append(Signer(pkt, key).sign_digest(DIGEST))
    statement = Statement.about(
        [Subject.of("app.tar.gz", DIGEST)], "vuln", {"scanner": {"result": "PASSED"}}
    )
    for pkt, key in made[:3]:
        world.attestations.append(Signer(pkt, key).attest(statement))
    # Decoys: genuine signatures that must still be refused.
    pkt, key = made[0]
    world.decoys.append(Signer(pkt, key).sign_digest(OTHER_DIGEST))
    expired, key = ecp.pktoken(iat=NOW_TS - 7200, nbf=NOW_TS - 7200, exp=NOW_TS - 3600)
    world.decoys.append(Signer(expired, key).sign_digest(DIGEST))
    stranger, key = nonce.pktoken(email_verified=False)
    world.decoys.append(Signer(stranger, key).sign_digest(DIGEST))
    for token in github_tokens[:2] + github_tokens[-1:]:
        key = generate_signing_key()
        cic = ClientInstanceClaims.create(key.public_jwk)
        issuer_key = github_keys.by_kid(json.loads(_segment(token, 0))["kid"])
        real = PKToken.create(gq.sign_jwt(token, issuer_key), cic, key)
        world.pktokens.append(real)
        world.decoys.append(Signer(real, key).sign_digest(DIGEST))

    world.jwks_documents = [p.read_bytes() for p in sorted(DATA.rglob("*jwks*.json"))]
    world.jwks_documents.append(
        go_json(
            {"keys": [p.jwk.to_dict() for p in providers.values()] + [{"kty": "oct", "k": "AA"}]}
        )
    )
    world.discovery_documents = [
        (DATA / "github-actions" / "github-openid-configuration_crates-io.json").read_bytes(),
        go_json(
            {
                "issuer": "https://login.fuzz.example",
                "jwks_uri": "https://login.fuzz.example/jwks",
                "authorization_endpoint": "https://login.fuzz.example/authorize",
                "token_endpoint": "https://login.fuzz.example/token",
                "code_challenge_methods_supported": ["S256"],
            }
        ),
    ]
    spec = (ROOT / "spec" / "policy-file.md").read_text(encoding="utf-8")
    world.policy_files = [m.encode() for m in re.findall(r"```toml\n(.*?)```", spec, re.DOTALL)]
    world.registry = _registry_seeds(world)
    return world


def _registry_seeds(world: World) -> dict[str, list[bytes]]:
    """Registry answers: a real cosign ``.sig`` manifest, an opkey one, an index, tag pages,
    challenges of Docker Hub's and GHCR's shapes, token and error bodies, Retry-After values."""
    cosign = json.loads((DATA / "cosign-sig-manifest.json").read_text(encoding="utf-8"))
    digest = "sha256:" + "ab" * 32
    layer = {
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "size": 243,
        "digest": digest,
        "annotations": {
            "dev.cosignproject.cosign/signature": "MEUCIQ==",
            "dev.opkey/pktoken": world.pktokens[0].to_compact(),
            "dev.opkey/osm": "eyJhbGciOiJFUzI1NiJ9..c2ln",
        },
    }
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": digest}
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{**config, "mediaType": "application/vnd.oci.image.manifest.v1+json"}],
    }
    docker = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {**config, "mediaType": "application/vnd.docker.container.image.v1+json"},
        "layers": [layer, {**layer, "annotations": {"a": "b"}}],
    }
    oci = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    }
    journal = "sha256-" + "ab" * 32 + ".sig.journal-" + "cd" * 16
    return {
        "registry-manifest": [
            cosign["manifest"].encode(),
            go_json(oci),
            go_json(docker),
            go_json(index),
        ],
        "registry-tags": [
            go_json({"name": "team/app", "tags": ["v1", "latest", "sha256-" + "ab" * 32 + ".sig"]}),
            go_json({"name": "team/app", "tags": [journal, "_x", "a" * 128]}),
            go_json({"name": "team/app", "tags": None}),
        ],
        "registry-link": [
            b'</v2/team/app/tags/list?last=b&n=2>; rel="next"',
            b'<https://registry.fuzz.example/v2/x/tags/list?n=100&last=z>; rel="next"',
            b'</v2/team/app/tags/list?last=a>; rel="prev"',
        ],
        "registry-challenge": [
            b'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            b'scope="repository:samalba/my-app:pull,push"',
            b'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/r:pull"',
            b'Basic realm="Registry Realm", Bearer realm="https://registry.fuzz.example/auth",'
            b'error="invalid_token",error_description="The access token expired"',
            b'Basic realm="a \\"quoted\\" realm"',
        ],
        "registry-token": [
            go_json(
                {
                    "token": "eyJ0eXAiOiJKV1QifQ.e30.c2ln",
                    "expires_in": 300,
                    "issued_at": "2026-01-01T00:00:00Z",
                }
            ),
            go_json({"access_token": "gho_abcdef", "expires_in": 60, "refresh_token": "x"}),
            go_json({"token": "t", "access_token": "u", "expires_in": 86401}),
        ],
        "registry-errors": [
            go_json(
                {
                    "errors": [
                        {
                            "code": "MANIFEST_UNKNOWN",
                            "message": "manifest unknown",
                            "detail": {"Tag": "v1"},
                        }
                    ]
                }
            ),
            go_json(
                {
                    "errors": [
                        {"code": "DENIED", "message": "requested access to the resource is denied"},
                        {"code": "UNAUTHORIZED"},
                    ]
                }
            ),
            b"<html><body>502 Bad Gateway</body></html>",
        ],
        "registry-retry-after": [
            b"120",
            b"0",
            b"Wed, 21 Oct 2015 07:28:00 GMT",
            b"Fri, 01 Jan 2027 00:00:00 GMT",
            b"  30 ",
        ],
    }


def _segment(token: str, index: int) -> bytes:
    return b64url_decode(token.split(".")[index])
