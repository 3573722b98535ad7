"""Client instance claims and OpenPubkey commitments (real vectors from OpenPubkey's docs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opkey.cic import ClientInstanceClaims
from opkey.errors import FormatError
from opkey.keys import generate_signing_key

VECTORS = json.loads((Path(__file__).parent / "data" / "openpubkey-commitments.json").read_text())[
    "vectors"
]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_openpubkey_commitment_vectors(vector: dict[str, Any]) -> None:
    cic = ClientInstanceClaims.from_header(vector["cic_protected_header"])
    assert cic.header_bytes().decode() == vector["hashed_bytes"]
    assert cic.commitment() == vector["expected_commitment"]


def test_all_four_vectors_present() -> None:
    assert len(VECTORS) == 4


def test_create_uses_fresh_rz_and_key_alg() -> None:
    key = generate_signing_key("EdDSA")
    a = ClientInstanceClaims.create(key.public_jwk)
    b = ClientInstanceClaims.create(key.public_jwk)
    assert a.alg == "EdDSA"
    assert a.rz != b.rz
    assert len(a.rz) == 64
    assert a.commitment() != b.commitment()


def test_create_with_fixed_rz_is_deterministic() -> None:
    key = generate_signing_key()
    a = ClientInstanceClaims.create(key.public_jwk, rz=b"\x01" * 32, extra={"att": "x"})
    b = ClientInstanceClaims.create(key.public_jwk, rz=b"\x01" * 32, extra={"att": "x"})
    assert a.commitment() == b.commitment()
    assert a.header()["att"] == "x"


def test_go_html_escaping_changes_commitment() -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk, rz=b"\x02" * 32, extra={"note": "<&>"})
    assert b"\\u003c\\u0026\\u003e" in cic.header_bytes()


def _header(**overrides: Any) -> dict[str, Any]:
    key = generate_signing_key()
    header = ClientInstanceClaims.create(key.public_jwk).header()
    header.update(overrides)
    return {k: v for k, v in header.items() if v is not None}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"typ": "JWT"}, "typ must be 'CIC'"),
        ({"typ": None}, "typ must be 'CIC'"),
        ({"rz": None}, "missing 'rz'"),
        ({"upk": None}, "missing 'upk'"),
        ({"alg": "RS256"}, "differs from upk alg"),
        ({"alg": "HS256"}, "not one of"),
        ({"alg": 7}, "alg must be a string"),
        ({"rz": "AB" * 32}, "lowercase hex"),
        ({"rz": "ab" * 31}, "lowercase hex"),
        ({"extra": 5}, "string value"),
    ],
)
def test_from_header_rejections(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        ClientInstanceClaims.from_header(_header(**overrides))


def test_upk_with_private_key_is_rejected() -> None:
    header = _header()
    header["upk"] = {**header["upk"], "d": "AAAA"}
    with pytest.raises(FormatError, match="private"):
        ClientInstanceClaims.from_header(header)


def test_upk_must_declare_alg() -> None:
    header = _header()
    upk = dict(header["upk"])
    del upk["alg"]
    header["upk"] = upk
    with pytest.raises(FormatError, match="differs from upk alg None"):
        ClientInstanceClaims.from_header(header)
