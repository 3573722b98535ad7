"""Signing time proven by real RFC 3161 authorities, wired into signing and verification.

Every test that names ``tsa`` (or a fixture built on it) runs once against sigstore's
timestamp-authority and once against OpenSSL's ``ts``: bundles and image signatures carry
their tokens, the verifier proves the signing time from authorities it configured only, and
applies "signed while the ID token was valid" at that time (``spec/time.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from opkey import (
    Bundle,
    BundleEvidence,
    ConfigError,
    Digest,
    ExpiredError,
    ExpiryPolicy,
    FormatError,
    KeyOptions,
    NetworkError,
    PinnedKeys,
    Requirement,
    Signer,
    Subject,
    TimestampAuthority,
    TimestampAuthorityError,
    TimestampClient,
    TimestampError,
    TimestampToken,
    Trust,
    TrustedIssuer,
    UnsafeNoPolicy,
    Verifier,
    sign_image,
    verify_image,
)
from opkey.cosign import COSIGN_SIGNATURE, COSIGN_TIMESTAMP_ANNOTATION
from opkey.policy.file import IssuerEntry, TimestampSettings, parse_policy_file
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import list_signatures
from tests.helpers import MiniOP
from tests.timestamps.authorities import Fault, Pki
from tests.timestamps.conftest import LateScenario, RunningTsa

ARTIFACT = Digest.of_bytes(b"opkey release artifact with a timestamp\n")
OP = MiniOP()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _signer(
    clients: list[TimestampClient],
    *,
    issued_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> Signer:
    """A signer whose PK token (real signatures) was issued at ``issued_at``."""
    iat = issued_at or _now() - timedelta(seconds=30)
    exp = expires_at or iat + timedelta(seconds=300)
    pkt, key = OP.pktoken(
        iat=int(iat.timestamp()), nbf=int(iat.timestamp()) - 5, exp=int(exp.timestamp())
    )
    return Signer(pkt, key, clients)


def _verifier(
    authorities: list[TimestampAuthority] | None = None,
    *,
    expiry: ExpiryPolicy | None = None,
    required: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> Verifier:
    trusted = TrustedIssuer(
        OP.config(expiry=expiry or ExpiryPolicy.never()), [PinnedKeys({OP.issuer: OP.keyset})]
    )
    trust = Trust([trusted], authorities or (), required)
    return Verifier(trust, clock=clock) if clock else Verifier(trust)


def _reparsed(bundle: Bundle) -> Bundle:
    return Bundle.from_json(bundle.to_json())


# -- bundles ----------------------------------------------------------------------------------


def test_a_stamped_bundle_proves_its_signing_time(tsa: RunningTsa) -> None:
    before = _now()
    bundle = _reparsed(_signer([TimestampClient(tsa.url)]).sign_digest(ARTIFACT))
    after = _now() + timedelta(seconds=1)
    assert len(bundle.timestamps) == 1
    token = TimestampToken.from_der(bundle.timestamps[0])
    identity = _verifier([tsa.authority]).verify_bundle(
        bundle, ARTIFACT, policy=Subject("user-1234")
    )
    signed_at = identity.signed_at
    assert signed_at is not None
    assert signed_at.kind == "timestamp"
    assert signed_at.time == token.claimed_time
    assert before - timedelta(seconds=1) <= signed_at.time <= after
    assert signed_at.earliest <= signed_at.time <= signed_at.latest
    assert signed_at.authority == tsa.authority.leaf.subject.rfc4514_string()  # type: ignore[union-attr]
    assert signed_at.authority_id == tsa.authority.root_sha256


def test_a_proven_time_keeps_an_old_signature_valid_under_the_oidc_rule(tsa: RunningTsa) -> None:
    """A year later the ID token has long expired; the timestamp proves it was not then."""
    bundle = _signer([TimestampClient(tsa.url)]).sign_digest(ARTIFACT)
    later = _now() + timedelta(days=365)
    stamped = _verifier([tsa.authority], expiry=ExpiryPolicy.oidc())
    identity = stamped.verify_bundle(bundle, ARTIFACT, policy=Subject("user-1234"), at=later)
    assert identity.signed_at is not None
    # The same bundle for a verifier that trusts no authority: judged at its clock, expired.
    with pytest.raises(ExpiredError, match="ID token expired"):
        _verifier(expiry=ExpiryPolicy.oidc()).verify_bundle(
            bundle, ARTIFACT, policy=Subject("user-1234"), at=later
        )


def test_the_expiry_policy_is_applied_at_the_proven_time(tsa: RunningTsa) -> None:
    """A 12h policy counts from iat to the proven signing time, not to the verifier's clock;
    a token issued 13 hours before it was stamped (still valid by a long exp) fails it."""
    now = _now()
    fresh = _signer([TimestampClient(tsa.url)]).sign_digest(ARTIFACT)
    twelve = ExpiryPolicy.parse("12h")
    later = now + timedelta(days=30)
    _verifier([tsa.authority], expiry=twelve).verify_bundle(
        fresh, ARTIFACT, policy=Subject("user-1234"), at=later
    )
    old = _signer(
        [TimestampClient(tsa.url)],
        issued_at=now - timedelta(hours=13),
        expires_at=now + timedelta(hours=1),
    ).sign_digest(ARTIFACT)
    with pytest.raises(ExpiredError, match="older than 12h"):
        _verifier([tsa.authority], expiry=twelve).verify_bundle(
            old, ARTIFACT, policy=Subject("user-1234")
        )


def test_signed_after_the_id_token_expired_is_rejected(late_tsa: LateScenario) -> None:
    """The leaked-key case: a genuine PK token, a valid signature, stamped after ``exp``."""
    bundle = _signer(
        [TimestampClient(late_tsa.url)],
        issued_at=late_tsa.issued_at,
        expires_at=late_tsa.expires_at,
    ).sign_digest(ARTIFACT)
    verifier = _verifier([late_tsa.authority])
    with pytest.raises(ExpiredError, match="signed after the ID token expired"):
        verifier.verify_bundle(bundle, ARTIFACT, policy=Subject("user-1234"))
    # Without the timestamp the same signature is judged by the expiry policy alone (never).
    unstamped = Bundle(bundle.pktoken, bundle.signature)
    assert (
        verifier.verify_bundle(unstamped, ARTIFACT, policy=Subject("user-1234")).signed_at is None
    )
    # ... unless a proven signing time is required.
    with pytest.raises(TimestampError, match="no proven signing time"):
        _verifier([late_tsa.authority], required=True).verify_bundle(
            unstamped, ARTIFACT, policy=Subject("user-1234")
        )


def test_require_timestamp_rejects_an_unstamped_signature(tsa: RunningTsa) -> None:
    bundle = _signer([]).sign_digest(ARTIFACT)
    assert bundle.timestamps == ()
    assert "timestamps" not in bundle.to_dict()
    verdict = _verifier([tsa.authority], required=True).verdict(
        Requirement.of(Subject("user-1234")), ARTIFACT, [_evidence(bundle)]
    )
    assert not verdict.accepted
    assert verdict.signatures[0].kind == "TimestampError"
    with pytest.raises(TimestampError, match="carries no timestamp"):
        verdict.raise_if_rejected()


def _evidence(bundle: Bundle) -> BundleEvidence:
    return BundleEvidence(bundle)


def test_an_untrusted_authority_proves_nothing(tsa: RunningTsa, other_pki: Pki) -> None:
    """A token from an authority the verifier did not configure is skipped: not evidence."""
    bundle = _signer([TimestampClient(tsa.url)]).sign_digest(ARTIFACT)
    identity = _verifier([other_pki.authority()]).verify_bundle(
        bundle, ARTIFACT, policy=Subject("user-1234")
    )
    assert identity.signed_at is None
    with pytest.raises(TimestampError, match="which no configured time-stamping authority"):
        _verifier([other_pki.authority()], required=True).verify_bundle(
            bundle, ARTIFACT, policy=Subject("user-1234")
        )


def test_a_token_from_an_expired_tsa_certificate_is_rejected(
    expired_tsa: tuple[str, TimestampAuthority],
) -> None:
    url, authority = expired_tsa
    bundle = _signer([TimestampClient(url)]).sign_digest(ARTIFACT)
    with pytest.raises(TimestampError, match="outside the validity"):
        _verifier([authority]).verify_bundle(bundle, ARTIFACT, policy=Subject("user-1234"))


def test_a_timestamp_from_another_signature_is_rejected(tsa: RunningTsa) -> None:
    signer = _signer([TimestampClient(tsa.url)])
    first = signer.sign_digest(ARTIFACT)
    second = signer.sign_digest(Digest.of_bytes(b"another artifact"))
    spliced = Bundle(second.pktoken, second.signature, first.timestamps)
    verifier = _verifier([tsa.authority])
    with pytest.raises(TimestampError, match="stamps other data, not this signature"):
        verifier.verify_bundle(
            spliced, Digest.of_bytes(b"another artifact"), policy=UnsafeNoPolicy()
        )
    # The same token on its own signature, verified first and cached, still does not move.
    verifier.verify_bundle(first, ARTIFACT, policy=UnsafeNoPolicy())
    with pytest.raises(TimestampError, match="stamps other data"):
        verifier.verify_bundle(
            spliced, Digest.of_bytes(b"another artifact"), policy=UnsafeNoPolicy()
        )


def test_verified_timestamps_are_cached_by_token_and_signature(tsa: RunningTsa) -> None:
    bundle = _signer([TimestampClient(tsa.url)]).sign_digest(ARTIFACT)
    verifier = _verifier([tsa.authority])
    first = verifier.verify_bundle(bundle, ARTIFACT, policy=UnsafeNoPolicy())
    second = verifier.verify_bundle(_reparsed(bundle), ARTIFACT, policy=UnsafeNoPolicy())
    assert first.signed_at == second.signed_at
    assert len(verifier._stamps) == 1
    small = Verifier(verifier.trust, cache_size=1)
    other = _signer([TimestampClient(tsa.url)]).sign_digest(ARTIFACT)
    for item in (bundle, other, bundle):
        small.verify_bundle(item, ARTIFACT, policy=UnsafeNoPolicy())
    assert len(small._stamps) == 1


def test_a_proof_from_the_verifiers_future_is_rejected(tsa: RunningTsa) -> None:
    now = _now()
    bundle = _signer(
        [TimestampClient(tsa.url)],
        issued_at=now - timedelta(minutes=20),
        expires_at=now + timedelta(minutes=5),
    ).sign_digest(ARTIFACT)
    earlier = now - timedelta(minutes=10)
    with pytest.raises(TimestampError, match="lies after the verification time"):
        _verifier([tsa.authority]).verify_bundle(
            bundle, ARTIFACT, policy=UnsafeNoPolicy(), at=earlier
        )


def test_two_authorities_and_the_verifier_trusting_one(
    sigstore_tsa: RunningTsa, openssl_tsa: RunningTsa
) -> None:
    signer = _signer([TimestampClient(sigstore_tsa.url), TimestampClient(openssl_tsa.url)])
    bundle = _reparsed(signer.sign_digest(ARTIFACT))
    assert len(bundle.timestamps) == 2
    for running in (sigstore_tsa, openssl_tsa):
        identity = _verifier([running.authority]).verify_bundle(
            bundle, ARTIFACT, policy=UnsafeNoPolicy()
        )
        assert identity.signed_at is not None
        assert identity.signed_at.authority_id == running.authority.root_sha256
    both = _verifier([sigstore_tsa.authority, openssl_tsa.authority]).verify_bundle(
        bundle, ARTIFACT, policy=UnsafeNoPolicy()
    )
    assert both.signed_at is not None
    stamps = [TimestampToken.from_der(der) for der in bundle.timestamps]
    # The proof is the token whose interval ends first (OpenSSL states ± 1 s).
    ends = {
        sigstore_tsa.authority.root_sha256: stamps[0].claimed_time,
        openssl_tsa.authority.root_sha256: stamps[1].claimed_time + timedelta(seconds=1),
    }
    assert both.signed_at.authority_id == min(ends, key=lambda k: ends[k])


def test_tokens_are_parsed_even_when_no_authority_is_trusted(tsa: RunningTsa) -> None:
    bundle = _signer([TimestampClient(tsa.url)]).sign_digest(ARTIFACT)
    assert _verifier().verify_bundle(bundle, ARTIFACT, policy=UnsafeNoPolicy()).signed_at is None
    garbage = Bundle(bundle.pktoken, bundle.signature, [b"\x30\x03\x02\x01\x00"])
    with pytest.raises(FormatError, match="time-stamp response"):
        _verifier().verify_bundle(garbage, ARTIFACT, policy=UnsafeNoPolicy())


# -- signing fails whole ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (Fault.SLOW, NetworkError, "timed out|timeout"),
        (Fault.GARBAGE, TimestampAuthorityError, "not a DER RFC 3161"),
        (Fault.WRONG_NONCE, TimestampAuthorityError, "answered another request"),
        (Fault.WRONG_IMPRINT, TimestampAuthorityError, "stamped other data"),
    ],
)
def test_signing_fails_when_the_authority_fails(
    faulty_tsa: Callable[[Fault], str],
    fault: Fault,
    error: type[Exception],
    message: str,
) -> None:
    signer = _signer([TimestampClient(faulty_tsa(fault), timeout=1.0)])
    with pytest.raises(error, match=message):
        signer.sign_digest(ARTIFACT)


def test_signing_fails_when_the_authority_is_down(tsa_down_url: str) -> None:
    with pytest.raises(NetworkError):
        _signer([TimestampClient(tsa_down_url)]).sign_digest(ARTIFACT)


def test_signing_fails_when_the_second_authority_fails(
    tsa: RunningTsa, faulty_tsa: Callable[[Fault], str]
) -> None:
    signer = _signer([TimestampClient(tsa.url), TimestampClient(faulty_tsa(Fault.GARBAGE))])
    with pytest.raises(TimestampAuthorityError):
        signer.sign_digest(ARTIFACT)


# -- the bundle member ------------------------------------------------------------------------


def test_the_timestamps_member_round_trips_byte_exactly(tsa: RunningTsa) -> None:
    bundle = _signer([TimestampClient(tsa.url)]).sign_digest(ARTIFACT)
    document = json.loads(bundle.to_json())
    assert list(document) == ["mediaType", "pktoken", "signature", "timestamps"]
    assert document["timestamps"] == [TimestampToken.from_der(bundle.timestamps[0]).to_base64()]
    assert Bundle.from_json(bundle.to_json()).to_json() == bundle.to_json()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "non-empty array"),
        ("MIIB", "non-empty array"),
        ([1], "expected a base64 string"),
        (["MIIB!A=="], "not padded standard base64"),
        (["MIIBAB=="], "non-canonical"),
        (["TWE"], "not padded standard base64"),
        (["TWE="] * 9, "more than 8"),
    ],
)
def test_the_timestamps_member_is_read_strictly(value: object, message: str) -> None:
    bundle = _signer([]).sign_digest(ARTIFACT)
    document = bundle.to_dict()
    document["timestamps"] = value
    with pytest.raises(FormatError, match=message):
        Bundle.from_dict(document)


def test_bundle_timestamps_are_der_bytes() -> None:
    bundle = _signer([]).sign_digest(ARTIFACT)
    with pytest.raises(TypeError, match="DER bytes"):
        Bundle(bundle.pktoken, bundle.signature, ["MIIB"])  # type: ignore[list-item]
    with pytest.raises(FormatError, match="1 to 65536 bytes"):
        Bundle(bundle.pktoken, bundle.signature, [b""])


# -- trust configuration ----------------------------------------------------------------------


def test_requiring_a_signing_time_needs_an_authority() -> None:
    with pytest.raises(ConfigError, match="no time-stamping authority is trusted"):
        _verifier(required=True)


def test_policy_file_timestamps_are_trust_anchors(tsa: RunningTsa, tmp_path: Path) -> None:
    chain = tmp_path / "tsa-chain.pem"
    chain.write_bytes(tsa.chain_pem)
    text = f"""
version = 1

[[issuers]]
issuer = "{OP.issuer}"
commitment = "nonce"
client_id = "opkey-tests"
algorithms = ["RS256"]

[[signers]]
name = "anyone"
unsafe_no_policy = true

[timestamps]
authorities = ["tsa-chain.pem"]
required = true
"""
    policy = parse_policy_file(text, base_dir=tmp_path)
    assert policy.timestamps == TimestampSettings((chain,), required=True)
    assert parse_policy_file(policy.to_toml()) == policy
    entries = [IssuerEntry(policy.issuers[0].config)]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(OP.keyset.to_dict()))
    with pytest.raises(ConfigError, match=r"timestamps.authorities: .*--trust-policy-anchors"):
        Trust.build(entries, KeyOptions(jwks_file=jwks), timestamps=policy.timestamps)
    trust = Trust.build(
        entries, KeyOptions(jwks_file=jwks, policy_anchors=True), timestamps=policy.timestamps
    )
    assert trust.timestamp_authorities == (tsa.authority,)
    assert trust.require_signing_time
    # The verifier's own chain is always used; the file's "required" alone is honoured too.
    own = Trust.build(
        entries,
        KeyOptions(jwks_file=jwks, timestamp_certs=[chain]),
        timestamps=TimestampSettings(required=True),
    )
    assert own.timestamp_authorities == (tsa.authority,)
    assert own.require_signing_time
    bundle = _signer([TimestampClient(tsa.url)]).sign_digest(ARTIFACT)
    verdict = Verifier(own).verdict(policy.requirement, ARTIFACT, [_evidence(bundle)])
    verdict.raise_if_rejected()
    assert verdict.identities[0].signed_at is not None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[timestamps]\n", "timestamps: empty"),
        ("[timestamps]\nrequired = 1\n", "timestamps.required: expected a boolean"),
        ("[timestamps]\nauthorities = 'a.pem'\n", "timestamps.authorities: expected an array"),
        ("[timestamps]\nauthorities = [1]\n", r"timestamps.authorities\[0\]: expected a string"),
        ("[timestamps]\nrequire = true\n", "timestamps.require: unknown key"),
    ],
)
def test_policy_file_timestamps_table_is_strict(table: str, message: str) -> None:
    text = "version = 1\n[[signers]]\nname = 'a'\nunsafe_no_policy = true\n" + table
    with pytest.raises(ConfigError, match=message):
        parse_policy_file(text)


def test_a_missing_or_malformed_chain_file_is_a_config_error(tmp_path: Path) -> None:
    entries = [IssuerEntry(OP.config())]
    with pytest.raises(ConfigError, match="cannot read time-stamping authority chain"):
        Trust.build(entries, KeyOptions(timestamp_certs=[tmp_path / "absent.pem"], offline=True))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"not PEM certificates|expected 1 to 8"):
        Trust.build(entries, KeyOptions(timestamp_certs=[bad], offline=True))


# -- image signatures -------------------------------------------------------------------------


def test_an_image_signature_carries_cosigns_timestamp_annotation(
    tsa: RunningTsa, other_pki: Pki, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    signer = _signer([TimestampClient(tsa.url)])
    signed = sign_image(registry_client, registry_image, signer)
    (layer,) = list_signatures(registry_client, signed)
    token = TimestampToken.from_cosign_annotation(layer.annotations[COSIGN_TIMESTAMP_ANNOTATION])
    assert layer.annotations[COSIGN_TIMESTAMP_ANNOTATION] == token.to_cosign_annotation()
    import base64

    from opkey import verify_timestamp

    raw = base64.b64decode(layer.annotations[COSIGN_SIGNATURE])
    verify_timestamp(token, raw, [tsa.authority])  # over cosign's signature bytes
    requirement = Requirement.of(Subject("user-1234"))
    result = verify_image(registry_client, signed, _verifier([tsa.authority]), requirement)
    identity = result.verdict.identities[0]
    assert identity.signed_at is not None
    assert identity.signed_at.authority_id == tsa.authority.root_sha256
    untrusted = verify_image(
        registry_client, signed, _verifier([other_pki.authority()]), requirement
    )
    assert untrusted.verdict.identities[0].signed_at is None
    with pytest.raises(TimestampError, match="no proven signing time"):
        verify_image(
            registry_client, signed, _verifier([other_pki.authority()], required=True), requirement
        )


def test_an_image_signed_after_the_id_token_expired_is_rejected(
    late_tsa: LateScenario, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    signer = _signer(
        [TimestampClient(late_tsa.url)],
        issued_at=late_tsa.issued_at,
        expires_at=late_tsa.expires_at,
    )
    signed = sign_image(registry_client, registry_image, signer)
    with pytest.raises(ExpiredError, match="signed after the ID token expired"):
        verify_image(
            registry_client,
            signed,
            _verifier([late_tsa.authority]),
            Requirement.of(Subject("user-1234")),
        )


def test_image_signing_with_a_failing_authority_writes_nothing(
    tsa: RunningTsa,
    faulty_tsa: Callable[[Fault], str],
    registry_client: RegistryClient,
    registry_image: ImageReference,
) -> None:
    signer = _signer([TimestampClient(faulty_tsa(Fault.WRONG_NONCE))])
    with pytest.raises(TimestampAuthorityError):
        sign_image(registry_client, registry_image, signer)
    assert list_signatures(registry_client, registry_client.resolve(registry_image)) == []
    two = _signer([TimestampClient(tsa.url), TimestampClient(tsa.url)])
    with pytest.raises(ConfigError, match="one RFC 3161 timestamp"):
        sign_image(registry_client, registry_image, two)
