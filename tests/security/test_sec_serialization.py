"""Attacks on serialization, signature roles and strict parsing (catalog §4, §5, §7).

One form per input (compact or general JSON), roles only from the protected ``typ``, one payload
for every signature, the commitment and the GQ proof binding the key, and a strict parser that
rejects every second spelling of a document *before* any cryptography runs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from opkey.artifact import artifact_statement
from opkey.bundle import BUNDLE_MEDIA_TYPE, Bundle
from opkey.cic import ClientInstanceClaims
from opkey.digest import Digest
from opkey.errors import CommitmentError, FormatError, KeyNotFoundError, SignatureError
from opkey.issuers import CommitmentType
from opkey.jose import MAX_JSON_DEPTH, b64url_decode, b64url_encode, go_json
from opkey.jwks.keyset import KeySet
from opkey.keys import generate_signing_key
from opkey.message import sign_message, verify_message
from opkey.pktoken import PKToken
from opkey.policy.claims import UnsafeNoPolicy
from opkey.signer import Signer
from opkey.verify import verify_pktoken
from tests.helpers import NOW, MiniOP, rsa_key
from tests.security.sec_common import (
    GH_2022,
    GH_2025,
    GH_GQ,
    GH_RS256,
    cic_entry,
    doc,
    forge,
    gh_at,
    gh_keyset,
    gh_pktoken,
    gh_token,
    header,
    parse,
    pinned_verifier,
    rsa_signer,
    set_header,
    text,
)

DIGEST = Digest("sha256:" + "c0" * 32)


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


# -- one form per input --------------------------------------------------------------------------


def test_compact_pktoken_where_json_is_expected(op: MiniOP) -> None:
    pkt, key = op.pktoken()
    with pytest.raises(FormatError, match="PK token: invalid JSON"):
        PKToken.from_json(pkt.to_compact())
    bundle = Signer(pkt, key).sign_digest(DIGEST).to_dict()
    bundle["pktoken"] = pkt.to_compact()
    with pytest.raises(FormatError, match="'pktoken' must be a PK token in JWS JSON"):
        Bundle.from_dict(bundle)


def test_json_pktoken_where_compact_is_expected(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    with pytest.raises(FormatError, match="compact PK token"):
        PKToken.from_compact(pkt.to_json())


def test_plain_id_token_is_not_a_compact_pktoken() -> None:
    """A real three-part JWT is not a PK token (and is never mistaken for one)."""
    with pytest.raises(FormatError, match="expected payload:header:signature"):
        PKToken.from_compact(gh_token(GH_2025))
    with pytest.raises(FormatError):
        PKToken.parse(gh_token(GH_2025))


def test_json_serialized_osm_is_refused(op: MiniOP) -> None:
    pkt, key = op.pktoken()
    head, body, sig = sign_message(artifact_statement(DIGEST), pkt, key).split(".")
    as_json = json.dumps({"payload": body, "protected": head, "signature": sig})
    with pytest.raises(FormatError, match="expected 3 dot-separated parts"):
        verify_message(as_json, pkt)


def test_flattened_json_serialization_is_refused(op: MiniOP) -> None:
    """RFC 7515 flattened form (one signature, no ``signatures`` array) is not a PK token."""
    pkt, _ = op.pktoken()
    d = doc(pkt)
    flattened = {"payload": d["payload"], **d["signatures"][0]}
    with pytest.raises(FormatError, match="unexpected members"):
        parse(flattened)


# -- unprotected header smuggling -----------------------------------------------------------------


def test_unprotected_alg_typ_kid_are_never_read(op: MiniOP) -> None:
    """Unsigned members claiming another alg, role or key change nothing."""
    pkt, _ = op.pktoken()
    d = doc(pkt)
    d["signatures"][0]["header"] = {"alg": "none", "typ": "CIC", "kid": "attacker", "jku": "x"}
    smuggled = parse(d)
    verified = verify_pktoken(smuggled, op.config(), op.keyset, now=NOW)
    assert verified.op_algorithm == "RS256"
    assert smuggled.op.alg == "RS256"
    assert smuggled.cic.header["typ"] == "CIC"  # still exactly one CIC: the real one


def test_unprotected_kid_is_not_used_for_key_lookup(op: MiniOP) -> None:
    second = MiniOP(kid="second", private_key=rsa_key(fresh=True))
    forged = forge(op, {"alg": "RS256", "typ": "JWT"}, rsa_signer(op.private_key))
    forged.document["signatures"][0]["header"] = {"kid": op.kid}
    keys = KeySet((op.public_jwk, second.public_jwk))
    with pytest.raises(KeyNotFoundError, match="no kid and the JWKS holds 2 keys"):
        verify_pktoken(parse(forged.document), op.config(), keys, now=NOW)


def test_unprotected_header_on_the_cic_is_refused(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    d = doc(pkt)
    d["signatures"][1]["header"] = {"typ": "JWT"}
    with pytest.raises(FormatError, match="only the OP signature may carry an unprotected"):
        parse(d)


def test_unprotected_header_added_to_a_bundle_breaks_the_osm_binding(op: MiniOP) -> None:
    """It changes the PK token hash the OSM names: the signature no longer belongs to it."""
    pkt, key = op.pktoken()
    bundle = Signer(pkt, key).sign_digest(DIGEST).to_dict()
    bundle["pktoken"]["signatures"][0]["header"] = {"note": "added later"}
    verifier = pinned_verifier((op.config(), op.keyset))
    with pytest.raises(SignatureError, match="made for another PK token"):
        verifier.verify_bundle(Bundle.from_dict(bundle), DIGEST, policy=UnsafeNoPolicy())


# -- signature roles -------------------------------------------------------------------------------


def _entries(pkt: PKToken) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = doc(pkt)["signatures"]
    return entries


@pytest.mark.parametrize(
    ("picks", "message"),
    [
        ([0, 0, 1], "exactly one OP signature, found 2"),
        ([0, 1, 1], "exactly one CIC signature, found 2"),
        ([0], "exactly one CIC signature, found 0"),
        ([1], "exactly one OP signature, found 0"),
        ([1, 1], "exactly one OP signature, found 0"),
        ([0, 1, 0, 1], "4 signatures; at most 3"),
    ],
    ids=["two-op", "two-cic", "op-only", "cic-only", "cic-twice", "four"],
)
def test_duplicate_and_missing_roles(op: MiniOP, picks: list[int], message: str) -> None:
    pkt, _ = op.pktoken()
    entries = _entries(pkt)
    d = {"payload": pkt.payload_b64, "signatures": [entries[i] for i in picks]}
    with pytest.raises(FormatError, match=message):
        parse(d)


def test_two_cosigner_signatures_are_refused(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    d = doc(pkt)
    cos = {"protected": b64url_encode(go_json({"alg": "ES256", "typ": "COS"})), "signature": ""}
    d["signatures"] += [cos, cos]
    with pytest.raises(FormatError, match="signatures; at most 3 are allowed"):
        parse(d)
    compact_form = ":".join([pkt.to_compact(), cos["protected"], "", cos["protected"], ""])
    with pytest.raises(FormatError, match="4 signatures; at most 3 allowed"):
        PKToken.from_compact(compact_form)


@pytest.mark.parametrize("typ", ["jwt", "cic", "CIC ", "osm", "JOSE", "", "COS\u0000", "JWS"])
def test_unknown_roles_are_refused(op: MiniOP, typ: str) -> None:
    pkt, _ = op.pktoken()
    d = doc(pkt)
    h = header(d, 0)
    h["typ"] = typ
    set_header(d, 0, h)
    with pytest.raises(FormatError, match="unrecognized signature type"):
        parse(d)


def test_the_role_comes_from_the_protected_typ_only(op: MiniOP) -> None:
    """Relabelling the CIC as an OP signature in the protected header: still one OP, one CIC?"""
    pkt, _ = op.pktoken()
    d = doc(pkt)
    h = header(d, 1)
    h["typ"] = "JWT"
    set_header(d, 1, h)
    with pytest.raises(FormatError, match="exactly one OP signature, found 2"):
        parse(d)


# -- one payload -----------------------------------------------------------------------------------


def test_per_signature_payloads_cannot_be_expressed(op: MiniOP) -> None:
    """The JSON form has one payload; a payload inside a signature entry is refused."""
    a, _ = op.pktoken()
    b, _ = op.pktoken(sub="someone-else")
    d = doc(a)
    d["signatures"][1]["payload"] = b.payload_b64
    with pytest.raises(FormatError, match="signature 1 has unexpected \\['payload'\\]"):
        parse(d)


def test_compact_form_has_room_for_one_payload_only(op: MiniOP) -> None:
    """A CIC compact JWS over another payload spliced into the compact form is refused."""
    a, _ = op.pktoken()
    b, _ = op.pktoken(sub="someone-else")
    cic_head, cic_body, cic_sig = b.cic_token().split(".")
    spliced = [
        f"{a.payload_b64}:{a.op.protected_b64}:{a.op.signature_b64}:{cic_head}.{cic_body}.{cic_sig}",
        f"{a.payload_b64}:{a.op.protected_b64}:{a.op.signature_b64}:{cic_head}:{cic_sig}.{cic_body}",
        f"{a.payload_b64}:{a.op.protected_b64}:{a.op.signature_b64}:{cic_body}:{cic_head}:{cic_sig}",
    ]
    for candidate in spliced:
        with pytest.raises(FormatError):
            PKToken.from_compact(candidate)


def test_cic_signature_over_another_real_payload_fails() -> None:
    """Real tokens A and B: A's OP signature and a CIC signature over B's payload."""
    a = gh_pktoken(GH_2025, gq_form=False)
    b_payload = gh_token(GH_2022).split(".")[1]
    d = doc(a.pktoken)
    d["signatures"][1] = cic_entry(b_payload, a.key, a.cic)
    with pytest.raises(SignatureError, match="ES256 signature does not verify"):
        verify_pktoken(parse(d), GH_RS256, gh_keyset(GH_2025), now=gh_at(GH_2025))


# -- commitment and CIC substitution ---------------------------------------------------------------


def test_cic_from_another_pktoken_is_refused(op: MiniOP) -> None:
    a, _ = op.pktoken()
    b, _ = op.pktoken()
    d = doc(a)
    d["signatures"][1] = doc(b)["signatures"][1]
    with pytest.raises(SignatureError, match="ES256 signature does not verify"):
        verify_pktoken(parse(d), op.config(), op.keyset, now=NOW)


def test_attacker_cic_on_a_victims_id_token_breaks_the_commitment(op: MiniOP) -> None:
    for commitment in (CommitmentType.NONCE, CommitmentType.AUD):
        victim, _ = op.pktoken(commitment)
        attacker = generate_signing_key()
        cic = ClientInstanceClaims.create(attacker.public_jwk)
        stolen = PKToken.create(victim.op_token(), cic, attacker)
        with pytest.raises(CommitmentError, match="does not commit to this PK token's key"):
            verify_pktoken(stolen, op.config(commitment), op.keyset, now=NOW)


def test_attacker_cic_on_a_real_github_token_breaks_the_commitment() -> None:
    pkt = gh_pktoken(GH_2025).pktoken
    with pytest.raises(CommitmentError, match="aud does not commit"):
        verify_pktoken(pkt, GH_GQ, gh_keyset(GH_2025), now=gh_at(GH_2025))


def test_victims_cic_header_re_signed_by_the_attacker_fails(op: MiniOP) -> None:
    """Keeping the victim's CIC (so the commitment matches) needs the victim's key."""
    victim, _ = op.pktoken()
    d = doc(victim)
    attacker = generate_signing_key()
    signing_input = f"{d['signatures'][1]['protected']}.{d['payload']}".encode()
    d["signatures"][1]["signature"] = b64url_encode(attacker.sign(signing_input))
    with pytest.raises(SignatureError, match="ES256 signature does not verify"):
        verify_pktoken(parse(d), op.config(), op.keyset, now=NOW)


def test_extra_cic_claims_are_committed(op: MiniOP) -> None:
    """Adding an extra claim to the CIC (re-signed with the right key) changes the commitment."""
    pkt, key = op.pktoken()
    d = doc(pkt)
    cic_header = header(d, 1)
    cic_header["att"] = "0" * 64
    set_header(d, 1, cic_header)
    signing_input = f"{d['signatures'][1]['protected']}.{d['payload']}".encode()
    d["signatures"][1]["signature"] = b64url_encode(key.sign(signing_input))
    with pytest.raises(CommitmentError, match="nonce does not commit"):
        verify_pktoken(parse(d), op.config(), op.keyset, now=NOW)


# -- GQ header swap (OpenPubkey PR #379) -----------------------------------------------------------


def test_gq_header_cic_swap_to_rebind_a_token_fails() -> None:
    """The GitLab re-binding attack: a GQ-bound token, its header ``cic`` swapped to the
    attacker's commitment. The GQ proof covers the header, so it no longer verifies."""
    victim = gh_pktoken(GH_2022, bound=True).pktoken
    attacker = generate_signing_key()
    cic = ClientInstanceClaims.create(attacker.public_jwk)
    gq_header = dict(victim.op.header)
    gq_header["cic"] = cic.commitment()
    token = f"{b64url_encode(go_json(gq_header))}.{victim.payload_b64}.{victim.op.signature_b64}"
    rebound = PKToken.create(token, cic, attacker)
    config = GH_GQ.__class__(
        issuer=GH_GQ.issuer,
        commitment=CommitmentType.GQ_BOUND,
        algorithms=frozenset({"GQ256"}),
        require_gq=True,
        gq_audience_prefix="https://github.com/",
    )
    with pytest.raises(SignatureError, match="GQ256 signature does not verify"):
        verify_pktoken(rebound, config, gh_keyset(GH_2022), now=gh_at(GH_2022))
    # Control: the victim's own token gets past the signature (and the commitment).
    verify_pktoken(victim, config, gh_keyset(GH_2022), now=gh_at(GH_2022))


def test_gq_header_jkt_swap_fails() -> None:
    d = doc(gh_pktoken(GH_2022).pktoken)
    gq_header = header(d, 0)
    other = gh_keyset(GH_2022).by_kid("52F197C481DE70112C441B4A9B37B53C7FCF0DB5")
    gq_header["jkt"] = other.thumbprint()
    set_header(d, 0, gq_header)
    with pytest.raises(KeyNotFoundError, match="has thumbprint"):
        verify_pktoken(parse(d), GH_GQ, gh_keyset(GH_2022), now=gh_at(GH_2022))


def test_gq_header_kid_swap_fails() -> None:
    """The same original header re-encoded (same key named): the proof's identity changes."""
    d = doc(gh_pktoken(GH_2022).pktoken)
    gq_header = header(d, 0)
    original = json.loads(b64url_decode(gq_header["kid"]))
    assert b64url_encode(go_json(original)) != gq_header["kid"]
    gq_header["kid"] = b64url_encode(go_json(original))
    set_header(d, 0, gq_header)
    with pytest.raises(SignatureError, match="GQ256 signature does not verify"):
        verify_pktoken(parse(d), GH_GQ, gh_keyset(GH_2022), now=gh_at(GH_2022))
    original["alg"] = "PS256"
    gq_header["kid"] = b64url_encode(go_json(original))
    set_header(d, 0, gq_header)
    with pytest.raises(FormatError, match="original header alg must be RS256"):
        verify_pktoken(parse(d), GH_GQ, gh_keyset(GH_2022), now=gh_at(GH_2022))


def test_gq_header_cic_added_to_a_non_bound_token_fails() -> None:
    d = doc(gh_pktoken(GH_2022).pktoken)
    gq_header = header(d, 0)
    gq_header["cic"] = "A" * 43
    set_header(d, 0, gq_header)
    with pytest.raises(SignatureError, match="GQ256 signature does not verify"):
        verify_pktoken(parse(d), GH_GQ, gh_keyset(GH_2022), now=gh_at(GH_2022))


# -- OSM with another PK token ---------------------------------------------------------------------


def test_osm_with_another_pktoken_of_the_same_key_is_refused(op: MiniOP) -> None:
    key = generate_signing_key()
    a, _ = op.pktoken(signing_key=key)
    b, _ = op.pktoken(signing_key=key)
    assert a.cic_claims.upk == b.cic_claims.upk
    bundle = Bundle(b, Signer(a, key).sign_digest(DIGEST).signature)
    verifier = pinned_verifier((op.config(), op.keyset))
    with pytest.raises(SignatureError, match="made for another PK token"):
        verifier.verify_bundle(bundle, DIGEST, policy=UnsafeNoPolicy())


# -- strict JSON -----------------------------------------------------------------------------------


def _replace_payload(pkt_doc: dict[str, Any], payload: bytes) -> None:
    pkt_doc["payload"] = b64url_encode(payload)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"alg":"RS256","alg":"none","kid":"test-key-1","typ":"JWT"}',
        b'{"alg":"RS256","kid":"test-key-1","kid":"attacker","typ":"JWT"}',
        b'{"alg":"RS256","kid":"test-key-1","typ":"JWT","typ":"CIC"}',
    ],
)
def test_duplicate_members_in_the_op_header(op: MiniOP, raw: bytes) -> None:
    forged = forge(op, raw, rsa_signer(op.private_key))
    with pytest.raises(FormatError, match="duplicate JSON member name"):
        parse(forged.document)


def test_duplicate_claims_in_a_real_payload_fail_before_crypto() -> None:
    """The real payload with a second ``repository_id``: a parser differential, refused first
    (the signature no longer matches, yet the error is a FormatError, not a SignatureError)."""
    d = doc(gh_pktoken(GH_2025).pktoken)
    payload = b64url_decode(d["payload"])
    assert payload.endswith(b"}")
    _replace_payload(d, payload[:-1] + b',"repository_id":"1"}')
    with pytest.raises(FormatError, match="duplicate JSON member name 'repository_id'"):
        parse(d)


def test_duplicate_members_in_the_cic_and_upk(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    d = doc(pkt)
    raw = b64url_decode(d["signatures"][1]["protected"])
    set_header(d, 1, raw[:-1] + b',"rz":"' + b"0" * 64 + b'"}')
    with pytest.raises(FormatError, match="duplicate JSON member name 'rz'"):
        parse(d)
    cic_header = header(doc(pkt), 1)
    upk = go_json(cic_header["upk"])
    x = json.dumps(cic_header["upk"]["x"]).encode()
    dup_upk = upk[:-1] + b',"x":' + x + b"}"
    rest = {k: v for k, v in cic_header.items() if k != "upk"}
    raw = go_json(rest)[:-1] + b',"upk":' + dup_upk + b"}"
    set_header(d, 1, raw)
    with pytest.raises(FormatError, match="duplicate JSON member name 'x'"):
        parse(d)


def test_duplicate_members_in_the_pktoken_document_and_bundle(op: MiniOP) -> None:
    pkt, key = op.pktoken()
    other, _ = op.pktoken(sub="someone-else")
    raw = pkt.to_json().decode()
    duplicated = raw[:-1] + f',"payload":"{other.payload_b64}"}}'
    with pytest.raises(FormatError, match="duplicate JSON member name 'payload'"):
        PKToken.from_json(duplicated)
    bundle = Signer(pkt, key).sign_digest(DIGEST)
    forged_sig = Signer(pkt, key).sign_digest(Digest("sha256:" + "dd" * 32)).signature
    text_bundle = bundle.to_json().decode().rstrip()
    duplicated_bundle = text_bundle[:-1] + f',"signature":"{forged_sig}"}}'
    with pytest.raises(FormatError, match="duplicate JSON member name 'signature'"):
        Bundle.from_json(duplicated_bundle)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(op: MiniOP, constant: str) -> None:
    forged = forge(
        op,
        {"alg": "RS256", "kid": op.kid, "typ": "JWT"},
        rsa_signer(op.private_key),
        payload=json.dumps(op.claims(nonce="n"))[:-1].encode() + f',"x":{constant}}}'.encode(),
    )
    with pytest.raises(FormatError, match=f"JSON constant {constant} is not allowed"):
        parse(forged.document)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", True),
        ("exp", "1767225900"),
        ("exp", 1767225900.0),
        ("iat", False),
        ("iat", None),
        ("nbf", True),
        ("nbf", "0"),
        ("iss", 1),
        ("sub", ""),
        ("aud", []),
        ("aud", [1]),
        ("nonce", 5),
    ],
)
def test_wrongly_typed_registered_claims(op: MiniOP, claim: str, value: object) -> None:
    """``exp: true`` is ``1`` to Python; typed checks keep it from meaning anything."""
    claims = op.claims(nonce="n")
    claims[claim] = value
    forged = forge(
        op, {"alg": "RS256", "kid": op.kid, "typ": "JWT"}, rsa_signer(op.private_key),
        payload=json.dumps(claims).encode(),
    )  # fmt: skip
    with pytest.raises(FormatError, match=f"claim '{claim}' must be"):
        parse(forged.document)


@pytest.mark.parametrize(
    "payload", [b"[]", b'"claims"', b"null", b"1", b"", b"\xef\xbb\xbf{}", b"{} {}"]
)
def test_payload_must_be_one_json_object(op: MiniOP, payload: bytes) -> None:
    forged = forge(
        op, {"alg": "RS256", "kid": op.kid, "typ": "JWT"}, rsa_signer(op.private_key),
        payload=payload,
    )  # fmt: skip
    with pytest.raises(FormatError, match="PK token payload"):
        parse(forged.document)


# -- canonical base64url ---------------------------------------------------------------------------


def _bump_trailing_bits(segment: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(segment) % 4 in (2, 3), "needs unused trailing bits"
    return segment[:-1] + alphabet[alphabet.index(segment[-1]) + 1]


@pytest.mark.parametrize(
    "change",
    ["pad1", "pad2", "trailing-bits", "plus-slash", "space", "newline", "percent"],
)
@pytest.mark.parametrize("segment", ["payload", "op-protected", "op-signature", "cic-signature"])
def test_non_canonical_base64url_is_refused(change: str, segment: str) -> None:
    """Python's decoder accepts these spellings of the same bytes; opkey refuses them all."""
    pkt = gh_pktoken(GH_2025, gq_form=False).pktoken
    d = doc(pkt)
    entry, member = {
        "payload": (d, "payload"),
        "op-protected": (d["signatures"][0], "protected"),
        "op-signature": (d["signatures"][0], "signature"),
        "cic-signature": (d["signatures"][1], "signature"),
    }[segment]
    value: str = entry[member]
    if change == "trailing-bits" and len(value) % 4 not in (2, 3):
        value = value[:-2]  # shorten to a length with unused bits; still a bad segment
    changed = {
        "pad1": value + "=",
        "pad2": value + "==",
        "trailing-bits": _bump_trailing_bits(value) if len(value) % 4 in (2, 3) else value,
        "plus-slash": value.replace("-", "+").replace("_", "/")
        if "-" in value or "_" in value
        else "+" + value[1:],
        "space": value[:10] + " " + value[10:],
        "newline": value + "\n",
        "percent": value[:5] + "%2D" + value[5:],
    }[change]
    assert changed != entry[member]
    entry[member] = changed
    with pytest.raises(FormatError, match=r"base64url|length"):
        parse(d)


def test_trailing_bit_variant_of_a_real_signature_is_refused_in_compact_form() -> None:
    """The catalog's example: the last signature character g→h decodes to the same bytes."""
    pkt = gh_pktoken(GH_2022, gq_form=False).pktoken
    form = pkt.to_compact()
    parts = form.split(":")
    parts[2] = _bump_trailing_bits(parts[2])
    with pytest.raises(FormatError, match="non-canonical base64url"):
        PKToken.from_compact(":".join(parts))


# -- size and depth --------------------------------------------------------------------------------


def test_oversized_pktoken_and_bundle_are_refused(op: MiniOP) -> None:
    pkt, key = op.pktoken()
    d = doc(pkt)
    d["signatures"][0]["header"] = {"pad": "x" * (300 * 1024)}
    with pytest.raises(FormatError, match="is more than the 262144 allowed"):
        PKToken.from_json(text(d))
    with pytest.raises(FormatError, match="larger than allowed"):
        PKToken.from_compact(pkt.to_compact() + ":" + "A" * (300 * 1024))
    bundle = Signer(pkt, key).sign_digest(DIGEST).to_json()
    with pytest.raises(FormatError, match="is more than the 262144 allowed"):
        Bundle.from_json(bundle + b" " * (300 * 1024))


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 200, 100_000])
def test_deeply_nested_claims_are_refused(op: MiniOP, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    claims = json.dumps(op.claims(nonce="n"))[:-1] + f',"deep":{nested}}}'
    forged = forge(
        op, {"alg": "RS256", "kid": op.kid, "typ": "JWT"}, rsa_signer(op.private_key),
        payload=claims.encode(),
    )  # fmt: skip
    with pytest.raises(FormatError, match=r"nested|larger|more than"):
        parse(forged.document)


def test_huge_integers_are_refused(op: MiniOP) -> None:
    claims = json.dumps(op.claims(nonce="n"))[:-1] + ',"n":' + "9" * 5000 + "}"
    forged = forge(
        op, {"alg": "RS256", "kid": op.kid, "typ": "JWT"}, rsa_signer(op.private_key),
        payload=claims.encode(),
    )  # fmt: skip
    with pytest.raises(FormatError, match="invalid JSON"):
        parse(forged.document)


@pytest.mark.parametrize(
    "raw",
    [b'"\\ud800"', b'"\\udfff x"', b'"\xff"', b'"\xc0\xaf"', b'"\xed\xa0\x80"'],
    ids=["lone-high", "lone-low", "invalid-byte", "overlong", "encoded-surrogate"],
)
def test_invalid_unicode_in_claims_is_refused(op: MiniOP, raw: bytes) -> None:
    claims = json.dumps(op.claims(nonce="n"))[:-1].encode() + b',"name":' + raw + b"}"
    forged = forge(
        op, {"alg": "RS256", "kid": op.kid, "typ": "JWT"}, rsa_signer(op.private_key),
        payload=claims,
    )  # fmt: skip
    with pytest.raises(FormatError, match=r"surrogate|UTF-8"):
        parse(forged.document)


def test_bundle_structure_is_exact(op: MiniOP) -> None:
    pkt, key = op.pktoken()
    bundle = Signer(pkt, key).sign_digest(DIGEST).to_dict()
    changes: list[tuple[dict[str, Any], str]] = [
        ({"mediaType": BUNDLE_MEDIA_TYPE + " "}, "not an opkey bundle"),
        ({"mediaType": BUNDLE_MEDIA_TYPE.upper()}, "not an opkey bundle"),
        ({"extra": {}}, "unexpected members"),
        ({"signature": [bundle["signature"]]}, "'signature' must be a compact JWS string"),
    ]
    for change, message in changes:
        with pytest.raises(FormatError, match=message):
            Bundle.from_dict({**bundle, **change})
