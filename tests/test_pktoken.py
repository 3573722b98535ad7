"""PK token parsing and serialization: roles, counts, both forms, the hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from opkey.errors import FormatError
from opkey.issuers import CommitmentType
from opkey.jose import b64url_decode, b64url_encode, go_json
from opkey.keys import generate_signing_key
from opkey.pktoken import PKToken, SignatureRole
from tests.helpers import MiniOP


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


@pytest.fixture(scope="module")
def pkt(op: MiniOP) -> PKToken:
    return op.pktoken(CommitmentType.NONCE)[0]


def test_json_round_trip_is_byte_exact(pkt: PKToken) -> None:
    data = pkt.to_json()
    again = PKToken.from_json(data)
    assert again.to_json() == data
    assert again == pkt


def test_json_field_order_is_gos(pkt: PKToken) -> None:
    document = json.loads(pkt.to_json())
    assert list(document) == ["payload", "signatures"]
    assert [list(s) for s in document["signatures"]] == [["protected", "signature"]] * 2
    roles = [PKToken.from_json(pkt.to_json()).signatures()[i].role for i in range(2)]
    assert roles == [SignatureRole.OP, SignatureRole.CIC]


def test_compact_round_trip(pkt: PKToken) -> None:
    compact = pkt.to_compact()
    parts = compact.split(":")
    assert len(parts) == 5
    assert parts[0] == pkt.payload_b64
    assert parts[1] == pkt.op.protected_b64
    assert parts[3] == pkt.cic.protected_b64
    again = PKToken.from_compact(compact)
    assert again.to_json() == pkt.to_json()


def test_compact_order_is_free(pkt: PKToken) -> None:
    p, oh, os_, ch, cs = pkt.to_compact().split(":")
    swapped = ":".join([p, ch, cs, oh, os_])
    assert PKToken.from_compact(swapped).to_json() == pkt.to_json()


def test_compact_with_refreshed_id_token(op: MiniOP, pkt: PKToken) -> None:
    fresh = op.mint(op.claims())
    compact = f"{pkt.to_compact()}.{fresh}"
    again = PKToken.from_compact(compact)
    assert again.fresh_id_token == fresh
    assert again.to_compact() == compact
    # the refreshed token is not part of the hash (as in OpenPubkey)
    assert again.hash() == pkt.hash()
    with pytest.raises(FormatError, match="refreshed ID token"):
        PKToken.from_compact(f"{pkt.to_compact()}.not-a-jwt")


def test_hash_is_sha3_of_go_json(pkt: PKToken) -> None:
    expected = b64url_encode(hashlib.sha3_256(pkt.to_json()).digest())
    assert pkt.hash() == expected


def test_parse_detects_form(pkt: PKToken) -> None:
    assert PKToken.parse(pkt.to_json()) == pkt
    assert PKToken.parse(pkt.to_compact()) == pkt
    assert PKToken.parse(pkt.to_compact().encode()) == pkt


def test_op_and_cic_tokens_are_compact_jws(pkt: PKToken) -> None:
    assert pkt.op_token().count(".") == 2
    assert pkt.cic_token().split(".")[1] == pkt.payload_b64


def _document(pkt: PKToken) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(pkt.to_json())
    return result


def _header(typ: object) -> str:
    header: dict[str, object] = {"alg": "RS256", "kid": "k"}
    if typ is not None:
        header["typ"] = typ
    return b64url_encode(go_json(header))


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "AT+JWT", "dpop+id_token"])
def test_op_role_typ_variants(pkt: PKToken, typ: object) -> None:
    doc = _document(pkt)
    doc["signatures"][0]["protected"] = _header(typ)
    parsed = PKToken.from_json(json.dumps(doc))
    assert parsed.op.role is SignatureRole.OP


@pytest.mark.parametrize("typ", ["jwt", "osm", "cic", "", "JWS"])
def test_unknown_typ_rejected(pkt: PKToken, typ: str) -> None:
    doc = _document(pkt)
    doc["signatures"][0]["protected"] = _header(typ)
    with pytest.raises(FormatError, match="unrecognized signature type"):
        PKToken.from_json(json.dumps(doc))


def test_role_counts(pkt: PKToken) -> None:
    doc = _document(pkt)
    op_sig, cic_sig = doc["signatures"]
    for signatures, message in [
        ([cic_sig], "exactly one OP"),
        ([op_sig], "exactly one CIC"),
        ([op_sig, op_sig, cic_sig], "exactly one OP"),
        ([op_sig, cic_sig, cic_sig], "exactly one CIC"),
        ([], "non-empty"),
    ]:
        with pytest.raises(FormatError, match=message):
            PKToken.from_json(json.dumps({"payload": doc["payload"], "signatures": signatures}))


def test_two_cos_signatures_rejected(pkt: PKToken) -> None:
    doc = _document(pkt)
    cos = {"protected": b64url_encode(b'{"alg":"ES256","typ":"COS"}'), "signature": "AA"}
    one = PKToken.from_json(json.dumps({**doc, "signatures": [*doc["signatures"], cos]}))
    assert one.cos is not None
    assert one.to_json().count(b'"protected"') == 3
    with pytest.raises(FormatError, match="at most"):
        PKToken.from_json(json.dumps({**doc, "signatures": [*doc["signatures"], cos, cos]}))


def test_unprotected_header_only_on_op(pkt: PKToken) -> None:
    doc = _document(pkt)
    doc["signatures"][0]["header"] = {"note": "<x>", "a": 1}
    parsed = PKToken.from_json(json.dumps(doc))
    assert b'"header":{"a":1,"note":"\\u003cx\\u003e"}' in parsed.to_json()
    assert parsed.hash() != pkt.hash()
    doc = _document(pkt)
    doc["signatures"][1]["header"] = {"x": "y"}
    with pytest.raises(FormatError, match="only the OP signature"):
        PKToken.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    "mutation",
    [
        {"extra": 1},
        {"protected": "x"},
        {"payload": 5},
        {"signatures": "x"},
    ],
)
def test_structure_rejections(pkt: PKToken, mutation: dict[str, Any]) -> None:
    doc = {**_document(pkt), **mutation}
    with pytest.raises(FormatError):
        PKToken.from_json(json.dumps(doc))


def test_signature_entry_rejections(pkt: PKToken) -> None:
    doc = _document(pkt)
    for bad in ({"protected": doc["signatures"][0]["protected"]}, {"signature": "AA"}, 5):
        with pytest.raises(FormatError):
            PKToken.from_json(json.dumps({**doc, "signatures": [bad, doc["signatures"][1]]}))
    sig = {**doc["signatures"][0], "extra": "x"}
    with pytest.raises(FormatError, match="unexpected"):
        PKToken.from_json(json.dumps({**doc, "signatures": [sig, doc["signatures"][1]]}))


def _with_payload(pkt: PKToken, claims: dict[str, Any]) -> str:
    doc = _document(pkt)
    doc["payload"] = b64url_encode(json.dumps(claims).encode())
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": True}, "'exp' must be an integer"),
        ({"iat": "1"}, "'iat' must be an integer"),
        ({"exp": 1.5}, "'exp' must be an integer"),
        ({"nbf": None}, "'nbf' must be an integer"),
        ({"iss": ""}, "'iss' must be a non-empty string"),
        ({"sub": 5}, "'sub' must be a non-empty string"),
        ({"aud": []}, "'aud'"),
        ({"aud": [1]}, "'aud'"),
        ({"aud": {"a": 1}}, "'aud'"),
        ({"nonce": 5}, "'nonce' must be a string"),
    ],
)
def test_claim_types(op: MiniOP, pkt: PKToken, overrides: dict[str, Any], message: str) -> None:
    claims = {**op.claims(), **overrides}
    with pytest.raises(FormatError, match=message):
        PKToken.from_json(_with_payload(pkt, claims))


def test_missing_required_claims(op: MiniOP, pkt: PKToken) -> None:
    for name in ("iss", "sub", "aud", "iat", "exp"):
        claims = {k: v for k, v in op.claims().items() if k != name}
        with pytest.raises(FormatError, match=name):
            PKToken.from_json(_with_payload(pkt, claims))


def test_payload_must_be_an_object(pkt: PKToken) -> None:
    doc = _document(pkt)
    doc["payload"] = b64url_encode(b"[1,2]")
    with pytest.raises(FormatError, match="JSON object"):
        PKToken.from_json(json.dumps(doc))


def test_duplicate_claims_rejected(pkt: PKToken) -> None:
    doc = _document(pkt)
    raw = b64url_decode(doc["payload"]).decode()
    doc["payload"] = b64url_encode((raw[:-1] + ',"sub":"evil"}').encode())
    with pytest.raises(FormatError, match="duplicate"):
        PKToken.from_json(json.dumps(doc))


def test_claims_are_read_only(pkt: PKToken) -> None:
    with pytest.raises(TypeError):
        pkt.claims["sub"] = "x"  # type: ignore[index]


def test_create_requires_matching_key(op: MiniOP) -> None:
    pkt, _key = op.pktoken()
    other = generate_signing_key()
    with pytest.raises(ValueError, match="not the key committed"):
        PKToken.create(pkt.op_token(), pkt.cic_claims, other)


def test_compact_rejections(pkt: PKToken) -> None:
    bad_inputs: list[str | bytes] = ["a:b", "a:b:c:d", ":".join(["a"] * 9), "é:b:c", b"\xff:a"]
    for bad in bad_inputs:
        with pytest.raises(FormatError):
            PKToken.from_compact(bad)


def test_parsing_is_remembered_by_value(pkt: PKToken) -> None:
    """Both serializations return the same immutable token for the same text; the cache is
    bounded and never holds input that failed to parse."""
    from opkey import pktoken as module

    document = json.loads(pkt.to_json())
    first = PKToken.from_json(pkt.to_json())
    assert PKToken.from_json(json.dumps(document, indent=1)) is first
    assert PKToken.from_json(document) is first
    assert first == pkt
    assert first.hash() == pkt.hash()
    compact = pkt.to_compact()
    assert PKToken.from_compact(compact) is PKToken.from_compact(compact.encode()) == pkt
    for cached in (module._parse_json_parts, module._parse_compact_text):
        assert cached.cache_info().maxsize == module.PARSE_CACHE_SIZE
    misses = module._parse_compact_text.cache_info().currsize
    for _ in range(2):
        with pytest.raises(FormatError):
            PKToken.from_compact(compact.replace(":", ":x", 1))
    assert module._parse_compact_text.cache_info().currsize == misses


def test_lazily_computed_values_match_fresh_computation(pkt: PKToken) -> None:
    again = PKToken.from_json(pkt.to_json())
    expected_hash = b64url_encode(hashlib.sha3_256(pkt.to_json()).digest())
    assert again.hash() == expected_hash == again.hash()
    cic = again.cic_claims
    expected_commitment = b64url_encode(hashlib.sha3_256(go_json(cic.header())).digest())
    assert cic.commitment() == expected_commitment == cic.commitment()
    members = {k: cic.upk.members[k] for k in ("crv", "kty", "x", "y")}
    expected_jkt = b64url_encode(hashlib.sha256(go_json(members)).digest())
    assert cic.upk.thumbprint() == expected_jkt == cic.upk.thumbprint()
