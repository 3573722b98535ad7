"""Key-bound ID tokens (OpenID Connect Key Binding; OpenPubkey's ``KEY_BOUND``).

The provider signs the ephemeral key itself into ``cnf.jwk`` of an ID token whose protected
``typ`` is ``dpop+id_token``. The check is OpenPubkey's: ``cnf.jwk`` must be exactly the CIC
key's public JWK (``kty`` and the public parameters) plus ``alg`` = the CIC ``alg``.
"""

from __future__ import annotations

from typing import Any

import pytest

from opkey import issuers
from opkey.cic import ClientInstanceClaims
from opkey.errors import CommitmentError, ConfigError
from opkey.issuers import KEY_BOUND_TYP, CommitmentType, IssuerConfig
from opkey.keys import SigningKey, generate_signing_key
from opkey.pktoken import PKToken
from opkey.verify import verify_pktoken
from tests.helpers import CLIENT_ID, NOW, MiniOP


def bound_jwk(key: SigningKey) -> dict[str, Any]:
    jwk = key.public_jwk.public_members()
    jwk["alg"] = key.alg
    return jwk


def key_bound(
    op: MiniOP, key: SigningKey, *, typ: str | None = KEY_BOUND_TYP, **claims: Any
) -> PKToken:
    cic = ClientInstanceClaims.create(key.public_jwk)
    claims.setdefault("cnf", {"jwk": bound_jwk(key)})
    headers = {"typ": typ} if typ is not None else {"typ": "JWT"}
    id_token = op.mint(op.claims(**claims), headers=headers)
    return PKToken.create(id_token, cic, key)


def config(op: MiniOP) -> IssuerConfig:
    return issuers.oidc_key_bound(op.issuer, CLIENT_ID)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_key_bound_token_verifies(alg: str) -> None:
    op = MiniOP()
    key = generate_signing_key(alg)
    verified = verify_pktoken(key_bound(op, key), config(op), op.keyset, now=NOW)
    assert verified.commitment is CommitmentType.KEY_BOUND
    assert verified.upk == key.public_jwk


def test_no_nonce_is_needed_and_a_stale_one_is_ignored() -> None:
    """OpenPubkey checks no commitment for key-bound tokens: the key is the binding."""
    op = MiniOP()
    key = generate_signing_key()
    verify_pktoken(key_bound(op, key, nonce="whatever"), config(op), op.keyset, now=NOW)


@pytest.mark.parametrize(
    "change",
    [
        lambda jwk: jwk.update(x=generate_signing_key().public_jwk.members["x"]),
        lambda jwk: jwk.update(alg="EdDSA"),
        lambda jwk: jwk.pop("alg"),
        lambda jwk: jwk.update(kid="extra"),
        lambda jwk: jwk.update(use="sig"),
        lambda jwk: jwk.pop("y"),
    ],
)
def test_cnf_jwk_must_be_exactly_the_cic_key(change: Any) -> None:
    op = MiniOP()
    key = generate_signing_key("ES256")
    jwk = bound_jwk(key)
    change(jwk)
    pkt = key_bound(op, key, cnf={"jwk": jwk})
    with pytest.raises(CommitmentError, match=r"cnf\.jwk"):
        verify_pktoken(pkt, config(op), op.keyset, now=NOW)


@pytest.mark.parametrize("cnf", [None, {}, {"jwk": {}}, {"jkt": "abc"}, "jwk", {"jwk": "x"}])
def test_missing_cnf_jwk_is_refused(cnf: Any) -> None:
    op = MiniOP()
    pkt = key_bound(op, generate_signing_key(), cnf=cnf)
    with pytest.raises(CommitmentError, match="no key in its cnf"):
        verify_pktoken(pkt, config(op), op.keyset, now=NOW)


def test_plain_id_token_for_a_key_bound_issuer_is_refused() -> None:
    op = MiniOP()
    pkt = key_bound(op, generate_signing_key(), typ=None)
    with pytest.raises(CommitmentError, match="must have typ 'dpop\\+id_token'"):
        verify_pktoken(pkt, config(op), op.keyset, now=NOW)


def test_client_id_must_be_in_aud() -> None:
    op = MiniOP()
    pkt = key_bound(op, generate_signing_key(), aud="someone-else")
    with pytest.raises(CommitmentError, match="client id"):
        verify_pktoken(pkt, config(op), op.keyset, now=NOW)
    with pytest.raises(ConfigError, match="key-bound commitments need a client_id"):
        IssuerConfig(issuer=op.issuer, commitment=CommitmentType.KEY_BOUND)
