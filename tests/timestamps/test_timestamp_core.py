"""The pure core of opkey.timestamp: configured trust, token encodings, reading an authority's
answer, and the time rule. Tokens come from the real OpenSSL authority of the fixtures."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

import opkey
from opkey import (
    ConfigError,
    ExpiredError,
    FormatError,
    TimestampAuthority,
    TimestampAuthorityError,
    TimestampClient,
    TimestampError,
    TimestampToken,
    VerifiedTimestamp,
    check_signed_while_valid,
    verify_timestamp,
)
from opkey.http import HttpResponse
from opkey.timestamp import (
    COSIGN_TIMESTAMP_ANNOTATION,
    MAX_TOKEN_BYTES,
    TimestampRequest,
    read_timestamp_reply,
    signature_imprint,
)
from tests.timestamps.authorities import OpenSslBackend, Pki, make_pki
from tests.timestamps.conftest import RunningTsa

SIGNATURE = hashlib.sha512(b"an ES256 signature would be 64 bytes").digest()


@pytest.fixture(scope="module")
def stamped(openssl_tsa: RunningTsa) -> tuple[TimestampRequest, bytes]:
    """A request over SIGNATURE and the OpenSSL authority's DER answer to it."""
    request = TimestampRequest.for_signature(SIGNATURE)
    reply = openssl_tsa.backend(request.der)
    assert reply.status == 200
    return request, reply.body


@pytest.fixture(scope="module")
def token(stamped: tuple[TimestampRequest, bytes]) -> TimestampToken:
    return TimestampToken.from_der(stamped[1])


# -- requests and answers ---------------------------------------------------------------------


def test_request_over_a_signature() -> None:
    request = TimestampRequest.for_signature(SIGNATURE)
    assert request.imprint == signature_imprint(SIGNATURE) == hashlib.sha256(SIGNATURE).digest()
    assert request.nonce > 0
    assert TimestampRequest.for_signature(SIGNATURE).nonce != request.nonce
    with pytest.raises(ValueError, match="empty"):
        TimestampRequest.for_signature(b"")
    with pytest.raises(TypeError, match="bytes"):
        TimestampRequest.for_signature("text")  # type: ignore[arg-type]


def test_read_reply_accepts_the_answer_to_its_request(
    stamped: tuple[TimestampRequest, bytes],
) -> None:
    request, der = stamped
    assert read_timestamp_reply(request, der).der == der


def test_read_reply_refuses_an_answer_to_another_request(
    stamped: tuple[TimestampRequest, bytes],
) -> None:
    _, der = stamped
    other = TimestampRequest.for_signature(SIGNATURE)  # same imprint, another nonce
    with pytest.raises(TimestampAuthorityError, match="answered another request"):
        read_timestamp_reply(other, der, url="https://tsa.example.test")
    elsewhere = TimestampRequest.for_signature(b"another signature")
    with pytest.raises(TimestampAuthorityError, match="stamped other data"):
        read_timestamp_reply(elsewhere, der)


@pytest.mark.parametrize("body", [b"", b"\x30\x03\x02\x01", b"<html>busy</html>", b"\x00" * 4096])
def test_read_reply_refuses_garbage(body: bytes) -> None:
    request = TimestampRequest.for_signature(SIGNATURE)
    with pytest.raises(TimestampAuthorityError, match="not a DER RFC 3161 time-stamp response"):
        read_timestamp_reply(request, body)


def test_rejection_status(openssl_bin: str, openssl_pki: Pki, tmp_path: Path) -> None:
    request = TimestampRequest.for_signature(SIGNATURE)
    backend = OpenSslBackend(openssl_bin, openssl_pki, tmp_path, digests="sha384")
    rejection = backend(request.der).body
    with pytest.raises(TimestampAuthorityError, match="status rejection") as info:
        read_timestamp_reply(request, rejection)
    assert info.value.found == "rejection"
    with pytest.raises(FormatError, match="carries no token, its status is rejection"):
        TimestampToken.from_der(rejection)


class _Canned:
    """A transport that answers one canned response (the client's HTTP handling, offline)."""

    def __init__(self, status: int, content_type: str | None, body: bytes = b"") -> None:
        self.status, self.content_type, self.body = status, content_type, body
        self.sent: list[tuple[str, dict[str, str], bytes]] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        timeout: float = 10.0,
        max_bytes: int = 1 << 20,
    ) -> HttpResponse:
        assert isinstance(data, bytes)
        self.sent.append((method, dict(headers or {}), data))
        answer = {"Content-Type": self.content_type} if self.content_type else {}
        return HttpResponse(self.status, answer, self.body, url)


@pytest.mark.parametrize(
    ("status", "content_type", "error", "message"),
    [
        (500, "text/plain", opkey.NetworkError, "answered HTTP 500"),
        (302, "text/plain", opkey.NetworkError, "redirects are not followed"),
        (403, "text/plain", TimestampAuthorityError, "refused the request: HTTP 403"),
        (200, "application/json", TimestampAuthorityError, "not application/timestamp-reply"),
        (200, None, TimestampAuthorityError, "answered no content"),
    ],
)
def test_client_http_answers(
    status: int, content_type: str | None, error: type[Exception], message: str
) -> None:
    transport = _Canned(status, content_type, b"nope")
    client = TimestampClient("https://127.0.0.1:9/tsr", transport=transport)
    with pytest.raises(error, match=message):
        client.stamp(SIGNATURE)
    method, headers, data = transport.sent[0]
    assert method == "POST"
    assert headers["Content-Type"] == "application/timestamp-query"
    assert TimestampRequest.for_signature(SIGNATURE).imprint in data


@pytest.mark.parametrize(
    "url",
    ["http://tsa.example.test/", "ftp://127.0.0.1/", "https://user:pw@tsa.example.test/", "tsa"],
)
def test_client_refuses_urls(url: str) -> None:
    with pytest.raises(opkey.NetworkError):
        TimestampClient(url, transport=_Canned(200, None))


# -- tokens and encodings ---------------------------------------------------------------------


def test_cosign_annotation_is_byte_exact(token: TimestampToken) -> None:
    """Go's encoding/json of ``struct{ SignedRFC3161Timestamp []byte }``: one member, standard
    padded base64, no spaces."""
    value = token.to_cosign_annotation()
    assert COSIGN_TIMESTAMP_ANNOTATION == "dev.sigstore.cosign/rfc3161timestamp"
    assert value == '{"SignedRFC3161Timestamp":"' + base64.b64encode(token.der).decode() + '"}'
    assert json.loads(value) == {"SignedRFC3161Timestamp": token.to_base64()}
    assert TimestampToken.from_cosign_annotation(value) == token


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda v: v.replace("}", ',"Extra":1}'), "exactly the member"),
        (lambda v: v.replace("SignedRFC3161Timestamp", "signedRFC3161Timestamp"), "exactly"),
        (lambda v: v[:-1] + ',"SignedRFC3161Timestamp":"AA=="}', "duplicate"),
        (lambda v: '{"SignedRFC3161Timestamp":null}', "expected a base64 string"),
        (lambda v: '{"SignedRFC3161Timestamp":"!!!!"}', "not padded standard base64"),
        (lambda v: v.replace('"}', '\\n"}'), "base64"),
        (lambda v: '["SignedRFC3161Timestamp"]', "object"),
        (lambda v: '{"SignedRFC3161Timestamp":"MAMCAQA="}', "time-stamp response"),
    ],
)
def test_cosign_annotation_is_read_strictly(
    token: TimestampToken, mutate: object, message: str
) -> None:
    value = mutate(token.to_cosign_annotation())  # type: ignore[operator]
    with pytest.raises(FormatError, match=message):
        TimestampToken.from_cosign_annotation(value)


def test_base64_must_be_canonical(token: TimestampToken) -> None:
    text = token.to_base64()
    assert TimestampToken.from_base64(text) == token
    unpadded = text.rstrip("=")
    if unpadded != text:
        with pytest.raises(FormatError, match="base64"):
            TimestampToken.from_base64(unpadded)
    urlsafe = base64.urlsafe_b64encode(token.der).decode()
    if urlsafe != text:
        with pytest.raises(FormatError, match="base64"):
            TimestampToken.from_base64(urlsafe)
    # Spare bits set in the last character: decodes to the same bytes, yet not canonical.
    spare = base64.b64encode(b"\x00").decode()  # "AA=="
    with pytest.raises(FormatError, match="canonical"):
        TimestampToken.from_base64(spare.replace("AA", "AB"))


def test_token_size_limit(token: TimestampToken) -> None:
    with pytest.raises(FormatError, match="more than the 65536 allowed"):
        TimestampToken.from_der(token.der + b"\x00" * MAX_TOKEN_BYTES)
    with pytest.raises(FormatError, match=r"time-stamp response"):
        TimestampToken.from_der(token.der + b"\x00")


def test_truncated_or_flipped_tokens_prove_nothing_else(
    token: TimestampToken, openssl_tsa: RunningTsa
) -> None:
    """Every truncation is a FormatError. A flipped bit is a FormatError or a TimestampError,
    never another exception, except in the few bytes the CMS signature does not cover and
    OpenSSL does not read (the version numbers of SignedData and SignerInfo, the OID of
    SignerInfo's signatureAlgorithm, where the key decides): such a token may still verify,
    and then proves exactly what the original proves."""
    der = token.der
    for cut in range(0, len(der), 7):
        with pytest.raises(FormatError):
            TimestampToken.from_der(der[:cut])
    authority = openssl_tsa.authority
    original = verify_timestamp(token, SIGNATURE, [authority])
    unchanged = 0
    for position in range(len(der)):
        flipped = bytearray(der)
        flipped[position] ^= 0x01
        try:
            stamp = verify_timestamp(bytes(flipped), SIGNATURE, [authority])
        except (FormatError, TimestampError):
            continue
        unchanged += 1
        assert (stamp.time, stamp.serial_number, stamp.certificate, stamp.policy) == (
            original.time,
            original.serial_number,
            original.certificate,
            original.policy,
        )
    assert unchanged <= 12, "too many bytes of the token are not authenticated"


# -- configured trust -------------------------------------------------------------------------


def test_chain_in_any_order(openssl_pki: Pki) -> None:
    forward = TimestampAuthority.from_pem(openssl_pki.chain_pem)
    backward = TimestampAuthority.from_pem(openssl_pki.leaf_first_pem.decode())
    assert forward == backward
    assert forward.root == openssl_pki.root
    assert forward.intermediates == (openssl_pki.intermediate,)
    assert forward.leaf == openssl_pki.leaf
    assert (
        forward.root_sha256
        == hashlib.sha256(openssl_pki.root.public_bytes(Encoding.DER)).hexdigest()
    )
    ca_only = TimestampAuthority.from_pem(openssl_pki.ca_pem)
    assert ca_only.leaf is None


def test_chain_configuration_errors(openssl_pki: Pki, other_pki: Pki, tmp_path: Path) -> None:
    pem = openssl_pki
    cases = {
        b"": "not PEM certificates",
        pem.chain_pem * 3: "expected 1 to 8 certificates, found 9",
        b"not pem": "not PEM certificates|expected 1 to 8",
        pem.leaf_first_pem.split(b"-----END CERTIFICATE-----")[0]: "not PEM",
        _pem(pem.leaf): "exactly one self-signed CA certificate",
        pem.chain_pem + other_pki.ca_pem: "exactly one self-signed",
        pem.chain_pem + _pem(other_pki.leaf): "more than one non-CA certificate",
        _pem(pem.root) + _pem(pem.leaf): "issuer of .* is not in the chain",
        _pem(other_pki.root) + _pem(pem.intermediate) + _pem(pem.leaf): "not in the chain",
    }
    impostor = make_pki(tmp_path / "impostor", names_of=pem.authority())
    cases[_pem(impostor.root) + _pem(pem.intermediate) + _pem(pem.leaf)] = "is not signed by"
    code_signer, _ = pem.issue("code signer", eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    cases[pem.ca_pem + _pem(code_signer)] = "not a time-stamping certificate"
    for data, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            TimestampAuthority.from_pem(data)


def _pem(cert: object) -> bytes:
    return cert.public_bytes(Encoding.PEM)  # type: ignore[attr-defined,no-any-return]


def test_verify_needs_configured_authorities(token: TimestampToken) -> None:
    with pytest.raises(TimestampError, match="no time-stamping authority is configured"):
        verify_timestamp(token, SIGNATURE, [])


def test_verify_takes_der_bytes(token: TimestampToken, openssl_tsa: RunningTsa) -> None:
    stamp = verify_timestamp(token.der, SIGNATURE, [openssl_tsa.authority])
    assert isinstance(stamp, VerifiedTimestamp)
    assert stamp.time == token.claimed_time
    assert stamp.policy == "1.3.6.1.4.1.99999.1"
    with pytest.raises(FormatError):
        verify_timestamp(b"garbage", SIGNATURE, [openssl_tsa.authority])


def test_pinned_leaf_must_be_the_signer(
    token: TimestampToken, openssl_pki: Pki, tmp_path: Path
) -> None:
    """With the TSA certificate pinned, another certificate of the same CA is not accepted."""
    sibling, _ = openssl_pki.issue("sibling TSA", eku=[ExtendedKeyUsageOID.TIME_STAMPING])
    assert openssl_pki.intermediate is not None
    pinned_sibling = TimestampAuthority(openssl_pki.root, (openssl_pki.intermediate,), sibling)
    with pytest.raises(TimestampError, match="no configured time-stamping authority issued"):
        verify_timestamp(token, SIGNATURE, [pinned_sibling])


# -- the time rule ----------------------------------------------------------------------------


def _stamp_at(
    token: TimestampToken, openssl_tsa: RunningTsa, **changes: object
) -> VerifiedTimestamp:
    return replace(verify_timestamp(token, SIGNATURE, [openssl_tsa.authority]), **changes)  # type: ignore[arg-type]


def test_rule_window_and_leeway(token: TimestampToken, openssl_tsa: RunningTsa) -> None:
    t = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    stamp = _stamp_at(token, openssl_tsa, time=t, accuracy=timedelta(seconds=1))
    minute = timedelta(seconds=60)
    check_signed_while_valid(stamp, issued_at=t - minute, expires_at=t + minute)
    # ``time + accuracy`` may reach ``exp + leeway`` but not pass it.
    check_signed_while_valid(
        stamp, issued_at=t - minute, expires_at=t - minute + timedelta(seconds=1)
    )
    with pytest.raises(ExpiredError, match="signed after the ID token expired") as info:
        check_signed_while_valid(stamp, issued_at=t - 2 * minute, expires_at=t - minute)
    assert info.value.found == (t + timedelta(seconds=1)).isoformat()
    check_signed_while_valid(
        stamp, issued_at=t - 2 * minute, expires_at=t - minute, leeway=2 * minute
    )
    second = timedelta(seconds=1)
    check_signed_while_valid(stamp, issued_at=t, expires_at=t + second, leeway=timedelta(0))
    with pytest.raises(ExpiredError, match="signed after"):
        check_signed_while_valid(stamp, issued_at=t, expires_at=t, leeway=timedelta(0))
    with pytest.raises(ExpiredError, match="predates the ID token"):
        check_signed_while_valid(stamp, issued_at=t + 2 * minute, expires_at=t + 5 * minute)


def test_rule_without_accuracy_and_misuse(token: TimestampToken, openssl_tsa: RunningTsa) -> None:
    t = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    stamp = _stamp_at(token, openssl_tsa, time=t, accuracy=None)
    assert stamp.latest == stamp.earliest == t
    check_signed_while_valid(stamp, issued_at=t, expires_at=t, leeway=timedelta(0))
    with pytest.raises(ValueError, match="timezone-aware"):
        check_signed_while_valid(stamp, issued_at=t.replace(tzinfo=None), expires_at=t)
    with pytest.raises(ValueError, match="negative"):
        check_signed_while_valid(stamp, issued_at=t, expires_at=t, leeway=timedelta(seconds=-1))
