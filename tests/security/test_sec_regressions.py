"""Regression tests for defects found by the attack suite and the fuzzers (see fuzz/).

Each test names the defect it pins: before its fix, the input either escaped the error
hierarchy (a ``TypeError``/``ValueError`` instead of an :class:`~opkey.errors.OpkeyError`) or
was accepted where it should have been refused.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from opkey.digest import Digest
from opkey.errors import ConfigError, FormatError, KeyNotFoundError, NetworkError
from opkey.expiry import ExpiryPolicy
from opkey.http import check_url
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jose import parse_json
from opkey.jwks.client import JwksClient
from opkey.jwks.keyset import KeySet
from opkey.pktoken import MAX_TIME, PKToken
from opkey.policy.claims import UnsafeNoPolicy
from opkey.signer import Signer
from tests.helpers import MiniOP, rsa_key
from tests.security.sec_common import (
    doc,
    forge,
    header,
    parse,
    pinned_verifier,
    rsa_signer,
    set_header,
)


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


@pytest.mark.parametrize("kty", [{"EC": 1}, {}, ["EC"], [], None, 1])
def test_unhashable_kty_in_the_cic_upk_is_a_format_error(op: MiniOP, kty: object) -> None:
    """``"kty": {}`` in a PK token's upk raised TypeError (unhashable) from the parser."""
    pkt, _ = op.pktoken()
    d = doc(pkt)
    cic_header = header(d, 1)
    cic_header["upk"]["kty"] = kty
    set_header(d, 1, cic_header)
    with pytest.raises(FormatError, match="CIC upk: unsupported key type"):
        parse(d)


@pytest.mark.parametrize("kty", [["oct"], {"kty": "RSA"}, [], {}])
def test_unhashable_kty_in_a_jwks_is_a_format_error(kty: object) -> None:
    """A JWKS key with ``"kty": ["oct"]`` raised TypeError: a hostile JWKS response (or a
    pinned file) crashed the verifier instead of being reported as malformed."""
    with pytest.raises(FormatError, match="unsupported key type"):
        KeySet.from_json(json.dumps({"keys": [{"kty": kty, "kid": "k"}]}))


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E999", "123456789e999", "0.1e310"])
def test_numbers_overflowing_to_infinity_are_refused(op: MiniOP, number: str) -> None:
    """Python reads ``1e400`` as ``inf``, so the NaN/Infinity rule could be spelled around; the
    value then re-encoded (PK token hash, bundle output) as the non-JSON token ``Infinity``."""
    pkt, _ = op.pktoken()
    raw = pkt.to_json().decode()
    with_header = raw.replace('"signature"', '"header":{"x":' + number + '},"signature"', 1)
    with pytest.raises(FormatError, match="is not a finite number"):
        PKToken.from_json(with_header)
    claims = json.dumps(op.claims(nonce="n"))[:-1] + f',"score":{number}}}'
    forged = forge(
        op, {"alg": "RS256", "kid": op.kid, "typ": "JWT"}, rsa_signer(op.private_key),
        payload=claims.encode(),
    )  # fmt: skip
    with pytest.raises(FormatError, match="is not a finite number"):
        parse(forged.document)
    assert parse_json("1e308") == 1e308


def test_raw_lone_surrogate_in_json_text_is_refused(op: MiniOP) -> None:
    """A ``str`` holding a raw lone surrogate (not a ``\\ud800`` escape) parsed, and hashing
    the PK token then raised UnicodeEncodeError."""
    d = doc(op.pktoken()[0])
    d["signatures"][0]["header"] = {"note": "\ud800"}
    with pytest.raises(FormatError, match="lone surrogate"):
        PKToken.from_json(json.dumps(d, ensure_ascii=False))
    with pytest.raises(FormatError, match="lone surrogate"):
        parse_json('"\udfff"')


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 10**15},
        {"iat": 10**15, "exp": 10**15 + 1},
        {"iat": -(10**12), "nbf": None},
        {"nbf": -1},
        {"exp": MAX_TIME + 1},
        {"iat": 2**63, "exp": 2**64},
        {"exp": 10**4000},
    ],
)
def test_time_claims_outside_1970_to_9999_are_refused(op: MiniOP, claims: dict[str, Any]) -> None:
    """A validly signed token with ``exp`` in the year 31 million passed verification under
    the ``never`` expiry policy, then building the verified identity raised ValueError."""
    forged = forge(op, {"alg": "RS256", "kid": op.kid, "typ": "JWT"}, rsa_signer(op.private_key))
    payload = {**forged.claims, **claims}
    forged = forge(
        op, {"alg": "RS256", "kid": op.kid, "typ": "JWT"}, rsa_signer(op.private_key),
        payload=json.dumps({k: v for k, v in payload.items() if v is not None}).encode(),
    )  # fmt: skip
    with pytest.raises(FormatError, match=f"must be an integer time in 0..{MAX_TIME}"):
        parse(forged.document)


def test_time_claims_at_the_limits_still_verify(op: MiniOP) -> None:
    pkt, key = op.pktoken(exp=MAX_TIME)
    verifier = pinned_verifier((op.config(expiry=ExpiryPolicy.never()), op.keyset))
    digest = Digest("sha256:" + "99" * 32)
    identity = verifier.verify_bundle(
        Signer(pkt, key).sign_digest(digest), digest, policy=UnsafeNoPolicy()
    )
    assert identity.expires_at.year == 9999


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example", ".example", "a" * 300])
def test_url_host_that_is_not_a_valid_idna_name_is_a_network_error(host: str) -> None:
    """``socket.getaddrinfo`` encodes names with IDNA first and raises UnicodeError (not
    OSError) for empty or over-long labels: a discovery document naming such a ``jwks_uri``
    crashed the JWKS client instead of failing as a NetworkError."""
    with pytest.raises(NetworkError, match="cannot resolve"):
        check_url(f"https://{host}/jwks")


@pytest.mark.parametrize(
    "host", ["100.100.100.200", "100.64.0.1", "100.127.255.254", "192.0.0.192"]
)
def test_shared_and_non_global_addresses_are_internal(host: str) -> None:
    """``ipaddress.is_private`` is False for the shared address space 100.64.0.0/10 (Alibaba
    Cloud's metadata service is 100.100.100.200) and, before Python 3.11.9, for most of
    192.0.0.0/24 (192.0.0.192 was Oracle Cloud's metadata service), so a ``jwks_uri`` there
    was fetched."""
    with pytest.raises(NetworkError, match="resolves to internal address"):
        check_url(f"https://{host}/jwks")
    check_url("https://93.184.215.14/jwks")  # a public address is still fine


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/jwks", "https://localhost/jwks", "http://[::1]:9/jwks",
     "https://127.0.0.2/jwks", "https://localhost./jwks"],
)  # fmt: skip
def test_loopback_urls_only_when_allowed(url: str) -> None:
    """A provider that is not on loopback could name a loopback ``jwks_uri`` and make the
    verifier query services on its own host. JwksClient now allows loopback JWKS URLs only
    for loopback issuers (end to end: test_sec_network.py)."""
    check_url(url)
    with pytest.raises(NetworkError, match="on loopback, which only a provider on loopback"):
        check_url(url, allow_loopback=False)


def test_rate_limited_key_miss_says_why(httpserver: HTTPServer) -> None:
    """A JWKS with two keys under the genuine kid (Wycheproof DuplicateKid) is refused as
    ambiguous, but when the refetch was rate-limited the error claimed there was *no* key
    with that kid. The reason of the miss is now kept."""
    issuer = httpserver.url_for("/").rstrip("/")
    genuine = MiniOP(issuer=issuer, kid="k1")
    extra = MiniOP(issuer=issuer, kid="k1", private_key=rsa_key(fresh=True))
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer, "jwks_uri": issuer + "/jwks"}
    )
    httpserver.expect_request("/jwks").respond_with_json(
        {"keys": [genuine.public_jwk.to_dict(), extra.public_jwk.to_dict()]}
    )
    client = JwksClient([issuer])
    with pytest.raises(KeyNotFoundError, match="2 keys with kid 'k1'; ambiguous"):
        client.find_key(issuer, kid="k1")
    with pytest.raises(KeyNotFoundError, match="no key with kid 'k2' in the JWKS"):
        client.find_key(issuer, kid="k2")


def test_gq_bound_issuer_needs_an_audience_prefix(op: MiniOP) -> None:
    """IssuerConfig accepted ``gq_audience_prefix=""`` (the policy file did not): every ``aud``
    then matched, so a GitLab token issued for another audience could be bound to a key."""
    with pytest.raises(ConfigError, match="non-empty gq_audience_prefix"):
        IssuerConfig(
            op.issuer,
            CommitmentType.GQ_BOUND,
            algorithms=frozenset({"GQ256"}),
            require_gq=True,
            gq_audience_prefix="",
        )
