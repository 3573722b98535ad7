"""Signing: an ephemeral key, the PK token that vouches for it, and signed statements.

A :class:`Signer` holds the ephemeral private key (in memory) and its PK token for as long as
the caller keeps it. Every signature is an OpenPubkey signed message (OSM) over a
domain-separated statement, so an artifact signature can never be replayed as anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from opkey.artifact import artifact_statement
from opkey.bundle import Bundle
from opkey.digest import Digest
from opkey.keys import SigningKey, generate_signing_key
from opkey.message import sign_message
from opkey.pktoken import PKToken

__all__ = ["PKTokenSource", "Signer"]


class PKTokenSource(Protocol):
    """Anything that obtains a PK token for an ephemeral key (see :mod:`opkey.providers`)."""

    def get_pktoken(self, signing_key: SigningKey) -> PKToken:
        """A PK token whose CIC commits to ``signing_key``."""
        ...


@dataclass(frozen=True)
class Signer:
    """An ephemeral key with its PK token."""

    pktoken: PKToken
    signing_key: SigningKey = field(repr=False)

    def __post_init__(self) -> None:
        if self.signing_key.public_jwk.members != self.pktoken.cic_claims.upk.members:
            raise ValueError("the PK token does not commit to this signing key")

    @classmethod
    def from_provider(cls, provider: PKTokenSource, *, alg: str = "ES256") -> Signer:
        """Generate a fresh ephemeral key and obtain its PK token from ``provider``."""
        key = generate_signing_key(alg)
        return cls(provider.get_pktoken(key), key)

    def sign(self, content: bytes) -> str:
        """An OSM over raw ``content`` (callers should sign domain-separated statements)."""
        return sign_message(content, self.pktoken, self.signing_key)

    def sign_digest(self, digest: Digest) -> Bundle:
        """A bundle signing the artifact statement for ``digest``."""
        return Bundle(self.pktoken, self.sign(artifact_statement(digest)))
