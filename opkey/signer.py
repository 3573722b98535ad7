"""Signing: an ephemeral key, the PK token that vouches for it, and signed statements.

A :class:`Signer` holds the ephemeral private key (in memory) and its PK token for as long as
the caller keeps it. Every signature is an OpenPubkey signed message (OSM) over a
domain-separated statement, so an artifact signature can never be replayed as anything else.

A signer may also hold :class:`~opkey.timestamp.TimestampClient` s: every signature is then
stamped by each of their authorities (RFC 3161, over the raw signature bytes) before it is
returned, and the tokens travel with it (``spec/timestamps.md``). If any authority cannot
stamp it, signing fails and nothing is returned: no signature leaves half-stamped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from opkey.artifact import artifact_statement
from opkey.bundle import Bundle
from opkey.digest import Digest
from opkey.keys import SigningKey, generate_signing_key
from opkey.message import sign_message
from opkey.pktoken import PKToken

if TYPE_CHECKING:
    from opkey.attestation import SignedAttestation
    from opkey.intoto import Statement
    from opkey.timestamp import TimestampClient, TimestampToken

__all__ = ["PKTokenSource", "Signer"]


class PKTokenSource(Protocol):
    """Anything that obtains a PK token for an ephemeral key (see :mod:`opkey.providers`)."""

    def get_pktoken(self, signing_key: SigningKey) -> PKToken:
        """A PK token whose CIC commits to ``signing_key``."""
        ...


@dataclass(frozen=True)
class Signer:
    """An ephemeral key with its PK token, and the time-stamping authorities to ask."""

    pktoken: PKToken
    signing_key: SigningKey = field(repr=False)
    timestamp_clients: Sequence[TimestampClient] = ()

    def __post_init__(self) -> None:
        if self.signing_key.public_jwk.members != self.pktoken.cic_claims.upk.members:
            raise ValueError("the PK token does not commit to this signing key")
        object.__setattr__(self, "timestamp_clients", tuple(self.timestamp_clients))

    @classmethod
    def from_provider(
        cls,
        provider: PKTokenSource,
        *,
        alg: str = "ES256",
        timestamp_clients: Sequence[TimestampClient] = (),
    ) -> Signer:
        """Generate a fresh ephemeral key and obtain its PK token from ``provider``."""
        key = generate_signing_key(alg)
        return cls(provider.get_pktoken(key), key, timestamp_clients)

    def with_timestamps(self, clients: Sequence[TimestampClient]) -> Signer:
        """The same key and PK token, stamping every signature by ``clients``."""
        return replace(self, timestamp_clients=tuple(clients))

    def stamp(self, signature: bytes) -> tuple[TimestampToken, ...]:
        """A token over the raw ``signature`` bytes from each authority, in order.

        Raises :class:`~opkey.errors.NetworkError` or
        :class:`~opkey.errors.TimestampAuthorityError` when any authority fails.
        """
        return tuple(client.stamp(signature) for client in self.timestamp_clients)

    def sign(self, content: bytes) -> str:
        """An OSM over raw ``content`` (callers should sign domain-separated statements)."""
        return sign_message(content, self.pktoken, self.signing_key)

    def sign_digest(self, digest: Digest) -> Bundle:
        """A bundle signing the artifact statement for ``digest``, stamped by every
        authority of :attr:`timestamp_clients` (over the OSM's raw signature bytes)."""
        bundle = Bundle(self.pktoken, self.sign(artifact_statement(digest)))
        if not self.timestamp_clients:
            return bundle
        tokens = self.stamp(bundle.signature_jws.signature)
        return bundle.with_timestamps([token.der for token in tokens])

    def attest(self, statement: Statement) -> SignedAttestation:
        """An attestation of ``statement``: a DSSE envelope signed by the ephemeral key over its
        PAE (DER for ECDSA, as cosign verifies), the detached OSM over the same PAE that binds
        it to the PK token, and a timestamp over the DSSE signature from every authority of
        :attr:`timestamp_clients` (``spec/attestations.md``)."""
        from opkey.attestation import SignedAttestation
        from opkey.dsse import Envelope, EnvelopeSignature, pae
        from opkey.intoto import INTOTO_PAYLOAD_TYPE

        payload = statement.to_json()
        signed = pae(INTOTO_PAYLOAD_TYPE, payload)
        signature = self.signing_key.sign_der(signed)
        header, _, osm = self.sign(signed).split(".")
        envelope = Envelope(INTOTO_PAYLOAD_TYPE, payload, (EnvelopeSignature(signature),))
        tokens = self.stamp(signature)
        return SignedAttestation(
            envelope, self.pktoken, f"{header}..{osm}", tuple(t.der for t in tokens)
        )
