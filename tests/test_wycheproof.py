"""Wycheproof JSON Web Signature vectors through opkey's JWS layer.

Every invalid case must be rejected; every valid case whose algorithm opkey supports must be
accepted. The verifier allows exactly the algorithm the test key declares, as a verifier
configured for that key would. Groups whose algorithm opkey never verifies are listed in
``SKIPPED`` with the reason; their cases must still all be rejected (never accepted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opkey.errors import OpkeyError
from opkey.jose import parse_compact
from opkey.keys import ALL_OP_ALGORITHMS, PublicJWK, verify_signature

VECTORS = Path(__file__).parent / "data" / "wycheproof" / "json_web_signature_test.json"

#: Algorithms (from the test keys) whose *valid* cases opkey cannot accept, and why.
SKIPPED = {
    "HS256": "symmetric MACs are never accepted (RS/HS key confusion, DESIGN.md §4)",
    "RS384": "not an algorithm identity providers use for ID tokens; only RS256/PS256 RSA",
    "RS512": "not an algorithm identity providers use for ID tokens; only RS256/PS256 RSA",
    "PS384": "not supported; only PS256 among RSASSA-PSS algorithms",
    "PS512": "not supported; only PS256 among RSASSA-PSS algorithms",
    "ES521": "only P-256 (ES256) elliptic-curve keys are supported",
}


_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})


def _cases() -> list[Any]:
    document = json.loads(VECTORS.read_text())
    cases = []
    for group in document["testGroups"]:
        jwk = group.get("public") or group.get("private")
        for test in group["tests"]:
            cases.append(
                pytest.param(jwk, test, id=f"{test['tcId']}-{group['comment']}-{test['comment']}")
            )
    return cases


def jws_accepts(token: Any, jwk: dict[str, Any]) -> bool:
    """The JWS layer's verdict, with the key's declared algorithm as the only allowed one."""
    try:
        public = PublicJWK.from_dict({k: v for k, v in jwk.items() if k not in _PRIVATE})
        allowed = {jwk.get("alg")} & ALL_OP_ALGORITHMS
        parsed = parse_compact(token)
        if parsed.alg not in allowed:
            return False
        verify_signature(parsed.alg, public, parsed.signing_input, parsed.signature)
    except OpkeyError:
        return False
    return True


def _token_alg(token: Any) -> Any:
    try:
        return parse_compact(token).alg
    except OpkeyError:
        return None


@pytest.mark.parametrize(("jwk", "test"), _cases())
def test_wycheproof_vector(jwk: dict[str, Any], test: dict[str, Any]) -> None:
    accepted = jws_accepts(test["jws"], jwk)
    skipped = [alg for alg in (jwk.get("alg"), _token_alg(test["jws"])) if alg in SKIPPED]
    if test["result"] == "invalid":
        assert not accepted, "an invalid Wycheproof vector was accepted"
    elif skipped:
        assert not accepted, f"{skipped[0]} must never be accepted ({SKIPPED[skipped[0]]})"
    else:
        assert accepted, "a valid vector of a supported algorithm was rejected"


def test_every_group_is_either_supported_or_listed() -> None:
    document = json.loads(VECTORS.read_text())
    algs = {(g.get("public") or g.get("private")).get("alg") for g in document["testGroups"]}
    unknown = {a for a in algs if a and a not in ALL_OP_ALGORITHMS and a not in SKIPPED}
    assert not unknown
