"""Property tests: no mutation of a signed PK token or signed message is ever accepted.

A mutated serialization may only be accepted if it denotes the very same signed token (JSON
permits insignificant whitespace); anything else must raise an :class:`OpkeyError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opkey.errors import OpkeyError
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.message import sign_message, verify_message
from opkey.pktoken import PKToken
from opkey.verify import verify_pktoken
from tests.helpers import NOW, MiniOP

OP = MiniOP()
NONCE_PKT, NONCE_KEY = OP.pktoken(CommitmentType.NONCE)
GQ_PKT, _ = OP.pktoken(CommitmentType.AUD, gq_sign=True)
NONCE_CONFIG = OP.config(CommitmentType.NONCE)
GQ_CONFIG = OP.config(CommitmentType.AUD, algorithms=frozenset({"GQ256"}), require_gq=True)
OSM = sign_message(b"sha256:" + b"ab" * 32, NONCE_PKT, NONCE_KEY)

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def mutations(draw: st.DrawFn, text: str) -> str:
    """Flip a bit, replace, delete or insert characters somewhere in ``text``."""
    data = bytearray(text.encode())
    kind = draw(st.sampled_from(["flip", "replace", "delete", "insert", "truncate"]))
    index = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        data[index] ^= 1 << draw(st.integers(0, 7))
    elif kind == "replace":
        data[index] = draw(st.integers(0, 255).filter(lambda b: b != data[index]))
    elif kind == "delete":
        del data[index : index + draw(st.integers(1, 8))]
    elif kind == "insert":
        data[index:index] = draw(st.binary(min_size=1, max_size=8))
    else:
        del data[index:]
    return data.decode("utf-8", "replace")


def _accepts(parse: Callable[[str], PKToken], text: str, config: IssuerConfig) -> PKToken | None:
    try:
        pkt = parse(text)
        verify_pktoken(pkt, config, OP.keyset, now=NOW)
    except OpkeyError:
        return None
    return pkt


def test_originals_verify() -> None:
    for pkt, config in ((NONCE_PKT, NONCE_CONFIG), (GQ_PKT, GQ_CONFIG)):
        assert _accepts(PKToken.from_json, pkt.to_json().decode(), config) is not None
        assert _accepts(PKToken.from_compact, pkt.to_compact(), config) is not None
    assert verify_message(OSM, NONCE_PKT) == b"sha256:" + b"ab" * 32


@pytest.mark.parametrize(("pkt", "config"), [(NONCE_PKT, NONCE_CONFIG), (GQ_PKT, GQ_CONFIG)])
def test_json_mutations_rejected(pkt: PKToken, config: IssuerConfig) -> None:
    original = pkt.to_json().decode()

    @PROPERTY_SETTINGS
    @given(mutations(original))
    def check(mutated: str) -> None:
        accepted = _accepts(PKToken.from_json, mutated, config)
        if accepted is not None:
            assert accepted.to_json() == pkt.to_json(), "a different PK token was accepted"

    check()


@pytest.mark.parametrize(("pkt", "config"), [(NONCE_PKT, NONCE_CONFIG), (GQ_PKT, GQ_CONFIG)])
def test_compact_mutations_rejected(pkt: PKToken, config: IssuerConfig) -> None:
    original = pkt.to_compact()

    @PROPERTY_SETTINGS
    @given(mutations(original))
    def check(mutated: str) -> None:
        accepted = _accepts(PKToken.from_compact, mutated, config)
        if accepted is not None:
            # only a refreshed-ID-token suffix, which is never trusted, can differ
            assert accepted.to_json() == pkt.to_json(), "a different PK token was accepted"

    check()


@PROPERTY_SETTINGS
@given(mutations(OSM))
def test_osm_mutations_rejected(mutated: str) -> None:
    with pytest.raises(OpkeyError):
        verify_message(mutated, NONCE_PKT)


@PROPERTY_SETTINGS
@given(st.text(max_size=400) | st.binary(max_size=400).map(lambda b: b.decode("latin-1")))
def test_garbage_never_escapes_the_error_hierarchy(text: str) -> None:
    for parse in (PKToken.from_json, PKToken.from_compact, PKToken.parse):
        with contextlib.suppress(OpkeyError):
            parse(text)
