"""The one error hierarchy of opkey.

Every failure that opkey reports is an :class:`OpkeyError`, so callers can catch one type and
know that nothing else escapes for bad input. Misuse of the API by the caller (a naive
``datetime``, a wrong argument type) raises ``ValueError``/``TypeError`` as usual::

    OpkeyError
    ├── FormatError             malformed input, rejected before any cryptography runs
    │   └── AdmissionReviewError  a Kubernetes AdmissionReview the gate cannot read
    ├── ConfigError             invalid configuration: policy files, verifier settings, options
    ├── VerificationError       input well-formed but not acceptable
    │   ├── SignatureError      a signature does not verify, or its algorithm is not allowed
    │   ├── KeyNotFoundError    no trusted key for the token (unknown kid / jkt, wrong issuer)
    │   ├── CommitmentError     the ephemeral key is not the one committed in the ID token
    │   ├── ExpiredError        outside the validity window the expiry policy allows
    │   ├── PolicyError         verified, but the signer is not who the policy requires
    │   ├── ForeignSignatureError   a signature opkey does not make (cosign's own): not counted
    │   ├── TimestampError      a timestamp token proves no time for this signature
    │   │   └── UntrustedTimestampError   signed by no authority the verifier configured
    │   └── TransparencyLogError  a log's proof, checkpoint or entry timestamp does not hold
    ├── ProviderError           an identity provider refused or misbehaved
    ├── TimestampAuthorityError a time-stamping authority refused or answered something unusable
    ├── LogServiceError         a transparency log refused an entry or answered something unusable
    ├── NetworkError            transport failure: unreachable, timeout, bad status, too large
    │   ├── ResponseTooLargeError   the answer exceeds its size limit (never worth retrying)
    │   └── DeadlineError       the whole operation's time budget ran out (not worth a retry)
    └── RegistryError           an OCI registry refused or returned something unusable

Errors say what was expected and what was found; ``expected``/``found`` carry the same
information for programs.
"""

from __future__ import annotations

__all__ = [
    "AdmissionReviewError",
    "CommitmentError",
    "ConfigError",
    "DeadlineError",
    "ExpiredError",
    "ForeignSignatureError",
    "FormatError",
    "KeyNotFoundError",
    "LogServiceError",
    "NetworkError",
    "OpkeyError",
    "PolicyError",
    "ProviderError",
    "RegistryError",
    "ResponseTooLargeError",
    "SignatureError",
    "TimestampAuthorityError",
    "TimestampError",
    "TransparencyLogError",
    "UntrustedTimestampError",
    "VerificationError",
]


class OpkeyError(Exception):
    """Root of every error opkey raises for bad input or a failed check."""

    def __init__(self, message: str, *, expected: object = None, found: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected
        self.found = found

    def __str__(self) -> str:
        return self.message


class FormatError(OpkeyError):
    """Input is malformed: bad base64, bad JSON, wrong types, too large or too deep."""


class AdmissionReviewError(FormatError):
    """A Kubernetes ``AdmissionReview`` is malformed, too large, of an unsupported version, or
    holds an object whose images cannot be read.

    ``uid`` is the request's ``uid`` when it could be read: a gate then answers that request
    with a denial naming the problem instead of failing the HTTP call, so the user sees why.
    """

    def __init__(
        self,
        message: str,
        *,
        uid: str | None = None,
        expected: object = None,
        found: object = None,
    ) -> None:
        super().__init__(message, expected=expected, found=found)
        self.uid = uid


class ConfigError(OpkeyError):
    """A configuration value (policy file, verifier option, CLI argument) is invalid."""


class VerificationError(OpkeyError):
    """Well-formed input that must not be accepted."""


class SignatureError(VerificationError):
    """A signature is invalid, or made with an algorithm the verifier does not allow."""


class KeyNotFoundError(VerificationError):
    """No trusted key matches the token (unknown ``kid``/``jkt``, or an untrusted issuer)."""


class CommitmentError(VerificationError):
    """The ID token does not commit to the client instance claims presented with it."""


class ExpiredError(VerificationError):
    """The token is outside the validity window allowed by the expiry policy."""


class PolicyError(VerificationError):
    """The signature is valid but the signer's identity does not satisfy the policy."""


class ForeignSignatureError(VerificationError):
    """A signature of a kind opkey does not make, such as cosign's own key-signed layers.

    Verdicts report such signatures as ignored: they neither count for a requirement nor make
    verification fail.
    """


class TimestampError(VerificationError):
    """A timestamp token does not prove when this signature existed.

    It stamps other data, is not signed by a time-stamping certificate of an authority the
    verifier configured, or names a time outside that certificate's validity.
    """


class TransparencyLogError(VerificationError):
    """A transparency log's evidence fails: an inclusion or consistency proof, a checkpoint's
    signature or origin, a signed entry timestamp, or an entry from another log.

    Malformed log data (bad base64, a 31-byte hash, an oversized note) is a
    :class:`FormatError` instead, raised before any hashing or signature check.
    """


class UntrustedTimestampError(TimestampError):
    """A timestamp token is signed by no time-stamping authority the verifier configured.

    A distinct type because such a token is not evidence either way: a signer may ask several
    authorities, and a verifier that trusts only some of them skips the others' tokens. A token
    that names a configured authority but does not verify is a plain :class:`TimestampError`.
    """


class ProviderError(OpkeyError):
    """An identity provider refused a request or answered something unusable."""


class TimestampAuthorityError(OpkeyError):
    """A time-stamping authority refused a request or answered something unusable.

    Raised while stamping: a rejection status, an answer that is not a time-stamp response, or
    a token for another request (nonce or message imprint not echoed). Transport failures
    (unreachable, timeout, a server error) are :class:`NetworkError`.
    """


class LogServiceError(OpkeyError):
    """A transparency log (Rekor) refused an entry or answered something unusable.

    Raised while logging or monitoring: the log rejected the entry (its signature, its type),
    answered another entry than the one sent, or sent a document opkey cannot read. Transport
    failures are :class:`NetworkError`; evidence that does not verify is a
    :class:`TransparencyLogError`.
    """


class NetworkError(OpkeyError):
    """A network request failed: unreachable host, timeout, redirect, bad status, oversize."""


class ResponseTooLargeError(NetworkError):
    """The response body exceeds the caller's size limit.

    A distinct type because, unlike an unreachable host or a timeout, repeating the request
    will not help: callers that retry transport failures must not retry this one.
    """


class DeadlineError(NetworkError):
    """The deadline of a whole operation (a sign or a verify) passed before it finished.

    A distinct type because retrying within the same operation cannot help: callers that
    repeat transport failures must stop at once.
    """


class RegistryError(OpkeyError):
    """An OCI registry refused a request or returned unusable content."""
