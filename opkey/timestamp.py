"""RFC 3161 timestamps: an authority the verifier trusts proves a signature existed by a time.

A PK token says who holds an ephemeral key and until when the provider vouches for it (``exp``);
nothing in a signature says *when* the key made it. A time-stamping authority (TSA) closes that
gap: it signs the hash of the signature bytes together with its own clock's time, so a verifier
that trusts the authority knows the signature existed by then, and can require that to be
before the ID token expired. A key that leaks later cannot produce such a proof.

What is stamped is the **signature**, not the signed data, as cosign and sigstore do: the
message imprint is ``SHA-256(raw signature bytes)``. See ``spec/timestamps.md`` for which bytes
each opkey format stamps, the encodings and the verification steps.

This module is the pure core plus one small client:

* :class:`TimestampRequest` builds the query (imprint, random nonce, ``certReq``), and
  :func:`read_timestamp_reply` checks an authority's answer against it (status granted, nonce
  echoed, imprint unchanged); :class:`TimestampClient` posts the query through the
  :class:`~opkey.http.Transport` seam and applies both;
* :class:`TimestampToken` is what travels with a signature (the DER ``TimeStampResp``), with its
  base64 form for JSON and cosign's ``dev.sigstore.cosign/rfc3161timestamp`` annotation;
* :class:`TimestampAuthority` is one authority the verifier configured (its PEM chain), and
  :func:`verify_timestamp` proves a token against those authorities only, never against
  certificates the token brings as anchors, returning a :class:`VerifiedTimestamp`;
* :func:`check_signed_while_valid` is the time rule: the proven time lies inside the ID token's
  validity.

Nothing here reads a clock: a token is checked against the TSA certificate's validity at the time
it states, and the rule takes the ID token's times as parameters. ASN.1 and CMS are left to
``rfc3161-client`` and pyca/cryptography.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from opkey.cosign import COSIGN_TIMESTAMP_ANNOTATION
from opkey.errors import (
    ConfigError,
    ExpiredError,
    FormatError,
    NetworkError,
    TimestampAuthorityError,
    TimestampError,
    UntrustedTimestampError,
)
from opkey.jose import b64std_decode, b64std_encode, check_size, parse_json_object

if TYPE_CHECKING:
    from rfc3161_client import TimeStampResponse, Verifier

    from opkey.http import HttpResponse, Transport

__all__ = [
    "COSIGN_TIMESTAMP_ANNOTATION",
    "COSIGN_TIMESTAMP_FIELD",
    "MAX_CHAIN_CERTIFICATES",
    "MAX_TOKEN_BYTES",
    "TIMESTAMP_QUERY_MEDIA_TYPE",
    "TIMESTAMP_REPLY_MEDIA_TYPE",
    "TimestampAuthority",
    "TimestampClient",
    "TimestampRequest",
    "TimestampToken",
    "VerifiedTimestamp",
    "check_signed_while_valid",
    "cosign_annotation_der",
    "read_timestamp_reply",
    "signature_imprint",
    "verify_timestamp",
]

TIMESTAMP_QUERY_MEDIA_TYPE = "application/timestamp-query"
TIMESTAMP_REPLY_MEDIA_TYPE = "application/timestamp-reply"
#: The one member of that annotation's JSON object (cosign's ``bundle.RFC3161Timestamp``).
COSIGN_TIMESTAMP_FIELD = "SignedRFC3161Timestamp"
#: A time-stamp response with a certificate chain is a few kilobytes; this leaves ample room.
MAX_TOKEN_BYTES = 64 * 1024
#: Certificates in one configured TSA chain (root, intermediates, leaf).
MAX_CHAIN_CERTIFICATES = 8
_MAX_CHAIN_PEM_BYTES = 256 * 1024

#: Imprint hash algorithms a token may use (OID → hash name). We request SHA-256; tokens made
#: by other tools with a longer SHA-2 are as strong. SHA-1 and MD5 never prove anything.
_IMPRINT_HASHES = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_GRANTED = 0
#: What rfc3161-client and pyca/cryptography raise for malformed DER, also from parts they
#: parse lazily (a name with an unknown string type is a KeyError inside cryptography).
_PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError, OverflowError, x509.InvalidVersion)
_STATUS_NAMES = {
    0: "granted",
    1: "grantedWithMods",
    2: "rejection",
    3: "waiting",
    4: "revocationWarning",
    5: "revocationNotification",
}


def signature_imprint(signature: bytes) -> bytes:
    """The message imprint opkey requests for ``signature``: SHA-256 of its raw bytes."""
    return hashlib.sha256(signature).digest()


def _require_signature(signature: bytes) -> None:
    if not isinstance(signature, bytes | bytearray | memoryview):
        raise TypeError("the signature to stamp must be bytes")
    if not signature:
        raise ValueError("the signature to stamp is empty")


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        # 0001-01-01T00:00:00+14:00 is a datetime, but not one UTC can hold.
        raise ConfigError(f"{name} {moment.isoformat()} has no UTC time") from None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FIRST = datetime.min.replace(tzinfo=timezone.utc)
_LAST = datetime.max.replace(tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime | timedelta) -> int:
    """Microseconds since the epoch (or in a span): exact integers, so sums never overflow."""
    span = moment - _EPOCH if isinstance(moment, datetime) else moment
    return span // _MICROSECOND


def _shifted(moment: datetime, micros: int) -> datetime:
    """``moment`` moved by ``micros``, saturating at the ends of what ``datetime`` holds."""
    target = min(max(_micros(moment) + micros, _micros(_FIRST)), _micros(_LAST))
    return _EPOCH + timedelta(microseconds=target)


# -- tokens and their encodings ---------------------------------------------------------------


def _decode_response(der: bytes, *, what: str) -> TimeStampResponse:
    from rfc3161_client import decode_timestamp_response

    if not isinstance(der, bytes):
        raise TypeError(f"{what} must be bytes")
    check_size(len(der), MAX_TOKEN_BYTES, what)
    try:
        return decode_timestamp_response(der)
    except _PARSE_ERRORS as exc:
        raise FormatError(
            f"{what} is not a DER RFC 3161 time-stamp response ({_first_line(exc)})"
        ) from None


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A granted response with every part verification reads already parsed.

    rfc3161-client and cryptography parse names and certificates lazily (and rebuild a name
    on every access), so a token malformed deep inside would otherwise fail late with
    arbitrary exceptions, and verification would pay for the same parsing several times.
    """

    response: TimeStampResponse
    signers: tuple[tuple[x509.Name, int], ...]
    certificates: tuple[x509.Certificate, ...]

    @classmethod
    def of(cls, response: TimeStampResponse, *, what: str) -> _Parsed:
        try:
            info = response.tst_info
            _ = info.gen_time, info.policy, info.serial_number, info.nonce, info.accuracy
            _ = info.message_imprint.hash_algorithm, info.message_imprint.message
            signed = response.signed_data
            signers = tuple((si.issuer, si.serial_number) for si in signed.signer_infos)
            certificates = []
            for der in signed.certificates:
                cert = x509.load_der_x509_certificate(der)
                _ = cert.issuer, cert.subject, cert.serial_number
                _ = cert.not_valid_before_utc, cert.not_valid_after_utc
                certificates.append(cert)
        except _PARSE_ERRORS as exc:
            raise FormatError(
                f"{what} is not a DER RFC 3161 time-stamp response ({_first_line(exc)})"
            ) from None
        return cls(response, signers, tuple(certificates))


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _status_text(response: TimeStampResponse) -> str:
    name = _STATUS_NAMES.get(response.status, str(response.status))
    detail = "; ".join(s for s in response.status_string if s)
    return f"{name} ({detail})" if detail else name


def _b64_decode(text: str, *, what: str) -> bytes:
    return b64std_decode(text, what=what, max_length=(MAX_TOKEN_BYTES * 4) // 3 + 4)


def cosign_annotation_der(value: str) -> bytes:
    """The DER bytes in cosign's ``dev.sigstore.cosign/rfc3161timestamp`` annotation value,
    read strictly (see :meth:`TimestampToken.from_cosign_annotation`) but not parsed as a
    token: a verifier that has already verified these bytes need not parse them again."""
    document = parse_json_object(
        value, what=COSIGN_TIMESTAMP_ANNOTATION, max_length=MAX_TOKEN_BYTES * 2
    )
    if set(document) != {COSIGN_TIMESTAMP_FIELD}:
        raise FormatError(
            f"{COSIGN_TIMESTAMP_ANNOTATION} must be an object with exactly the member "
            f"{COSIGN_TIMESTAMP_FIELD!r}",
            expected=[COSIGN_TIMESTAMP_FIELD],
            found=sorted(document),
        )
    return _b64_decode(document[COSIGN_TIMESTAMP_FIELD], what="timestamp token")


@dataclass(frozen=True, slots=True)
class TimestampToken:
    """One RFC 3161 time-stamp response, as it travels with a signature.

    ``der`` is the whole DER ``TimeStampResp`` (status and the CMS-signed token), which is what
    cosign's annotation and sigstore bundles carry too. A token is parsed strictly when made and
    must have status *granted*; it proves nothing until :func:`verify_timestamp` accepts it.
    """

    der: bytes
    _parsed: _Parsed = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        what = "timestamp token"
        response = _decode_response(self.der, what=what)
        if response.status != _GRANTED:
            raise FormatError(
                f"timestamp token: the response carries no token, its status is "
                f"{_status_text(response)}",
                expected="granted",
                found=_STATUS_NAMES.get(response.status, response.status),
            )
        object.__setattr__(self, "_parsed", _Parsed.of(response, what=what))

    @classmethod
    def from_der(cls, der: bytes) -> TimestampToken:
        """Parse a DER ``TimeStampResp``."""
        return cls(bytes(der))

    @classmethod
    def from_base64(cls, text: str) -> TimestampToken:
        """Parse the standard (padded) base64 of the DER, as JSON documents carry it (a decoded
        JSON value that is not a string is a :class:`FormatError` too)."""
        return cls(_b64_decode(text, what="timestamp token"))

    @classmethod
    def from_cosign_annotation(cls, value: str) -> TimestampToken:
        """Parse cosign's ``dev.sigstore.cosign/rfc3161timestamp`` annotation value.

        cosign writes ``{"SignedRFC3161Timestamp":"<standard base64 of the DER>"}`` (Go's
        ``encoding/json`` of a struct with one ``[]byte`` field). Read strictly: exactly that
        member, canonical base64.
        """
        return cls(cosign_annotation_der(value))

    def to_base64(self) -> str:
        """Standard base64 with padding (as Go and protobuf JSON encode bytes)."""
        return b64std_encode(self.der)

    def to_cosign_annotation(self) -> str:
        """The annotation value cosign writes and reads, byte for byte."""
        return f'{{"{COSIGN_TIMESTAMP_FIELD}":"{self.to_base64()}"}}'

    @property
    def claimed_time(self) -> datetime:
        """The time the token states, *unverified*: for display, never for a decision."""
        return self._parsed.response.tst_info.gen_time.astimezone(timezone.utc)


# -- requests and the authority's answer ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimestampRequest:
    """A time-stamp query over one signature: SHA-256 imprint, random nonce, ``certReq``.

    ``certReq`` asks the authority to include its certificate, so a verifier that configured
    only the authority's root and intermediates can find the signing certificate.
    """

    der: bytes
    nonce: int
    imprint: bytes

    @classmethod
    def for_signature(cls, signature: bytes) -> TimestampRequest:
        """The query for ``signature`` (raw signature bytes; see ``spec/timestamps.md``)."""
        from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

        _require_signature(signature)
        request = (
            TimestampRequestBuilder()
            .data(bytes(signature))
            .hash_algorithm(HashAlgorithm.SHA256)
            .nonce(nonce=True)
            .cert_request(cert_request=True)
            .build()
        )
        nonce = request.nonce
        assert nonce is not None  # asked for above
        return cls(der=request.as_bytes(), nonce=nonce, imprint=request.message_imprint.message)


def read_timestamp_reply(request: TimestampRequest, der: bytes, *, url: str = "") -> TimestampToken:
    """Check an authority's DER answer to ``request`` and return the token it carries.

    The answer must parse, have status *granted*, stamp SHA-256 of exactly the requested
    imprint and echo the request's nonce (RFC 3161 §2.4.2); anything else is the authority's
    fault: :class:`TimestampAuthorityError`. This proves nothing about the authority's
    identity: that is :func:`verify_timestamp`'s job.
    """
    where = f"time-stamping authority {url}" if url else "time-stamping authority"
    what = f"the answer of the {where}"
    try:
        response = _decode_response(der, what=what)
        if response.status == _GRANTED:
            _Parsed.of(response, what=what)
    except FormatError as exc:
        raise TimestampAuthorityError(exc.message) from None
    if response.status != _GRANTED:
        raise TimestampAuthorityError(
            f"the {where} did not grant the timestamp: status {_status_text(response)}",
            expected="granted",
            found=_STATUS_NAMES.get(response.status, response.status),
        )
    info = response.tst_info
    imprint = info.message_imprint
    if imprint.hash_algorithm.dotted_string != "2.16.840.1.101.3.4.2.1" or (
        imprint.message != request.imprint
    ):
        raise TimestampAuthorityError(
            f"the {where} stamped other data: the token's imprint is "
            f"{imprint.message.hex()} ({imprint.hash_algorithm.dotted_string}), the request's "
            f"SHA-256 {request.imprint.hex()}",
            expected=request.imprint.hex(),
            found=imprint.message.hex(),
        )
    if info.nonce != request.nonce:
        raise TimestampAuthorityError(
            f"the {where} answered another request: nonce {info.nonce!r}, expected {request.nonce}",
            expected=request.nonce,
            found=info.nonce,
        )
    return TimestampToken(der)


@dataclass(frozen=True)
class TimestampClient:
    """Requests timestamps from one authority over HTTP (RFC 3161 §3.4).

    The URL must be ``https`` (plain ``http`` only on loopback, for local authorities); every
    request is bounded by ``timeout`` and the answer by ``max_bytes``; redirects are never
    followed. With ``authority`` set, each token is also verified against it before it is
    returned, so a signer never publishes a token its verifiers would reject.
    """

    url: str
    transport: Transport | None = None
    timeout: float = 10.0
    max_bytes: int = MAX_TOKEN_BYTES
    authority: TimestampAuthority | None = None

    def __post_init__(self) -> None:
        from opkey.http import check_url

        check_url(self.url, what="time-stamping authority URL", resolve=False)

    def stamp(self, signature: bytes) -> TimestampToken:
        """A token over ``signature``; :class:`NetworkError` or :class:`TimestampAuthorityError`."""
        from opkey.http import RequestsTransport, check_url

        request = TimestampRequest.for_signature(signature)
        check_url(self.url, what="time-stamping authority URL")
        transport = self.transport or RequestsTransport()
        try:
            response = transport.request(
                "POST",
                self.url,
                headers={
                    "Content-Type": TIMESTAMP_QUERY_MEDIA_TYPE,
                    "Accept": TIMESTAMP_REPLY_MEDIA_TYPE,
                },
                data=request.der,
                timeout=self.timeout,
                max_bytes=self.max_bytes,
            )
        except NetworkError as exc:
            # Same class (a too-large answer stays one), message naming the authority.
            raise type(exc)(
                f"time-stamping authority: {exc.message}", expected=exc.expected, found=exc.found
            ) from None
        _check_reply(response)
        token = read_timestamp_reply(request, response.body, url=self.url)
        if self.authority is not None:
            try:
                verify_timestamp(token, signature, [self.authority])
            except TimestampError as exc:
                raise TimestampAuthorityError(
                    f"the time-stamping authority {self.url} answered a token that does not "
                    f"verify against its configured chain: {exc.message}"
                ) from None
        return token


def _check_reply(response: HttpResponse) -> None:
    from opkey._httpjson import body_snippet, check_status

    status = response.status
    if 400 <= status < 500:
        snippet = body_snippet(response)
        raise TimestampAuthorityError(
            f"the time-stamping authority {response.url} refused the request: HTTP {status}"
            + (f": {snippet}" if snippet else ""),
            expected=200,
            found=status,
        )
    # 201: sigstore's timestamp-authority with --use-http-201.
    check_status(response, what="time-stamping authority", method="POST", accept=(200, 201))
    content_type = (response.header("Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type != TIMESTAMP_REPLY_MEDIA_TYPE:
        raise TimestampAuthorityError(
            f"the time-stamping authority {response.url} answered {content_type or 'no'} "
            f"content, not {TIMESTAMP_REPLY_MEDIA_TYPE}",
            expected=TIMESTAMP_REPLY_MEDIA_TYPE,
            found=content_type,
        )


# -- configured trust -------------------------------------------------------------------------


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _timestamping_eku_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert`` may not sign timestamps (RFC 3161 §2.3), or ``None`` if it may."""
    try:
        extension = cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE)
    except x509.ExtensionNotFound:
        return "it has no extendedKeyUsage extension"
    except ValueError as exc:  # a malformed extension
        return f"its extensions do not parse ({_first_line(exc)})"
    usages = list(extension.value)  # type: ignore[call-overload]
    if usages != [ExtendedKeyUsageOID.TIME_STAMPING]:
        names = ", ".join(u.dotted_string for u in usages) or "none"
        return f"its extendedKeyUsage is {names}, not only timeStamping (1.3.6.1.5.5.7.3.8)"
    if not extension.critical:
        return "its extendedKeyUsage timeStamping is not marked critical"
    return None


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


@dataclass(frozen=True)
class TimestampAuthority:
    """One time-stamping authority a verifier trusts: its certificate chain, as configured.

    ``root`` is the self-signed anchor, ``intermediates`` the CA certificates between it and the
    TSA's certificate, and ``leaf`` that certificate when the configuration pins it (then a
    token must be signed by exactly it); without ``leaf`` any time-stamping certificate the
    chain issued is accepted. Build it with :meth:`from_pem`, which checks the chain's links.
    """

    root: x509.Certificate
    intermediates: tuple[x509.Certificate, ...] = ()
    leaf: x509.Certificate | None = None
    _verifier: Verifier = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from rfc3161_client import VerifierBuilder

        verifier = VerifierBuilder(
            roots=[self.root],
            intermediates=list(self.intermediates),
            tsa_certificate=self.leaf,
        ).build()
        object.__setattr__(self, "_verifier", verifier)

    @classmethod
    def from_pem(
        cls, pem: bytes | str, *, what: str = "TSA certificate chain"
    ) -> TimestampAuthority:
        """Parse a PEM chain in any order (sigstore's ``certchain`` endpoint is leaf first)."""
        data = pem.encode("ascii", "replace") if isinstance(pem, str) else bytes(pem)
        if len(data) > _MAX_CHAIN_PEM_BYTES:
            raise ConfigError(f"{what}: larger than {_MAX_CHAIN_PEM_BYTES} bytes")
        try:
            certs = x509.load_pem_x509_certificates(data)
        except _PARSE_ERRORS as exc:
            raise ConfigError(f"{what}: not PEM certificates ({_first_line(exc)})") from None
        return cls.from_certificates(certs, what=what)

    @classmethod
    def from_certificates(
        cls, certs: Iterable[x509.Certificate], *, what: str = "TSA certificate chain"
    ) -> TimestampAuthority:
        """Sort certificates into root, intermediates and leaf, and check every link."""
        chain = list(certs)
        if not chain or len(chain) > MAX_CHAIN_CERTIFICATES:
            raise ConfigError(
                f"{what}: expected 1 to {MAX_CHAIN_CERTIFICATES} certificates, found {len(chain)}"
            )
        roots = [c for c in chain if _is_ca(c) and c.subject == c.issuer]
        leaves = [c for c in chain if not _is_ca(c)]
        middle = [c for c in chain if _is_ca(c) and c.subject != c.issuer]
        if len(roots) != 1:
            raise ConfigError(
                f"{what}: expected exactly one self-signed CA certificate (the root), found "
                f"{len(roots)}"
            )
        if len(leaves) > 1:
            raise ConfigError(f"{what}: more than one non-CA certificate: {len(leaves)}")
        root = roots[0]
        leaf = leaves[0] if leaves else None
        if leaf is not None:
            problem = _timestamping_eku_problem(leaf)
            if problem is not None:
                raise ConfigError(
                    f"{what}: {_subject(leaf)} is not a time-stamping certificate: {problem}"
                )
        by_subject = {c.subject: c for c in [root, *middle]}
        for cert in [*middle, *([leaf] if leaf else []), root]:
            issuer = by_subject.get(cert.issuer)
            if issuer is None:
                raise ConfigError(
                    f"{what}: the issuer of {_subject(cert)} ({cert.issuer.rfc4514_string()}) "
                    f"is not in the chain"
                )
            try:
                cert.verify_directly_issued_by(issuer)
            except (InvalidSignature, ValueError, TypeError) as exc:
                raise ConfigError(
                    f"{what}: {_subject(cert)} is not signed by {_subject(issuer)} "
                    f"({_first_line(exc) or 'bad signature'})"
                ) from None
        # Order the intermediates from the root down (as the spec lists a chain).
        ordered: list[x509.Certificate] = []
        parent = root
        remaining = list(middle)
        while remaining:
            children = [c for c in remaining if c.issuer == parent.subject]
            if len(children) != 1:
                raise ConfigError(f"{what}: the intermediates do not form one chain from the root")
            parent = children[0]
            ordered.append(parent)
            remaining.remove(parent)
        if leaf is not None and leaf.issuer != parent.subject:
            raise ConfigError(
                f"{what}: {_subject(leaf)} is not issued by the last intermediate "
                f"{_subject(parent)}"
            )
        return cls(root=root, intermediates=tuple(ordered), leaf=leaf)

    @property
    def root_sha256(self) -> str:
        """Lowercase hex SHA-256 of the root certificate's DER: the authority's identity."""
        return _fingerprint(self.root)

    def _issues(self, cert: x509.Certificate) -> bool:
        """Whether ``cert`` could be this authority's TSA certificate (selection, not proof)."""
        if self.leaf is not None:
            return cert == self.leaf
        return any(cert.issuer == ca.subject for ca in (self.root, *self.intermediates))

    def _chain(self) -> tuple[x509.Certificate, ...]:
        return (self.root, *self.intermediates)


# -- verification -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedTimestamp:
    """What a verified token proves: the signature existed at ``time`` (± ``accuracy``).

    ``authority`` is the configured authority whose chain verified it, identified by
    ``root_sha256``; ``certificate`` is the TSA certificate that signed the token and
    ``tsa_subject`` its subject (RFC 4514).
    """

    time: datetime
    accuracy: timedelta | None
    tsa_subject: str
    root_sha256: str
    certificate: x509.Certificate
    authority: TimestampAuthority
    serial_number: int
    policy: str

    @property
    def latest(self) -> datetime:
        """The latest the stamped signature can have been made: ``time`` + accuracy (at most
        the last instant ``datetime`` holds)."""
        return _shifted(self.time, _micros(self.accuracy or timedelta(0)))

    @property
    def earliest(self) -> datetime:
        """The earliest instant the token's time can stand for: ``time`` − accuracy (at
        least the first instant ``datetime`` holds)."""
        return _shifted(self.time, -_micros(self.accuracy or timedelta(0)))


def _accuracy(response: TimeStampResponse) -> timedelta | None:
    from rfc3161_client import Accuracy

    accuracy: object = response.tst_info.accuracy  # absent (None) when the TSA states none
    if not isinstance(accuracy, Accuracy):
        return None
    seconds, millis, micros = accuracy.seconds or 0, accuracy.millis or 0, accuracy.micros or 0
    try:
        return timedelta(seconds=seconds, milliseconds=millis, microseconds=micros)
    except OverflowError:
        # An INTEGER of the authority's choosing: more than a timedelta spans (2.7 million
        # years) proves no time at all.
        raise TimestampError(
            f"timestamp token states an accuracy of {seconds} s, which proves no time",
            found=seconds,
        ) from None


def _signer_certificate(
    parsed: _Parsed, authorities: Sequence[TimestampAuthority]
) -> x509.Certificate:
    """The certificate named by the token's one SignerInfo: carried in the token or pinned."""
    if len(parsed.signers) != 1:
        raise TimestampError(
            f"timestamp token: expected one signer, found {len(parsed.signers)}",
            expected=1,
            found=len(parsed.signers),
        )
    issuer, serial = parsed.signers[0]
    pinned = [a.leaf for a in authorities if a.leaf is not None]
    for cert in (*parsed.certificates, *pinned):
        if cert.serial_number == serial and cert.issuer == issuer:
            return cert
    raise TimestampError(
        f"timestamp token: its signer ({issuer.rfc4514_string()}, serial {serial:#x}) is "
        f"neither carried in the token nor a configured TSA certificate"
    )


def verify_timestamp(
    token: TimestampToken | bytes,
    signature: bytes,
    authorities: Sequence[TimestampAuthority],
) -> VerifiedTimestamp:
    """Prove that ``signature`` existed at the token's time, or raise :class:`TimestampError`.

    In order (``spec/timestamps.md``): the token stamps ``signature`` (its imprint is the hash
    of these bytes); its signer is a time-stamping certificate (critical extendedKeyUsage
    timeStamping only); that certificate belongs to one of ``authorities`` (a configured root
    and intermediates issued it, or it is the pinned leaf); the token's time lies inside the
    validity of that certificate and of its chain; and the CMS signature verifies along the
    configured chain at that time. Certificates carried in the token are only candidates for
    the signer: trust comes from ``authorities`` alone.
    """
    if not isinstance(token, TimestampToken):
        token = TimestampToken.from_der(token)
    _require_signature(signature)
    if not authorities:
        raise TimestampError("no time-stamping authority is configured to verify the token")
    parsed = token._parsed
    response = parsed.response
    info = response.tst_info

    algorithm = info.message_imprint.hash_algorithm.dotted_string
    hash_name = _IMPRINT_HASHES.get(algorithm)
    if hash_name is None:
        raise TimestampError(
            f"timestamp token: imprint hash {algorithm} is not accepted (SHA-256, SHA-384 or "
            f"SHA-512)",
            expected=sorted(_IMPRINT_HASHES.values()),
            found=algorithm,
        )
    digest = hashlib.new(hash_name, bytes(signature)).digest()
    if info.message_imprint.message != digest:
        raise TimestampError(
            f"timestamp token stamps other data, not this signature: imprint "
            f"{info.message_imprint.message.hex()}, {hash_name} of the signature {digest.hex()}",
            expected=digest.hex(),
            found=info.message_imprint.message.hex(),
        )

    cert = _signer_certificate(parsed, authorities)
    problem = _timestamping_eku_problem(cert)
    if problem is not None:
        raise TimestampError(
            f"timestamp token is signed by {_subject(cert)}, which is not a time-stamping "
            f"certificate: {problem}",
            found=_subject(cert),
        )
    candidates = [a for a in authorities if a._issues(cert)]
    if not candidates:
        raise UntrustedTimestampError(
            f"timestamp token is signed by {_subject(cert)} (issued by "
            f"{cert.issuer.rfc4514_string()}), which no configured time-stamping authority "
            f"issued",
            expected=[a.root_sha256 for a in authorities],
            found=cert.issuer.rfc4514_string(),
        )

    when = info.gen_time.astimezone(timezone.utc)
    from rfc3161_client import VerificationError as _Rfc3161Error

    failures: list[TimestampError] = []
    for authority in candidates:
        outside = _outside_validity(when, (cert, *reversed(authority._chain())))
        if outside is not None:
            failures.append(outside)
            continue
        try:
            authority._verifier.verify(response, digest)
        except (_Rfc3161Error, *_PARSE_ERRORS) as exc:
            failures.append(
                TimestampError(
                    f"timestamp token signed by {_subject(cert)} does not verify along the "
                    f"chain of the configured root {authority.root_sha256}: {_first_line(exc)}",
                    found=_subject(cert),
                )
            )
            continue
        return VerifiedTimestamp(
            time=when,
            accuracy=_accuracy(response),
            tsa_subject=_subject(cert),
            root_sha256=authority.root_sha256,
            certificate=cert,
            authority=authority,
            serial_number=info.serial_number,
            policy=info.policy.dotted_string,
        )
    if len(failures) == 1:
        raise failures[0]
    raise TimestampError(
        f"timestamp token signed by {_subject(cert)} verifies along no configured chain: "
        + "; ".join(f.message for f in failures),
        found=_subject(cert),
    )


def _outside_validity(when: datetime, chain: Iterable[x509.Certificate]) -> TimestampError | None:
    """The error for the first certificate of ``chain`` not valid at ``when``, if any."""
    for link in chain:
        start, end = link.not_valid_before_utc, link.not_valid_after_utc
        if not start <= when <= end:
            return TimestampError(
                f"timestamp token's time {when.isoformat()} lies outside the validity of "
                f"{_subject(link)} ({start.isoformat()} to {end.isoformat()})",
                expected=f"{start.isoformat()}/{end.isoformat()}",
                found=when.isoformat(),
            )
    return None


# -- the time rule ----------------------------------------------------------------------------


def check_signed_while_valid(
    stamp: VerifiedTimestamp,
    *,
    issued_at: datetime,
    expires_at: datetime,
    leeway: timedelta = timedelta(seconds=60),
) -> None:
    """Raise :class:`ExpiredError` unless the stamped signature was made while the ID token was
    valid: ``iat − leeway ≤ time + accuracy ≤ exp + leeway``.

    The token proves the signature existed by ``time`` (up to its accuracy), so the latest
    instant it stands for must not be after ``exp``: a key that leaked after the ID token
    expired cannot obtain such a proof. A proof from before ``iat`` contradicts the protocol
    (the key is committed in the ID token before it signs) and is refused too.
    """
    iat = _utc(issued_at, "issued_at")
    exp = _utc(expires_at, "expires_at")
    if leeway < timedelta(0):
        raise ValueError("leeway must not be negative")
    # Compared as integers: exp + leeway or time + accuracy may lie past the year 9999.
    latest_us = _micros(stamp.time) + _micros(stamp.accuracy or timedelta(0))
    leeway_us = _micros(leeway)
    latest = stamp.latest
    if latest_us > _micros(exp) + leeway_us:
        raise ExpiredError(
            f"signed after the ID token expired: the timestamp by {stamp.tsa_subject} proves "
            f"{stamp.time.isoformat()}"
            + (f" (± {stamp.accuracy.total_seconds():g} s)" if stamp.accuracy else "")
            + f", the ID token expired at {exp.isoformat()} (leeway {leeway.total_seconds():g} s)",
            expected=f"<= {_shifted(exp, leeway_us).isoformat()}",
            found=latest.isoformat(),
        )
    if latest_us < _micros(iat) - leeway_us:
        raise ExpiredError(
            f"the timestamp by {stamp.tsa_subject} ({stamp.time.isoformat()}) predates the ID "
            f"token, issued at {iat.isoformat()} (leeway {leeway.total_seconds():g} s)",
            expected=f">= {_shifted(iat, -leeway_us).isoformat()}",
            found=latest.isoformat(),
        )
