"""The recorded logged signatures (tests/data/tlog/logged-signatures.json) verify offline, long
after their ID tokens expired: the log's signed time (Rekor v1) proves they were made in time."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from opkey import (
    Bundle,
    CommitmentType,
    CosignLayerEvidence,
    Digest,
    ExpiredError,
    IssuerConfig,
    KeySet,
    PinnedKeys,
    Requirement,
    Trust,
    TrustedIssuer,
    Verifier,
)
from opkey.expiry import ExpiryPolicy
from opkey.policy.claims import UnsafeNoPolicy
from opkey.tlog import TrustedLog, load_log_public_key

DATA = json.loads(
    (Path(__file__).parents[1] / "data" / "tlog" / "logged-signatures.json").read_text()
)
DIGEST = Digest(DATA["digest"])


def _verifier(version: str, *, expiry: ExpiryPolicy | None = None) -> Verifier:
    provider = DATA["provider"]
    config = IssuerConfig(
        issuer=provider["issuer"],
        commitment=CommitmentType.GQ_BOUND,
        require_gq=True,
        algorithms=frozenset({"GQ256"}),
        expiry=expiry or ExpiryPolicy.never(),
    )
    keys = PinnedKeys({provider["issuer"]: KeySet.from_dict(provider["jwks"])})
    pin = DATA[version]["log"]
    log = TrustedLog.pinned(pin["origin"], load_log_public_key(pin["public_key_pem"].encode()))
    return Verifier(
        Trust((TrustedIssuer(config, (keys,)),), transparency_logs=(log,), require_tlog=True)
    )


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_recorded_bundle_and_layer_verify(version: str) -> None:
    verifier = _verifier(version)
    bundle = Bundle.from_json(json.dumps(DATA[version]["bundle"]))
    identity = verifier.verify_bundle(bundle, DIGEST, policy=UnsafeNoPolicy())
    assert len(identity.log_entries) == 1
    assert (identity.signed_at is not None) == (version == "v1")
    layer = DATA[version]["layer"]
    evidence = CosignLayerEvidence(base64.b64decode(layer["payload"]), layer["annotations"])
    verdict = verifier.verdict(Requirement.of(UnsafeNoPolicy()), DIGEST, [evidence])
    verdict.raise_if_rejected()


def test_the_log_time_keeps_an_old_signature_acceptable_under_oidc_expiry() -> None:
    """Under the ``oidc`` expiry policy an old PK token is rejected as of now, unless a proven
    signing time says the signature was made while it was valid: the Rekor v1 entry's."""
    later = datetime(2030, 1, 1, tzinfo=timezone.utc)
    bundle = Bundle.from_json(json.dumps(DATA["v1"]["bundle"]))
    strict = _verifier("v1", expiry=ExpiryPolicy.parse("oidc"))
    identity = strict.verify_bundle(bundle, DIGEST, policy=UnsafeNoPolicy(), at=later)
    assert identity.signed_at is not None
    v2 = Bundle.from_json(json.dumps(DATA["v2"]["bundle"]))
    with pytest.raises(ExpiredError):
        _verifier("v2", expiry=ExpiryPolicy.parse("oidc")).verify_bundle(
            v2, DIGEST, policy=UnsafeNoPolicy(), at=later
        )
