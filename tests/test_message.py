"""OpenPubkey signed messages (OSM)."""

from __future__ import annotations

import json

import pytest

from opkey.errors import FormatError, SignatureError
from opkey.jose import b64url_decode, b64url_encode, go_json
from opkey.keys import generate_signing_key
from opkey.message import sign_message, verify_message
from tests.helpers import MiniOP


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_round_trip(alg: str) -> None:
    pkt, key = MiniOP().pktoken(user_alg=alg)
    osm = sign_message(b"sha256:abc", pkt, key)
    header = json.loads(b64url_decode(osm.split(".")[0]))
    assert header == {"alg": alg, "kid": pkt.hash(), "typ": "osm"}
    assert verify_message(osm, pkt) == b"sha256:abc"
    assert verify_message(osm, pkt, pktoken_hash=pkt.hash()) == b"sha256:abc"


def test_osm_with_another_pktoken_of_same_key_rejected() -> None:
    op = MiniOP()
    key = generate_signing_key()
    pkt_a, _ = op.pktoken(signing_key=key)
    pkt_b, _ = op.pktoken(signing_key=key)
    osm = sign_message(b"m", pkt_a, key)
    with pytest.raises(SignatureError, match="another PK token"):
        verify_message(osm, pkt_b)


def test_osm_with_another_key_rejected() -> None:
    op = MiniOP()
    pkt_a, key_a = op.pktoken()
    pkt_b, _ = op.pktoken()
    osm = sign_message(b"m", pkt_a, key_a)
    with pytest.raises(SignatureError):
        verify_message(osm, pkt_b, pktoken_hash=pkt_a.hash())


def test_tampered_payload_rejected() -> None:
    pkt, key = MiniOP().pktoken()
    header, _, sig = sign_message(b"sha256:abc", pkt, key).split(".")
    forged = f"{header}.{b64url_encode(b'sha256:abd')}.{sig}"
    with pytest.raises(SignatureError, match="does not verify"):
        verify_message(forged, pkt)


def _resign(pkt_key: tuple[object, object], header: dict[str, object]) -> str:
    _pkt, key = pkt_key
    protected = b64url_encode(go_json(header))
    payload = b64url_encode(b"m")
    sig = key.sign(f"{protected}.{payload}".encode())  # type: ignore[attr-defined]
    return f"{protected}.{payload}.{b64url_encode(sig)}"


def test_header_checks() -> None:
    pkt, key = MiniOP().pktoken()
    good = {"alg": "ES256", "kid": pkt.hash(), "typ": "osm"}
    with pytest.raises(FormatError, match="typ must be 'osm'"):
        verify_message(_resign((pkt, key), {**good, "typ": "JWT"}), pkt)
    with pytest.raises(SignatureError, match="alg"):
        verify_message(_resign((pkt, key), {**good, "alg": "EdDSA"}), pkt)
    with pytest.raises(FormatError, match="crit"):
        verify_message(_resign((pkt, key), {**good, "crit": ["b64"]}), pkt)
    custom = _resign((pkt, key), {**good, "typ": "opkey-artifact"})
    assert verify_message(custom, pkt, typ="opkey-artifact") == b"m"


def test_sign_requires_the_committed_key() -> None:
    pkt, _ = MiniOP().pktoken()
    with pytest.raises(ValueError, match="committed key"):
        sign_message(b"m", pkt, generate_signing_key())
