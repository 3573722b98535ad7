"""Regression tests for defects found by the attack suite and the fuzzers (see fuzz/).

Each test names the defect it pins: before its fix, the input either escaped the error
hierarchy (a ``TypeError``/``ValueError`` instead of an :class:`~opkey.errors.OpkeyError`) or
was accepted where it should have been refused.
"""

from __future__ import annotations

import json

import pytest

from opkey.errors import FormatError
from opkey.keyset import KeySet
from tests.helpers import MiniOP
from tests.security.sec_common import doc, header, parse, set_header


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
