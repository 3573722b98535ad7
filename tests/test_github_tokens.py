"""The 7 real GitHub Actions ID tokens: RS256, GQ256 conversion and GQ256 verification.

Tokens and JWKS snapshots are public data (see tests/data/SOURCES.md); all are expired, so
"now" is fixed inside each token's validity window.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from opkey import gq
from opkey.errors import FormatError, OpkeyError, SignatureError
from opkey.expiry import ExpiryPolicy
from opkey.jose import b64url_decode, b64url_encode, parse_compact
from opkey.jwks.keyset import KeySet
from opkey.keys import PublicJWK, verify_signature

DATA = Path(__file__).parent / "data"
MANIFEST = json.loads((DATA / "manifest.json").read_text())["tokens"]
JWKS_FILES = sorted((DATA / "github-actions").glob("github-jwks_*.json"))
ALL_KEYS: list[tuple[str, PublicJWK]] = [
    (f.name, key) for f in JWKS_FILES for key in KeySet.from_json(f.read_bytes())
]


def _token(entry: dict[str, Any]) -> str:
    path: Path = DATA / "github-actions" / entry["file"]
    return path.read_text().strip()


def _key(entry: dict[str, Any]) -> PublicJWK:
    jwks = DATA / "github-actions" / entry["signature_verifies_with"][0]
    return KeySet.from_json(jwks.read_bytes()).by_kid(entry["header"]["kid"])


IDS = [e["file"].removesuffix(".jwt") for e in MANIFEST]


def test_seven_real_tokens() -> None:
    assert len(MANIFEST) == 7


@pytest.mark.parametrize("entry", MANIFEST, ids=IDS)
def test_rs256_signature_verifies_with_its_jwks(entry: dict[str, Any]) -> None:
    jws = parse_compact(_token(entry))
    assert jws.alg == "RS256"
    for jwks_name in entry["signature_verifies_with"]:
        key = KeySet.from_json((DATA / "github-actions" / jwks_name).read_bytes()).by_kid(
            entry["header"]["kid"]
        )
        verify_signature("RS256", key, jws.signing_input, jws.signature)


@pytest.mark.parametrize("entry", MANIFEST, ids=IDS)
def test_claims_and_validity_window(entry: dict[str, Any]) -> None:
    jws = parse_compact(_token(entry))
    claims = json.loads(jws.payload())
    assert claims["iss"] == "https://token.actions.githubusercontent.com"
    assert claims["repository_id"] == entry["repository_id"]
    inside = datetime.fromtimestamp(entry["iat"] + 1, timezone.utc)
    ExpiryPolicy.oidc(leeway=0).check(claims, int(inside.timestamp()))
    with pytest.raises(OpkeyError, match="expired"):
        ExpiryPolicy.oidc(leeway=0).check(claims, int(datetime.now(timezone.utc).timestamp()))


@pytest.fixture(scope="module")
def gq_tokens() -> dict[str, str]:
    return {e["file"]: gq.sign_jwt(_token(e), _key(e)) for e in MANIFEST}


@pytest.mark.parametrize("entry", MANIFEST, ids=IDS)
def test_gq256_conversion_and_verification(
    entry: dict[str, Any], gq_tokens: dict[str, str]
) -> None:
    token = gq_tokens[entry["file"]]
    jws = parse_compact(token)
    key = _key(entry)
    assert jws.alg == "GQ256"
    assert len(jws.signature_b64) == 5504
    assert dict(jws.header) == {
        "alg": "GQ256",
        "jkt": key.thumbprint(),
        "kid": _token(entry).split(".")[0],
        "typ": "JWT",
    }
    assert jws.payload_b64 == _token(entry).split(".")[1]
    gq.verify_jwt(jws, key)


def _flip(segment: str, byte_index: int, bit: int) -> str:
    raw = bytearray(b64url_decode(segment))
    raw[byte_index] ^= 1 << bit
    return b64url_encode(bytes(raw))


def _positions(length: int, step: int) -> list[int]:
    return sorted({*range(0, length, step), length - 1})


@pytest.mark.parametrize("entry", MANIFEST, ids=IDS)
def test_one_bit_change_anywhere_is_rejected(
    entry: dict[str, Any], gq_tokens: dict[str, str]
) -> None:
    header, payload, signature = gq_tokens[entry["file"]].split(".")
    key = _key(entry)
    sizes = [len(b64url_decode(s)) for s in (header, payload, signature)]
    # every byte of the header and payload, a spread of the 4128 signature bytes
    plan = [
        (0, _positions(sizes[0], 1)),
        (1, _positions(sizes[1], 3)),
        (2, _positions(sizes[2], 37)),
    ]
    checked = 0
    for part, positions in plan:
        for index in positions:
            parts = [header, payload, signature]
            parts[part] = _flip(parts[part], index, index % 8)
            with pytest.raises(OpkeyError):
                gq.verify_jwt(parse_compact(".".join(parts)), key)
            checked += 1
    assert checked > 500


@pytest.mark.parametrize("entry", MANIFEST, ids=IDS)
def test_gq_token_verifies_under_no_other_key(
    entry: dict[str, Any], gq_tokens: dict[str, str]
) -> None:
    jws = parse_compact(gq_tokens[entry["file"]])
    right = _key(entry).thumbprint()
    others = [(name, key) for name, key in ALL_KEYS if key.thumbprint() != right]
    assert len(others) >= 7
    for _name, key in others:
        with pytest.raises(SignatureError):
            gq.verify_jwt(jws, key)


def test_gq_signing_checks_the_provider_key() -> None:
    entry = MANIFEST[0]
    wrong = next(key for _, key in ALL_KEYS if key.thumbprint() != _key(entry).thumbprint())
    with pytest.raises(SignatureError):
        gq.sign_jwt(_token(entry), wrong)


def test_gq_bound_token_carries_cic_and_it_is_signed() -> None:
    entry = MANIFEST[-1]
    key = _key(entry)
    token = gq.sign_jwt(_token(entry), key, cic="HVIF0m3zCwEsAZSFjTiyQFU982qF2UZXSpCE__F6IbE")
    jws = parse_compact(token)
    assert jws.header["cic"] == "HVIF0m3zCwEsAZSFjTiyQFU982qF2UZXSpCE__F6IbE"
    gq.verify_jwt(jws, key)
    # PR #379 class: swapping the cic in the GQ header must break the proof
    header = json.loads(b64url_decode(token.split(".")[0]))
    header["cic"] = "A" * 43
    swapped = b64url_encode(json.dumps(header).encode()) + "." + token.split(".", 1)[1]
    with pytest.raises(SignatureError):
        gq.verify_jwt(parse_compact(swapped), key)


def test_gq_rejects_non_rs256_tokens() -> None:
    entry = MANIFEST[0]
    token = _token(entry)
    gq_token = gq.sign_jwt(token, _key(entry))
    with pytest.raises(FormatError, match="RS256"):
        gq.sign_jwt(gq_token, _key(entry))
