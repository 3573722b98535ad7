"""Where opkey and OpenPubkey Go agree to reject, and where they deliberately differ.

Each token is made against the dev IdP (its real signing key) and handed to both verifiers,
configured alike. ``both reject`` cases are attacks or malformed tokens; ``opkey is stricter``
cases are listed in spec/protocol.md §8 with the reason for each.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest

from opkey import gq, issuers
from opkey.cic import ClientInstanceClaims
from opkey.errors import CommitmentError, ExpiredError, FormatError, OpkeyError, SignatureError
from opkey.expiry import ExpiryPolicy
from opkey.issuers import IssuerConfig
from opkey.jose import b64url_encode, go_json, parse_compact
from opkey.jwks.keyset import KeySet
from opkey.keys import SigningKey, generate_signing_key
from opkey.message import sign_message, verify_message
from opkey.pktoken import PKToken
from opkey.sandbox.devidp import DevIdP
from opkey.verify import verify_pktoken
from tests.interop.openpubkey_harness import go_verify


def raw_token(idp: DevIdP, header: dict[str, Any], payload: bytes) -> str:
    """An RS256 JWS over exactly these header members and payload bytes, by the dev IdP's key
    (for tokens no well-behaved JWT library writes)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    key = idp.keyring.active
    header = {"alg": "RS256", "kid": key.kid, **header}
    signing_input = f"{b64url_encode(go_json(header))}.{b64url_encode(payload)}"
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url_encode(signature)}"


def gq_custom(idp: DevIdP, id_token: str, header: dict[str, str], *, old_form: bool = False) -> str:
    """A GQ256 token with a chosen header; ``old_form``: the pre-v0.25 proof, whose message is
    the original signing input, so the GQ header is not covered."""
    jws = parse_compact(id_token)
    params = gq.GQParams.from_key(idp.keyring.active.private_key.public_key())
    header_b64 = b64url_encode(go_json(header))
    q = pow(int.from_bytes(jws.signature, "big"), -1, params.n)
    message = jws.signing_input if old_form else f"{header_b64}.{jws.payload_b64}".encode()
    proof = gq._sign(params, q, message, secrets.randbelow)
    return f"{header_b64}.{jws.payload_b64}.{b64url_encode(proof)}"


def gq_header(idp: DevIdP, id_token: str, **members: str) -> dict[str, str]:
    return {
        "alg": "GQ256",
        "jkt": idp.keyring.active.public_jwk.thumbprint(),
        "kid": id_token.split(".")[0],
        "typ": "JWT",
        **members,
    }


def both(
    idp: DevIdP, pktoken: PKToken, config: IssuerConfig, style: str, **go: Any
) -> tuple[dict[str, Any], OpkeyError | None]:
    """Go's answer and opkey's error (``None`` when opkey accepts) for the same token."""
    answer = go_verify(
        pktoken, form=go.pop("form", "compact"), issuer=idp.issuer, style=style,
        jwks=idp.keyring.jwks(), **go,
    )  # fmt: skip
    try:
        verify_pktoken(pktoken, config, KeySet.from_dict(idp.keyring.jwks()), now=now_dt())
    except OpkeyError as exc:
        return answer, exc
    return answer, None


def now_dt() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def gitlab_claims(idp: DevIdP, **changes: Any) -> dict[str, Any]:
    claims = idp.settings.gitlab.claims(issuer=idp.issuer, issued_at=idp.provider.now(), jti="j")
    claims.update(changes)
    return claims


def nonce_pktoken(idp: DevIdP, key: SigningKey, token_for: Any) -> PKToken:
    cic = ClientInstanceClaims.create(key.public_jwk)
    return PKToken.create(token_for(cic.commitment()), cic, key)


# -- both reject -----------------------------------------------------------------------------


def test_both_reject_a_gq_bound_token_with_an_array_aud(dev_idp: DevIdP) -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    for aud in (["OPENPUBKEY-PKTOKEN:opkey-dev"], ["other", "OPENPUBKEY-PKTOKEN:opkey-dev"]):
        id_token = dev_idp.provider.sign_claims(gitlab_claims(dev_idp, aud=aud))
        bound = gq.sign_jwt(id_token, dev_idp.keyring.active.public_jwk, cic=cic.commitment())
        pktoken = PKToken.create(bound, cic, key)
        answer, error = both(dev_idp, pktoken, issuers.gitlab_ci(issuer=dev_idp.issuer), "gitlab")
        assert not answer["ok"]
        assert "must be a string" in answer["error"]
        assert isinstance(error, CommitmentError)
        assert "single string" in str(error)


def test_both_reject_a_pre_v0_25_gq_signature(dev_idp: DevIdP) -> None:
    """The old proof signs the original signing input only: a GitLab token could be re-bound
    to another key by rewriting the GQ header's ``cic``."""
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = dev_idp.mint_gitlab_token()
    header = gq_header(dev_idp, id_token, cic=cic.commitment())
    config = issuers.gitlab_ci(issuer=dev_idp.issuer)
    current = PKToken.create(gq_custom(dev_idp, id_token, header), cic, key)
    answer, error = both(dev_idp, current, config, "gitlab")
    assert answer["ok"], answer  # the helper makes valid proofs in the current form
    assert error is None
    old = PKToken.create(gq_custom(dev_idp, id_token, header, old_form=True), cic, key)
    answer, error = both(dev_idp, old, config, "gitlab")
    assert not answer["ok"]
    assert "GQ" in answer["error"]
    assert isinstance(error, SignatureError)


def test_both_reject_a_commitment_to_another_key(dev_idp: DevIdP) -> None:
    key, other = generate_signing_key(), generate_signing_key()
    other_cic = ClientInstanceClaims.create(other.public_jwk)
    token = gq.sign_jwt(
        dev_idp.mint_github_token(other_cic.commitment()), dev_idp.keyring.active.public_jwk
    )
    pktoken = PKToken.create(token, ClientInstanceClaims.create(key.public_jwk), key)
    answer, error = both(dev_idp, pktoken, issuers.github_actions(issuer=dev_idp.issuer), "github")
    assert not answer["ok"]
    assert "commitment" in answer["error"]
    assert isinstance(error, CommitmentError)


def test_both_reject_a_key_bound_token_for_another_key(dev_idp: DevIdP) -> None:
    key, other = generate_signing_key(), generate_signing_key()
    jwk = other.public_jwk.public_members() | {"alg": other.alg}
    claims = dev_idp.provider.mint_id_token(dev_idp.client_id)  # for its claim set
    payload = json.loads(parse_compact(claims).payload()) | {"cnf": {"jwk": jwk}}
    token = raw_token(dev_idp, {"typ": "dpop+id_token"}, go_json(payload))
    pktoken = PKToken.create(token, ClientInstanceClaims.create(key.public_jwk), key)
    config = issuers.oidc_key_bound(dev_idp.issuer, dev_idp.client_id)
    answer, error = both(dev_idp, pktoken, config, "keybound", client_id=dev_idp.client_id)
    assert not answer["ok"]
    assert "cnf" in answer["error"]
    assert isinstance(error, CommitmentError)
    # The same construction with the right key: both accept (the test can tell them apart).
    payload["cnf"] = {"jwk": key.public_jwk.public_members() | {"alg": key.alg}}
    token = raw_token(dev_idp, {"typ": "dpop+id_token"}, go_json(payload))
    pktoken = PKToken.create(token, ClientInstanceClaims.create(key.public_jwk), key)
    answer, error = both(dev_idp, pktoken, config, "keybound", client_id=dev_idp.client_id)
    assert answer["ok"], answer
    assert error is None


def test_both_reject_an_osm_of_the_wrong_type(dev_idp: DevIdP) -> None:
    key = generate_signing_key()
    from opkey.providers import GitHubActionsProvider

    pktoken = GitHubActionsProvider.from_env(dev_idp.env()).get_pktoken(key)
    osm = sign_message(b"x", pktoken, key, typ="not-osm")
    answer = go_verify(
        pktoken, messages=[osm], issuer=dev_idp.issuer, style="github", jwks=dev_idp.keyring.jwks()
    )
    assert answer["ok"], answer
    assert not answer["messages"][0]["ok"]
    assert "typ" in answer["messages"][0]["error"]
    with pytest.raises(FormatError, match="typ"):
        verify_message(osm, pktoken)


def test_both_use_a_microsoft_style_jwks_with_an_encryption_key(dev_idp: DevIdP) -> None:
    """Unknown public members and an RSA-OAEP ``use: enc`` key (Keycloak's default) next to the
    signing key: Go's library uses the set, and so does opkey."""
    jwks = dev_idp.keyring.jwks()
    signing = jwks["keys"][0] | {"issuer": dev_idp.issuer, "cloud_instance_name": "example"}
    encryption = generate_signing_key("RS256").public_jwk.to_dict() | {
        "alg": "RSA-OAEP",
        "use": "enc",
        "kid": "enc-1",
    }
    mixed = {"keys": [encryption, signing]}
    key = generate_signing_key()
    pktoken = nonce_pktoken(
        dev_idp, key, lambda nonce: dev_idp.mint_id_token(dev_idp.client_id, nonce=nonce)
    )
    answer = go_verify(
        pktoken, issuer=dev_idp.issuer, style="standard", client_id=dev_idp.client_id, jwks=mixed
    )
    assert answer["ok"], answer
    config = issuers.oidc(dev_idp.issuer, dev_idp.client_id)
    verify_pktoken(pktoken, config, KeySet.from_dict(mixed), now=now_dt())


# -- opkey is deliberately stricter ------------------------------------------------------------


def test_opkey_is_stricter_on_comma_separated_aud(dev_idp: DevIdP) -> None:
    """Go joins an array aud with commas and splits it again, so the *string*
    ``"opkey-dev,other"`` contains client id ``opkey-dev`` for Go. opkey compares exact
    strings: a provider never issued that token to ``opkey-dev``."""
    key = generate_signing_key()

    def token(nonce: str) -> str:
        claims = json.loads(parse_compact(dev_idp.mint_id_token(nonce=nonce)).payload())
        return dev_idp.provider.sign_claims(claims | {"aud": f"{dev_idp.client_id},other"})

    pktoken = nonce_pktoken(dev_idp, key, token)
    config = issuers.oidc(dev_idp.issuer, dev_idp.client_id)
    answer, error = both(dev_idp, pktoken, config, "standard", client_id=dev_idp.client_id)
    assert answer["ok"], answer
    assert isinstance(error, CommitmentError)
    assert "client id" in str(error)


def test_opkey_is_stricter_on_the_authorized_party(dev_idp: DevIdP) -> None:
    """Go checks only that the client id is among the audiences. A token that lists our
    client beside another and names the other in ``azp`` was obtained by the other client,
    which chose its nonce: opkey refuses it (OpenID Connect Core §3.1.3.7)."""
    key = generate_signing_key()

    def token(nonce: str) -> str:
        claims = json.loads(parse_compact(dev_idp.mint_id_token(nonce=nonce)).payload())
        return dev_idp.provider.sign_claims(
            claims | {"aud": [dev_idp.client_id, "other"], "azp": "other"}
        )

    pktoken = nonce_pktoken(dev_idp, key, token)
    config = issuers.oidc(dev_idp.issuer, dev_idp.client_id)
    answer, error = both(dev_idp, pktoken, config, "standard", client_id=dev_idp.client_id)
    assert answer["ok"], answer
    assert isinstance(error, CommitmentError)
    assert "issued to another client (azp 'other')" in str(error)


def test_opkey_is_stricter_on_an_empty_typ(dev_idp: DevIdP) -> None:
    """In the compact form Go takes an OP signature with ``typ: ""`` for an ID token (in the
    JSON form it refuses it); opkey refuses it in both: an empty ``typ`` is no known role."""
    key = generate_signing_key()

    def token(nonce: str) -> str:
        claims = json.loads(parse_compact(dev_idp.mint_id_token(nonce=nonce)).payload())
        return raw_token(dev_idp, {"typ": ""}, go_json(claims))

    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = token(cic.commitment())
    cic_header = b64url_encode(cic.header_bytes())
    payload_b64 = id_token.split(".")[1]
    cic_sig = b64url_encode(key.sign(f"{cic_header}.{payload_b64}".encode()))
    header_b64, _, signature = id_token.split(".")
    compact = f"{payload_b64}:{header_b64}:{signature}:{cic_header}:{cic_sig}"
    answer = go_verify(
        compact,
        issuer=dev_idp.issuer,
        style="standard",
        client_id=dev_idp.client_id,
        jwks=dev_idp.keyring.jwks(),
    )
    assert answer["ok"], answer
    with pytest.raises(FormatError, match="unrecognized signature type ''"):
        PKToken.from_compact(compact)


def test_opkey_is_stricter_on_duplicate_json_members(dev_idp: DevIdP) -> None:
    """A payload naming ``sub`` twice: Go's decoder keeps the last one, others may keep the
    first. opkey refuses the token, so no two readers can disagree on who signed."""
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    claims = json.loads(parse_compact(dev_idp.mint_id_token(nonce=cic.commitment())).payload())
    text = go_json(claims).decode()
    payload = ('{"sub":"attacker",' + text[1:]).encode()
    id_token = raw_token(dev_idp, {"typ": "JWT"}, payload)
    payload_b64 = id_token.split(".")[1]
    cic_header = b64url_encode(cic.header_bytes())
    cic_sig = b64url_encode(key.sign(f"{cic_header}.{payload_b64}".encode()))
    header_b64, _, signature = id_token.split(".")
    compact = f"{payload_b64}:{header_b64}:{signature}:{cic_header}:{cic_sig}"
    answer = go_verify(
        compact,
        issuer=dev_idp.issuer,
        style="standard",
        client_id=dev_idp.client_id,
        jwks=dev_idp.keyring.jwks(),
    )
    assert answer["ok"], answer
    with pytest.raises(FormatError, match="duplicate JSON member name 'sub'"):
        PKToken.from_compact(compact)


def test_opkey_is_stricter_on_the_gq_jkt(dev_idp: DevIdP) -> None:
    """Go finds the GQ key by the original ``kid`` alone and never reads ``jkt``; opkey also
    requires ``jkt`` to be that key's thumbprint, so a key named one way and fingerprinted
    another is refused (archives look keys up by ``jkt``)."""
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = dev_idp.mint_github_token(cic.commitment())
    header = gq_header(dev_idp, id_token, jkt=generate_signing_key().public_jwk.thumbprint())
    pktoken = PKToken.create(gq_custom(dev_idp, id_token, header), cic, key)
    answer, error = both(dev_idp, pktoken, issuers.github_actions(issuer=dev_idp.issuer), "github")
    assert answer["ok"], answer
    assert error is not None
    assert "thumbprint" in str(error)


def test_opkey_is_stricter_on_times_in_the_future(dev_idp: DevIdP) -> None:
    """Go checks neither ``iat`` nor ``nbf``; opkey refuses a token issued (or valid from)
    more than the leeway (60 s) in the future, whatever the expiry policy."""
    key = generate_signing_key()
    later = int(time.time()) + 3600
    for changes in ({"iat": later, "exp": later + 300}, {"nbf": later}):

        def token(nonce: str, changes: dict[str, int] = changes) -> str:
            claims = json.loads(parse_compact(dev_idp.mint_id_token(nonce=nonce)).payload())
            return dev_idp.provider.sign_claims(claims | changes)

        pktoken = nonce_pktoken(dev_idp, key, token)
        config = issuers.oidc(dev_idp.issuer, dev_idp.client_id)
        answer, error = both(dev_idp, pktoken, config, "standard", client_id=dev_idp.client_id)
        assert answer["ok"], answer
        assert isinstance(error, ExpiredError)


def test_opkey_allows_clock_skew_on_exp_where_go_does_not(dev_idp: DevIdP) -> None:
    """The one place opkey is more lenient, by design: under the ``oidc`` expiry policy a
    token expired less than the leeway (60 s, configurable down to 0) ago is still accepted,
    for clock skew; Go compares ``exp`` to its clock exactly."""
    key = generate_signing_key()

    def token(nonce: str) -> str:
        claims = json.loads(parse_compact(dev_idp.mint_id_token(nonce=nonce)).payload())
        past = int(time.time())
        return dev_idp.provider.sign_claims(claims | {"iat": past - 600, "exp": past - 20})

    pktoken = nonce_pktoken(dev_idp, key, token)
    config = issuers.oidc(dev_idp.issuer, dev_idp.client_id, expiry=ExpiryPolicy.oidc())
    answer, error = both(
        dev_idp, pktoken, config, "standard", client_id=dev_idp.client_id, expiration="oidc"
    )
    assert not answer["ok"]
    assert "expired" in answer["error"]
    assert error is None
    strict = issuers.oidc(dev_idp.issuer, dev_idp.client_id, expiry=ExpiryPolicy.oidc(leeway=0))
    with pytest.raises(ExpiredError):
        verify_pktoken(pktoken, strict, KeySet.from_dict(dev_idp.keyring.jwks()), now=now_dt())
