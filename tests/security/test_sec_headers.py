"""Attacks through JOSE header members (catalog §2, §3, §4 JWE).

Keys come only from the pinned issuer's JWKS (or archive), by exact ``kid``/``jkt``: never from
``jwk``, ``jku``, ``x5u`` or ``x5c``, in the OP, CIC or OSM header. ``kid`` is an opaque string
looked up exactly, in one issuer's keys only. ``crit``, ``b64``, ``enc`` and ``zip`` are refused,
and so is a five-part (JWE) token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from opkey.artifact import artifact_statement
from opkey.bundle import Bundle
from opkey.cic import ClientInstanceClaims
from opkey.digest import Digest
from opkey.errors import FormatError, KeyNotFoundError, SignatureError
from opkey.jose import b64url_encode, go_json, parse_compact
from opkey.jwks.archive import JwksArchive
from opkey.jwks.keyset import KeySet
from opkey.jwks.sources import ArchiveKeys, PinnedKeys
from opkey.keys import generate_signing_key
from opkey.message import verify_message
from opkey.pktoken import PKToken
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from opkey.verify import verify_pktoken
from tests.helpers import NOW, MiniOP, rsa_key
from tests.security.sec_common import (
    GH_2022,
    GH_GQ,
    GH_KID_2022,
    GITHUB,
    compact,
    doc,
    forge,
    gh_at,
    gh_keyset,
    gh_pktoken,
    header,
    jwks,
    parse,
    pinned_verifier,
    rsa_signer,
    set_header,
)

KEY_MEMBERS = ["jwk", "jku", "x5u", "x5c"]
DIGEST = Digest("sha256:" + "17" * 32)


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


@pytest.fixture(scope="module")
def attacker() -> MiniOP:
    return MiniOP(private_key=rsa_key(fresh=True), kid="attacker")


def _key_member(member: str, attacker: MiniOP, url: str = "https://attacker.example/k") -> Any:
    """What an attacker would put in ``member`` to point the verifier at their own key."""
    if member == "jwk":
        return attacker.public_jwk.to_dict()
    if member == "x5c":
        return ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]
    return url


@pytest.mark.parametrize("member", KEY_MEMBERS)
def test_key_in_the_op_header_is_refused(op: MiniOP, attacker: MiniOP, member: str) -> None:
    """The attacker signs with their own key and ships it (or a pointer to it) in the header."""
    forged = forge(
        attacker,
        {"alg": "RS256", "kid": op.kid, "typ": "JWT", member: _key_member(member, attacker)},
        rsa_signer(attacker.private_key),
        iss=op.issuer,
    )
    with pytest.raises(FormatError, match=f"protected header member '{member}' is not allowed"):
        parse(forged.document)


@pytest.mark.parametrize("member", KEY_MEMBERS)
def test_key_in_the_cic_header_is_refused(op: MiniOP, attacker: MiniOP, member: str) -> None:
    pkt, key = op.pktoken()
    d = doc(pkt)
    cic_header = header(d, 1)
    cic_header[member] = _key_member(member, attacker)
    set_header(d, 1, cic_header)
    signing_input = f"{d['signatures'][1]['protected']}.{d['payload']}".encode()
    d["signatures"][1]["signature"] = b64url_encode(key.sign(signing_input))
    with pytest.raises(FormatError, match=f"member '{member}' is not allowed"):
        parse(d)


@pytest.mark.parametrize("member", KEY_MEMBERS)
def test_key_in_the_osm_header_is_refused(op: MiniOP, member: str) -> None:
    """An OSM signed by a stranger's key that names itself in the header."""
    pkt, _ = op.pktoken()
    stranger = generate_signing_key()
    value = stranger.public_jwk.to_dict() if member == "jwk" else _key_member(member, op)
    osm = compact(
        {"alg": "ES256", "kid": pkt.hash(), "typ": "osm", member: value},
        artifact_statement(DIGEST),
        stranger.sign,
    )
    with pytest.raises(FormatError, match=f"member '{member}' is not allowed"):
        verify_message(osm, pkt)
    with pytest.raises(FormatError, match=f"member '{member}' is not allowed"):
        Bundle(pkt, osm)


def test_key_urls_are_never_fetched(httpserver: HTTPServer, op: MiniOP, attacker: MiniOP) -> None:
    """``jku``/``x5u`` (protected: refused; unprotected: ignored) cause no request at all."""
    url = httpserver.url_for("/attacker-jwks")
    httpserver.expect_request("/attacker-jwks").respond_with_json(
        {"keys": [attacker.public_jwk.to_dict()]}
    )
    forged = forge(
        attacker,
        {"alg": "RS256", "kid": "attacker", "typ": "JWT", "jku": url},
        rsa_signer(attacker.private_key),
        iss=op.issuer,
    )
    with pytest.raises(FormatError, match="'jku' is not allowed"):
        parse(forged.document)
    # In the unprotected header the pointer parses (it is unsigned, so it is never read).
    forged = forge(
        attacker, {"alg": "RS256", "kid": "attacker", "typ": "JWT"},
        rsa_signer(attacker.private_key), iss=op.issuer,
    )  # fmt: skip
    forged.document["signatures"][0]["header"] = {"jku": url, "x5u": url}
    verifier = pinned_verifier((op.config(), op.keyset))
    with pytest.raises(KeyNotFoundError, match="no key with kid 'attacker'"):
        verifier.identify(parse(forged.document))
    assert httpserver.log == []


KID_ATTACKS = [
    "../../../../etc/passwd",
    "/dev/stdin",
    "file:///etc/passwd",
    "..\\..\\windows\\win.ini",
    "' OR '1'='1",
    "x' UNION SELECT jkt, jwk FROM keys --",
    '"; DROP TABLE keys; --',
    "%",
    "*",
    "test-key-1\u0000",
    "test-key-1 ",
    "TEST-KEY-1",
    "",
]


@pytest.mark.parametrize("kid", KID_ATTACKS)
def test_kid_is_an_opaque_exact_string_in_pinned_keys(
    op: MiniOP, attacker: MiniOP, kid: str
) -> None:
    """Traversal, SQL and wildcard kids name no key: lookup is exact, nothing is interpreted."""
    forged = forge(
        attacker, {"alg": "RS256", "kid": kid, "typ": "JWT"}, rsa_signer(attacker.private_key),
        iss=op.issuer,
    )  # fmt: skip
    with pytest.raises(KeyNotFoundError, match="no key with kid"):
        verify_pktoken(parse(forged.document), op.config(), op.keyset, now=NOW)


@pytest.mark.parametrize("kid", KID_ATTACKS)
def test_kid_is_an_opaque_exact_string_in_the_archive(tmp_path: Path, kid: str) -> None:
    """The SQLite archive binds kid as a parameter: injections find nothing, change nothing."""
    archive = JwksArchive(tmp_path / "archive.sqlite")
    archive.record(GITHUB, jwks("github-jwks_2022_step-security.json"), NOW)
    verifier = Verifier(Trust([TrustedIssuer(GH_GQ, [ArchiveKeys(archive)])]), clock=lambda: NOW)
    d = doc(gh_pktoken(GH_2022).pktoken)
    gq_header = header(d, 0)
    gq_header["kid"] = b64url_encode(go_json({"alg": "RS256", "kid": kid, "typ": "JWT"}))
    set_header(d, 0, gq_header)
    with pytest.raises(KeyNotFoundError, match="has kid"):
        archive.find(GITHUB, kid=kid)
    with pytest.raises(KeyNotFoundError, match="never published with kid"):
        verifier.identify(parse(d), at=gh_at(GH_2022))
    assert {entry.kid for entry in archive.entries()} == {
        GH_KID_2022,
        "52F197C481DE70112C441B4A9B37B53C7FCF0DB5",
    }


def test_kid_in_a_gq_original_header_is_looked_up_exactly() -> None:
    """For GQ256 the kid inside the carried original header names the key (with jkt)."""
    d = doc(gh_pktoken(GH_2022).pktoken)
    gq_header = header(d, 0)
    original = {"alg": "RS256", "kid": "../" + GH_KID_2022, "typ": "JWT"}
    gq_header["kid"] = b64url_encode(go_json(original))
    set_header(d, 0, gq_header)
    with pytest.raises(KeyNotFoundError, match=r"never published with kid|has kid"):
        verify_pktoken(parse(d), GH_GQ, gh_keyset(GH_2022), now=gh_at(GH_2022))


@pytest.mark.parametrize("kid", [123, None, True, ["test-key-1"], {"$ne": ""}, 1.5])
def test_non_string_kid_is_a_format_error(op: MiniOP, kid: object) -> None:
    forged = forge(op, {"alg": "RS256", "kid": kid, "typ": "JWT"}, rsa_signer(op.private_key))
    with pytest.raises(FormatError, match="header 'kid' must be a string"):
        parse(forged.document)


def test_kid_of_another_trusted_issuer_is_not_found(op: MiniOP) -> None:
    """Issuer B's key, named by B's kid, in a token claiming issuer A: A's keys lack it."""
    other = MiniOP(
        issuer="https://other.example.test", kid="other-key", private_key=rsa_key(fresh=True)
    )
    verifier = pinned_verifier((op.config(), op.keyset), (other.config(), other.keyset))
    forged = forge(
        other, {"alg": "RS256", "kid": other.kid, "typ": "JWT"}, rsa_signer(other.private_key),
        iss=op.issuer,
    )  # fmt: skip
    with pytest.raises(KeyNotFoundError, match="no key with kid 'other-key'"):
        verifier.identify(parse(forged.document))
    # The same token claiming B verifies: only the issuer claim was wrong.
    genuine = forge(
        other, {"alg": "RS256", "kid": other.kid, "typ": "JWT"}, rsa_signer(other.private_key)
    )
    verifier.identify(parse(genuine.document))


def test_missing_kid_never_tries_every_key(op: MiniOP) -> None:
    second = MiniOP(kid="second", private_key=rsa_key(fresh=True))
    two_keys = KeySet((op.public_jwk, second.public_jwk))
    forged = forge(op, {"alg": "RS256", "typ": "JWT"}, rsa_signer(second.private_key))
    with pytest.raises(KeyNotFoundError, match="no kid and the JWKS holds 2 keys"):
        verify_pktoken(parse(forged.document), op.config(), two_keys, now=NOW)
    # With one key, that key alone is tried: a signature by another key fails.
    with pytest.raises(SignatureError, match="RS256 signature does not verify"):
        verify_pktoken(parse(forged.document), op.config(), op.keyset, now=NOW)


def test_kid_lookup_is_case_sensitive_on_real_keys() -> None:
    d = doc(gh_pktoken(GH_2022).pktoken)
    gq_header = header(d, 0)
    original = {"alg": "RS256", "kid": GH_KID_2022.lower(), "typ": "JWT"}
    gq_header["kid"] = b64url_encode(go_json(original))
    set_header(d, 0, gq_header)
    keys = gh_keyset(GH_2022)
    # jkt still names the right key, but the kid it was published with differs.
    with pytest.raises(KeyNotFoundError, match="has kid '78167F"):
        verify_pktoken(parse(d), GH_GQ, keys, now=gh_at(GH_2022))


@pytest.mark.parametrize(
    "member", [("crit", ["exp"]), ("crit", []), ("crit", ["b64"]), ("b64", False), ("b64", True)]
)
@pytest.mark.parametrize("where", ["op", "cic", "osm"])
def test_crit_and_b64_are_refused_everywhere(
    op: MiniOP, member: tuple[str, Any], where: str
) -> None:
    """RFC 7515 crit (PyJWT CVE-2026-32597 class) and RFC 7797 b64 change what is signed."""
    name, value = member
    pkt, key = op.pktoken()
    if where == "osm":
        osm = compact(
            {"alg": "ES256", "kid": pkt.hash(), "typ": "osm", name: value},
            artifact_statement(DIGEST),
            key.sign,
        )
        with pytest.raises(FormatError, match=f"member '{name}' is not allowed"):
            verify_message(osm, pkt)
        return
    d = doc(pkt)
    index = 0 if where == "op" else 1
    h = header(d, index)
    h[name] = value
    set_header(d, index, h)
    with pytest.raises(FormatError, match=f"member '{name}' is not allowed"):
        parse(d)


JWE = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGeipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDbSv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaVmqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je81860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi6UklfCpIMfIjf7iGdXKHzg.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ"  # noqa: E501 - RFC 7516 A.1


def test_five_part_jwe_is_refused_as_op_token_and_as_osm(op: MiniOP) -> None:
    """A JWE is not a signature: jwcrypto CVE-2022-3102 and sign/encrypt confusion."""
    key = generate_signing_key()
    with pytest.raises(FormatError, match="five-part token is a JWE"):
        PKToken.create(JWE, ClientInstanceClaims.create(key.public_jwk), key)
    pkt, _ = op.pktoken()
    with pytest.raises(FormatError, match="five-part token is a JWE"):
        verify_message(JWE, pkt)
    with pytest.raises(FormatError, match="five-part token is a JWE"):
        Bundle(pkt, JWE)
    with pytest.raises(FormatError, match="five-part token is a JWE"):
        parse_compact(JWE)


@pytest.mark.parametrize("member", [("enc", "A256GCM"), ("zip", "DEF")])
def test_jwe_members_in_a_jws_header_are_refused(op: MiniOP, member: tuple[str, str]) -> None:
    name, value = member
    forged = forge(
        op, {"alg": "RS256", "kid": op.kid, "typ": "JWT", name: value}, rsa_signer(op.private_key)
    )
    with pytest.raises(FormatError, match=f"member '{name}' is not allowed"):
        parse(forged.document)


def test_gq_original_header_carrying_a_key_is_refused() -> None:
    """The GQ ``kid`` is a whole protected header: the same member rules apply inside it."""
    d = doc(gh_pktoken(GH_2022).pktoken)
    gq_header = header(d, 0)
    attacker = generate_signing_key("RS256")
    original = {
        "alg": "RS256", "kid": GH_KID_2022, "typ": "JWT", "jwk": attacker.public_jwk.to_dict()
    }  # fmt: skip
    gq_header["kid"] = b64url_encode(go_json(original))
    set_header(d, 0, gq_header)
    pkt = parse(d)  # the GQ header itself is clean; its kid is only opened when verifying
    with pytest.raises(FormatError, match="GQ256 original header: protected header member 'jwk'"):
        verify_pktoken(pkt, GH_GQ, gh_keyset(GH_2022), now=gh_at(GH_2022))


def test_a_cosigner_signature_grants_nothing(op: MiniOP) -> None:
    """A COS signature is parsed, never trusted: it cannot stand in for a bad OP signature."""
    pkt, _ = op.pktoken()
    d = doc(pkt)
    d["signatures"][0]["signature"] = b64url_encode(bytes(256))
    cos_key = generate_signing_key()
    cos = compact(
        {"alg": "ES256", "typ": "COS", "iss": "https://cosigner.example", "kid": "c"},
        {"ok": True},
        cos_key.sign,
    )
    protected, _, signature = cos.split(".")
    d["signatures"].append({"protected": protected, "signature": signature})
    with pytest.raises(SignatureError, match="RS256 signature does not verify"):
        verify_pktoken(parse(d), op.config(), op.keyset, now=NOW)


def test_pinned_keys_of_one_issuer_never_serve_another(op: MiniOP) -> None:
    pinned = PinnedKeys({op.issuer: op.keyset})
    with pytest.raises(KeyNotFoundError, match="no pinned keys for issuer"):
        pinned.find("https://other.example.test", kid=op.kid)
