"""Timestamps from two real authorities (sigstore's timestamp-authority and OpenSSL's ``ts``):
requesting, every way an authority can fail, and verifying against configured trust only."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from opkey import (
    Bundle,
    Digest,
    ExpiredError,
    ExpiryPolicy,
    NetworkError,
    PinnedKeys,
    Signer,
    Subject,
    TimestampAuthority,
    TimestampAuthorityError,
    TimestampClient,
    TimestampError,
    TimestampToken,
    Trust,
    TrustedIssuer,
    VerifiedIdentity,
    Verifier,
    check_signed_while_valid,
    verify_timestamp,
)
from tests.helpers import MiniOP
from tests.timestamps.authorities import Fault, Pki, make_pki, resign_token
from tests.timestamps.conftest import LateScenario, RunningTsa

ARTIFACT = Digest.of_bytes(b"opkey release artifact\n")


def _signed(
    issued_at: datetime | None = None, expires_at: datetime | None = None
) -> tuple[Bundle, VerifiedIdentity]:
    """A bundle from a fresh PK token (real ES256 signature), verified: the ID token's times."""
    iat = issued_at or datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=30)
    exp = expires_at or iat + timedelta(seconds=300)
    op = MiniOP()
    pkt, key = op.pktoken(
        iat=int(iat.timestamp()), nbf=int(iat.timestamp()) - 5, exp=int(exp.timestamp())
    )
    bundle = Signer(pkt, key).sign_digest(ARTIFACT)
    verifier = Verifier(
        Trust(
            [
                TrustedIssuer(
                    op.config(expiry=ExpiryPolicy.never()), [PinnedKeys({op.issuer: op.keyset})]
                )
            ]
        ),
        clock=lambda: iat,
    )
    identity = verifier.verify_bundle(bundle, ARTIFACT, policy=Subject("user-1234"))
    return bundle, identity


def _signature(bundle: Bundle) -> bytes:
    """What opkey stamps for a bundle: the raw bytes of its OSM signature."""
    return bundle.signature_jws.signature


def _stamp(url: str, signature: bytes, **options: float) -> TimestampToken:
    return TimestampClient(url, **options).stamp(signature)  # type: ignore[arg-type]


# -- success ----------------------------------------------------------------------------------


def test_stamp_and_verify(tsa: RunningTsa) -> None:
    bundle, identity = _signed()
    signature = _signature(bundle)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    token = _stamp(tsa.url, signature)
    after = datetime.now(timezone.utc)

    stamp = verify_timestamp(token, signature, [tsa.authority])
    assert before - timedelta(seconds=1) <= stamp.time <= after + timedelta(seconds=1)
    assert stamp.accuracy == timedelta(seconds=1)
    authority = tsa.authority
    assert (
        stamp.root_sha256 == hashlib.sha256(authority.root.public_bytes(Encoding.DER)).hexdigest()
    )
    assert authority.leaf is not None
    assert stamp.certificate == authority.leaf
    assert stamp.tsa_subject == authority.leaf.subject.rfc4514_string()
    check_signed_while_valid(stamp, issued_at=identity.issued_at, expires_at=identity.expires_at)
    # The token survives its transport encodings byte for byte.
    for again in (
        TimestampToken.from_der(token.der),
        TimestampToken.from_base64(token.to_base64()),
        TimestampToken.from_cosign_annotation(token.to_cosign_annotation()),
    ):
        assert again.der == token.der
        assert verify_timestamp(again, signature, [authority]) == stamp


def test_trust_in_the_cas_alone_accepts_the_tsa_certificate_the_token_carries(
    tsa: RunningTsa,
) -> None:
    signature = _signature(_signed()[0])
    token = _stamp(tsa.url, signature)
    ca_only = TimestampAuthority(tsa.authority.root, tsa.authority.intermediates)
    stamp = verify_timestamp(token, signature, [ca_only])
    assert stamp.certificate == tsa.authority.leaf
    assert stamp.authority is ca_only


def test_client_with_configured_authority_verifies_before_returning(tsa: RunningTsa) -> None:
    signature = _signature(_signed()[0])
    token = TimestampClient(tsa.url, authority=tsa.authority).stamp(signature)
    assert verify_timestamp(token, signature, [tsa.authority]).root_sha256 == (
        tsa.authority.root_sha256
    )


def test_client_refuses_a_token_its_configured_chain_does_not_verify(
    tsa: RunningTsa, other_pki: Pki
) -> None:
    client = TimestampClient(tsa.url, authority=other_pki.authority())
    with pytest.raises(TimestampAuthorityError, match="does not verify against its configured"):
        client.stamp(_signature(_signed()[0]))


def test_the_request_is_sha256_of_the_signature_with_nonce_and_cert_req(
    tsa: RunningTsa, make_front: Callable[..., str]
) -> None:
    from rfc3161_client import _rust

    seen: list[bytes] = []

    def recording(query: bytes):  # type: ignore[no-untyped-def]
        seen.append(query)
        return tsa.backend(query)

    signature = _signature(_signed()[0])
    _stamp(make_front(recording), signature)
    _stamp(make_front(recording), signature)
    first, second = (_rust.parse_timestamp_request(q) for q in seen)
    assert first.message_imprint.message == hashlib.sha256(signature).digest()
    assert first.message_imprint.hash_algorithm.dotted_string == "2.16.840.1.101.3.4.2.1"
    assert first.cert_req is True
    assert first.nonce is not None
    assert second.nonce is not None
    assert first.nonce != second.nonce


# -- the authority fails ----------------------------------------------------------------------


def test_authority_down(tsa_down_url: str) -> None:
    with pytest.raises(NetworkError, match="connection refused"):
        _stamp(tsa_down_url, b"signature")


def test_authority_slow_past_the_deadline(faulty_tsa: Callable[[Fault], str]) -> None:
    url = faulty_tsa(Fault.SLOW)
    with pytest.raises(NetworkError, match="timed out"):
        _stamp(url, b"signature", timeout=0.5)


def test_authority_answers_garbage(faulty_tsa: Callable[[Fault], str]) -> None:
    with pytest.raises(TimestampAuthorityError, match="not a DER RFC 3161 time-stamp response"):
        _stamp(faulty_tsa(Fault.GARBAGE), b"signature")


def test_authority_answers_another_nonce(faulty_tsa: Callable[[Fault], str]) -> None:
    with pytest.raises(TimestampAuthorityError, match="answered another request: nonce") as info:
        _stamp(faulty_tsa(Fault.WRONG_NONCE), b"signature")
    assert info.value.expected != info.value.found


def test_authority_answers_a_token_for_other_data(faulty_tsa: Callable[[Fault], str]) -> None:
    with pytest.raises(TimestampAuthorityError, match="stamped other data") as info:
        _stamp(faulty_tsa(Fault.WRONG_IMPRINT), b"signature")
    assert info.value.expected == hashlib.sha256(b"signature").hexdigest()


def test_authority_rejects(tsa: RunningTsa, rejecting_tsa: str) -> None:
    if tsa.kind == "openssl":
        # A real TimeStampResp with PKIStatus rejection and OpenSSL's reason.
        message = r"did not grant the timestamp: status rejection \(.*digest algorithm"
    else:
        # sigstore's authority refuses with HTTP 400 and a JSON reason.
        message = r"refused the request: HTTP 400: .*(policy|timestamp)"
    with pytest.raises(TimestampAuthorityError, match=message):
        _stamp(rejecting_tsa, b"signature")


# -- verification against configured trust only ----------------------------------------------


def test_untrusted_authority(tsa: RunningTsa, other_pki: Pki) -> None:
    signature = _signature(_signed()[0])
    token = _stamp(tsa.url, signature)
    with pytest.raises(TimestampError, match="which no configured time-stamping authority issued"):
        verify_timestamp(
            token, signature, [other_pki.authority(), other_pki.authority(pin_leaf=False)]
        )


def test_the_other_authority_does_not_vouch(
    sigstore_tsa: RunningTsa, openssl_tsa: RunningTsa
) -> None:
    signature = _signature(_signed()[0])
    for issuing, configured in ((sigstore_tsa, openssl_tsa), (openssl_tsa, sigstore_tsa)):
        token = _stamp(issuing.url, signature)
        with pytest.raises(TimestampError, match="no configured time-stamping authority"):
            verify_timestamp(token, signature, [configured.authority])
        stamp = verify_timestamp(token, signature, [configured.authority, issuing.authority])
        assert stamp.root_sha256 == issuing.authority.root_sha256


def test_an_impostor_chain_with_the_same_names_does_not_verify(
    tsa: RunningTsa,
    openssl_bin: str,
    make_front: Callable[..., str],
    tmp_path: Path,
) -> None:
    """A TSA whose CA copies the configured CA's names (not its keys) is refused by the CMS
    check: names select a candidate, only the configured keys prove anything."""
    from tests.timestamps.authorities import OpenSslBackend

    configured = TimestampAuthority(tsa.authority.root, tsa.authority.intermediates)
    impostor = make_pki(tmp_path / "impostor", names_of=configured)
    url = make_front(OpenSslBackend(openssl_bin, impostor, tmp_path / "impostor-tsa"))
    signature = _signature(_signed()[0])
    token = _stamp(url, signature)
    genuine = verify_timestamp(token, signature, [impostor.authority(pin_leaf=False)])
    assert genuine.root_sha256 == impostor.authority().root_sha256
    with pytest.raises(TimestampError, match="does not verify along the chain"):
        verify_timestamp(token, signature, [configured])
    with pytest.raises(TimestampError, match="no configured time-stamping authority issued"):
        verify_timestamp(token, signature, [tsa.authority])  # pinned leaf: not even a candidate


def test_expired_tsa_certificate(expired_tsa: tuple[str, TimestampAuthority]) -> None:
    url, authority = expired_tsa
    signature = _signature(_signed()[0])
    token = _stamp(url, signature)
    with pytest.raises(TimestampError, match="lies outside the validity of") as info:
        verify_timestamp(token, signature, [authority])
    leaf = authority.leaf
    assert leaf is not None
    assert leaf.not_valid_after_utc < token.claimed_time
    assert leaf.subject.rfc4514_string() in str(info.value)
    assert info.value.found == token.claimed_time.isoformat()


@pytest.mark.parametrize(
    ("eku", "critical", "reason"),
    [
        ([ExtendedKeyUsageOID.CODE_SIGNING], True, "1.3.6.1.5.5.7.3.3, not only timeStamping"),
        (None, True, "no extendedKeyUsage"),
        ([ExtendedKeyUsageOID.TIME_STAMPING], False, "not marked critical"),
        (
            [ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING],
            True,
            "not only timeStamping",
        ),
    ],
    ids=["code-signing", "no-eku", "non-critical", "extra-usage"],
)
def test_token_signed_by_a_certificate_not_for_time_stamping(
    tsa: RunningTsa,
    openssl_bin: str,
    other_pki: Pki,
    tmp_path: Path,
    eku: list[object] | None,
    critical: bool,
    reason: str,
) -> None:
    signature = _signature(_signed()[0])
    genuine = _stamp(tsa.url, signature)
    cert, key = other_pki.issue("not a TSA", eku=eku, eku_critical=critical)  # type: ignore[arg-type]
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    from cryptography.hazmat.primitives import serialization

    key_path.write_bytes(
        key.private_bytes(
            Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    resigned = TimestampToken.from_der(
        resign_token(openssl_bin, tmp_path / "cms", genuine.der, cert_path, key_path)
    )
    assert resigned.claimed_time == genuine.claimed_time
    with pytest.raises(TimestampError, match="not a time-stamping certificate") as info:
        verify_timestamp(resigned, signature, [other_pki.authority(pin_leaf=False)])
    assert reason in str(info.value)


def test_a_token_for_another_signature(tsa: RunningTsa) -> None:
    first, second = _signature(_signed()[0]), _signature(_signed()[0])
    token = _stamp(tsa.url, first)
    with pytest.raises(TimestampError, match="stamps other data, not this signature") as info:
        verify_timestamp(token, second, [tsa.authority])
    assert info.value.expected == hashlib.sha256(second).hexdigest()
    assert info.value.found == hashlib.sha256(first).hexdigest()


def test_a_token_over_the_signed_data_instead_of_the_signature(tsa: RunningTsa) -> None:
    """What is stamped is the signature: a token over the statement proves nothing of it."""
    bundle = _signed()[0]
    token = _stamp(tsa.url, bundle.signature_jws.payload())
    with pytest.raises(TimestampError, match="stamps other data"):
        verify_timestamp(token, _signature(bundle), [tsa.authority])


# -- the time rule ----------------------------------------------------------------------------


def test_signed_after_the_id_token_expired(late_tsa: LateScenario) -> None:
    bundle, identity = _signed(late_tsa.issued_at, late_tsa.expires_at)
    assert identity.expires_at == late_tsa.expires_at
    signature = _signature(bundle)
    stamp = verify_timestamp(_stamp(late_tsa.url, signature), signature, [late_tsa.authority])
    assert stamp.time > identity.expires_at + timedelta(seconds=60)
    with pytest.raises(ExpiredError, match="signed after the ID token expired") as info:
        check_signed_while_valid(
            stamp, issued_at=identity.issued_at, expires_at=identity.expires_at
        )
    assert info.value.found == stamp.latest.isoformat()
