"""Static provider: ID tokens obtained elsewhere, checked for consistency before use."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from opkey import issuers
from opkey.cic import ClientInstanceClaims
from opkey.errors import ConfigError, ProviderError
from opkey.issuers import CommitmentType
from opkey.jwks.client import JwksClient
from opkey.keys import generate_signing_key
from opkey.providers import StaticProvider
from opkey.sandbox.devidp import DevIdP
from opkey.verify import verify_pktoken


def now() -> datetime:
    return datetime.now(timezone.utc)


def test_static_token_with_its_cic(dev_idp: DevIdP, dev_jwks: JwksClient) -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = dev_idp.mint_id_token(nonce=cic.commitment())
    provider = StaticProvider.from_token(
        id_token, cic, issuer=dev_idp.issuer, client_id=dev_idp.client_id, jwks=dev_jwks
    )
    pktoken = provider.get_pktoken(key)
    verified = verify_pktoken(
        pktoken, provider.issuer_config(), dev_jwks.keys(dev_idp.issuer), now=now()
    )
    assert verified.upk == key.public_jwk
    assert pktoken.cic_claims == cic


def test_static_token_offline_checks_consistency_only(dev_idp: DevIdP) -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = dev_idp.mint_id_token(nonce=cic.commitment())
    provider = StaticProvider.from_token(
        id_token, cic, issuer=dev_idp.issuer, client_id=dev_idp.client_id
    )
    assert provider.get_pktoken(key).op.alg == "RS256"


def test_static_token_for_another_key_is_refused(dev_idp: DevIdP) -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = dev_idp.mint_id_token(nonce=cic.commitment())
    provider = StaticProvider.from_token(
        id_token, cic, issuer=dev_idp.issuer, client_id=dev_idp.client_id
    )
    with pytest.raises(ProviderError, match="signing key is not the key"):
        provider.get_pktoken(generate_signing_key())


def test_static_token_committing_to_something_else_is_refused(dev_idp: DevIdP) -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    other = ClientInstanceClaims.create(key.public_jwk)  # same key, other rz
    id_token = dev_idp.mint_id_token(nonce=other.commitment())
    provider = StaticProvider.from_token(
        id_token, cic, issuer=dev_idp.issuer, client_id=dev_idp.client_id
    )
    with pytest.raises(ProviderError, match="nonce does not commit") as info:
        provider.get_pktoken(key)
    assert info.value.expected == cic.commitment()
    assert info.value.found == other.commitment()


def test_static_token_for_another_client_or_issuer_is_refused(dev_idp: DevIdP) -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = dev_idp.mint_id_token(nonce=cic.commitment())
    wrong_client = StaticProvider.from_token(id_token, cic, issuer=dev_idp.issuer, client_id="x")
    with pytest.raises(ProviderError, match="does not include client id 'x'"):
        wrong_client.get_pktoken(key)
    wrong_issuer = StaticProvider.from_token(
        id_token, cic, issuer="https://accounts.google.com", client_id=dev_idp.client_id
    )
    with pytest.raises(ProviderError, match=r"configured for 'https://accounts\.google\.com'"):
        wrong_issuer.get_pktoken(key)


def test_static_token_that_does_not_verify_is_refused(
    dev_idp: DevIdP, dev_jwks: JwksClient
) -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    header, payload, signature = dev_idp.mint_id_token(nonce=cic.commitment()).split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    provider = StaticProvider.from_token(
        tampered, cic, issuer=dev_idp.issuer, client_id=dev_idp.client_id, jwks=dev_jwks
    )
    with pytest.raises(ProviderError, match="does not verify"):
        provider.get_pktoken(key)


def test_callback_with_aud_commitment_is_gq_signed(dev_idp: DevIdP, dev_jwks: JwksClient) -> None:
    seen: list[str] = []

    def obtain(commitment: str) -> str:
        seen.append(commitment)
        return dev_idp.mint_github_token(audience=commitment)

    provider = StaticProvider.from_callback(
        obtain,
        issuer=dev_idp.issuer,
        commitment=CommitmentType.AUD,
        require_gq=True,
        jwks=dev_jwks,
    )
    key = generate_signing_key()
    pktoken = provider.get_pktoken(key, extra_claims={"att": "digest"})
    assert seen == [pktoken.cic_claims.commitment()]
    assert pktoken.op.alg == "GQ256"
    verify_pktoken(
        pktoken,
        issuers.github_actions(issuer=dev_idp.issuer),
        dev_jwks.keys(dev_idp.issuer),
        now=now(),
    )


def test_callback_with_gq_bound_commitment(dev_idp: DevIdP, dev_jwks: JwksClient) -> None:
    provider = StaticProvider.from_callback(
        lambda commitment: dev_idp.mint_gitlab_token(),
        issuer=dev_idp.issuer,
        commitment=CommitmentType.GQ_BOUND,
        jwks=dev_jwks,
    )
    assert provider.issuer_config() == issuers.gitlab_ci(issuer=dev_idp.issuer)
    pktoken = provider.get_pktoken(generate_signing_key())
    assert pktoken.op.header["cic"] == pktoken.cic_claims.commitment()
    verify_pktoken(
        pktoken, issuers.gitlab_ci(issuer=dev_idp.issuer), dev_jwks.keys(dev_idp.issuer), now=now()
    )


def test_gq_without_keys_is_explained(dev_idp: DevIdP) -> None:
    provider = StaticProvider.from_callback(
        lambda commitment: dev_idp.mint_github_token(audience=commitment),
        issuer=dev_idp.issuer,
        commitment=CommitmentType.AUD,
        require_gq=True,
    )
    with pytest.raises(ProviderError, match="pass a JWKS client"):
        provider.get_pktoken(generate_signing_key())


def test_static_configuration_errors(dev_idp: DevIdP) -> None:
    with pytest.raises(ConfigError, match="nonce commitments need a client_id"):
        StaticProvider.from_callback(lambda c: "", issuer=dev_idp.issuer)
    with pytest.raises(ConfigError, match="needs the client instance claims"):
        StaticProvider(
            config=issuers.github_actions(issuer=dev_idp.issuer),
            id_token=dev_idp.mint_github_token(),
        )
    with pytest.raises(ConfigError, match="either an id_token or a callback"):
        StaticProvider(config=issuers.github_actions(issuer=dev_idp.issuer))
