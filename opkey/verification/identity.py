"""What verification establishes about a signature: who made it, and how that was proven."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opkey.intoto import Statement
    from opkey.tlog.entry import VerifiedLogEntry
    from opkey.verification.signing_time import SigningTime

__all__ = ["VerifiedIdentity", "VerifiedMessage"]


@dataclass(frozen=True)
class VerifiedIdentity:
    """Who signed, as established by verification, and how.

    ``signed_at`` is the signing time an authority the verifier trusts proved for this
    signature (``spec/time.md``), or ``None`` when none did: then nothing is known about when
    the signature was made, only when the ID token was valid (``issued_at``, ``expires_at``).
    ``statement`` is, for an attestation, the in-toto statement its envelope signature covers
    (what was attested, about which subjects); ``None`` for a plain signature.
    """

    issuer: str
    subject: str
    claims: Mapping[str, Any]
    op_algorithm: str
    signature_algorithm: str
    key_thumbprint: str
    op_key_thumbprint: str
    key_source: str
    pktoken_hash: str
    issued_at: datetime
    expires_at: datetime
    signed_at: SigningTime | None = None
    statement: Statement | None = None
    log_entries: tuple[VerifiedLogEntry, ...] = ()

    def describe(self) -> str:
        """A one-line human summary."""
        return f"{self.subject} (issuer {self.issuer})"


@dataclass(frozen=True)
class VerifiedMessage:
    """A signed message that verified: who signed it, and the content they signed."""

    identity: VerifiedIdentity
    content: bytes
