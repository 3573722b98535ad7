"""What verification establishes about a signature: who made it, and how that was proven."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["VerifiedIdentity", "VerifiedMessage"]


@dataclass(frozen=True)
class VerifiedIdentity:
    """Who signed, as established by verification, and how."""

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

    def describe(self) -> str:
        """A one-line human summary."""
        return f"{self.subject} (issuer {self.issuer})"


@dataclass(frozen=True)
class VerifiedMessage:
    """A signed message that verified: who signed it, and the content they signed."""

    identity: VerifiedIdentity
    content: bytes
