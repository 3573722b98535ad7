"""Bytes OpenPubkey Go produced, checked by opkey alone (no Go toolchain needed).

``tests/data/openpubkey-go/`` keeps PK tokens, signed messages and JWKS made by OpenPubkey Go
v0.26.0 (see its SOURCES.md). opkey must parse both serializations, reproduce Go's hash,
commitment, compact and JSON bytes exactly, verify every token with the settings Go's
providers use, and verify every message. This test never skips.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from opkey.errors import OpkeyError
from opkey.expiry import ExpiryPolicy
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jose import b64url_decode, b64url_encode
from opkey.jwks.keyset import KeySet
from opkey.message import verify_message
from opkey.pktoken import PKToken
from opkey.verify import verify_pktoken

VECTORS = Path(__file__).resolve().parents[1] / "data" / "openpubkey-go"
NAMES = sorted(p.stem for p in VECTORS.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text())
    return vector


def config_of(vector: dict[str, Any]) -> IssuerConfig:
    verify = vector["verify"]
    commitment = CommitmentType(verify["commitment"])
    algorithms = frozenset(verify["algorithms"])
    return IssuerConfig(
        issuer=vector["issuer"],
        commitment=commitment,
        algorithms=algorithms,
        require_gq=algorithms == {"GQ256"},
        client_id=vector["client_id"]
        if commitment in (CommitmentType.NONCE, CommitmentType.KEY_BOUND)
        else None,
        expiry=ExpiryPolicy.never(),
    )


def at_issuance(pktoken: PKToken) -> datetime:
    return datetime.fromtimestamp(pktoken.claims["iat"], timezone.utc)


def test_all_kinds_are_kept() -> None:
    kinds = {load(name)["verify"]["commitment"] for name in NAMES}
    assert kinds == {"nonce", "aud", "gq-bound", "key-bound"}
    assert len(NAMES) >= 7


@pytest.mark.parametrize("name", NAMES)
def test_opkey_reproduces_go_bytes(name: str) -> None:
    vector = load(name)
    facts = vector["facts"]
    from_json = PKToken.from_json(json.dumps(vector["pktoken_json"]))
    from_compact = PKToken.from_compact(vector["pktoken_compact"])
    for pktoken in (from_json, from_compact):
        assert pktoken.hash() == facts["hash"]
        assert pktoken.cic_claims.commitment() == facts["commitment"]
        assert pktoken.to_json() == facts["json"].encode()
        assert pktoken.op.alg == facts["provider_alg"]
        assert pktoken.issuer == facts["issuer"]
    assert from_compact.to_compact() == facts["compact"] == vector["pktoken_compact"]
    assert from_compact.fresh_id_token == (facts.get("fresh_id_token") or None)


@pytest.mark.parametrize("name", NAMES)
def test_opkey_verifies_go_tokens_and_messages(name: str) -> None:
    vector = load(name)
    keys = KeySet.from_dict(vector["jwks"])
    messages = [base64.b64decode(m) for m in vector["messages"]]
    for pktoken in (
        PKToken.from_json(json.dumps(vector["pktoken_json"])),
        PKToken.from_compact(vector["pktoken_compact"]),
    ):
        verified = verify_pktoken(pktoken, config_of(vector), keys, now=at_issuance(pktoken))
        assert verified.pktoken_hash == vector["facts"]["hash"]
        assert [verify_message(osm, pktoken) for osm in vector["osms"]] == messages


@pytest.mark.parametrize("name", NAMES)
def test_tampered_go_tokens_are_rejected(name: str) -> None:
    """The vectors are checked, not just parsed: one changed claim or message breaks them."""
    vector = load(name)
    document = dict(vector["pktoken_json"])
    claims = json.loads(b64url_decode(document["payload"]))
    claims["sub"] = claims["sub"] + "x"
    document["payload"] = b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    tampered = PKToken.from_json(json.dumps(document))
    keys = KeySet.from_dict(vector["jwks"])
    with pytest.raises(OpkeyError):
        verify_pktoken(tampered, config_of(vector), keys, now=at_issuance(tampered))
    pktoken = PKToken.from_compact(vector["pktoken_compact"])
    header, _, signature = vector["osms"][0].split(".")
    moved = f"{header}.{b64url_encode(b'something else')}.{signature}"
    with pytest.raises(OpkeyError):
        verify_message(moved, pktoken)
