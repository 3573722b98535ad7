"""The one error hierarchy of opkey.

Every failure that opkey reports is an :class:`OpkeyError`, so callers can catch one type and
know that nothing else escapes for bad input. Misuse of the API by the caller (a naive
``datetime``, a wrong argument type) raises ``ValueError``/``TypeError`` as usual::

    OpkeyError
    ├── FormatError             malformed input, rejected before any cryptography runs
    ├── ConfigError             invalid configuration: policy files, verifier settings, options
    ├── VerificationError       input well-formed but not acceptable
    │   ├── SignatureError      a signature does not verify, or its algorithm is not allowed
    │   ├── KeyNotFoundError    no trusted key for the token (unknown kid / jkt, wrong issuer)
    │   ├── CommitmentError     the ephemeral key is not the one committed in the ID token
    │   ├── ExpiredError        outside the validity window the expiry policy allows
    │   └── PolicyError         verified, but the signer is not who the policy requires
    ├── ProviderError           an identity provider refused or misbehaved
    ├── NetworkError            transport failure: unreachable, timeout, bad status, too large
    │   └── DeadlineError       the whole operation's time budget ran out (not worth a retry)
    └── RegistryError           an OCI registry refused or returned something unusable

Errors say what was expected and what was found; ``expected``/``found`` carry the same
information for programs.
"""

from __future__ import annotations

__all__ = [
    "CommitmentError",
    "ConfigError",
    "DeadlineError",
    "ExpiredError",
    "FormatError",
    "KeyNotFoundError",
    "NetworkError",
    "OpkeyError",
    "PolicyError",
    "ProviderError",
    "RegistryError",
    "SignatureError",
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


class ProviderError(OpkeyError):
    """An identity provider refused a request or answered something unusable."""


class NetworkError(OpkeyError):
    """A network request failed: unreachable host, timeout, redirect, bad status, oversize."""


class DeadlineError(NetworkError):
    """The deadline of a whole operation (a sign or a verify) passed before it finished.

    A distinct type because retrying within the same operation cannot help: callers that
    repeat transport failures must stop at once.
    """


class RegistryError(OpkeyError):
    """An OCI registry refused a request or returned unusable content."""
