"""Signing: an ephemeral key, the PK token that vouches for it, and signed statements.

A :class:`Signer` holds the ephemeral private key (in memory) and its PK token for as long as
the caller keeps it. Every signature is an OpenPubkey signed message (OSM) over a
domain-separated statement, so an artifact signature can never be replayed as anything else.

A signer may also hold :class:`~opkey.timestamp.TimestampClient` s: every signature is then
stamped by each of their authorities (RFC 3161, over the raw signature bytes) before it is
returned, and the tokens travel with it (``spec/timestamps.md``). If any authority cannot
stamp it, signing fails and nothing is returned: no signature leaves half-stamped.

A signer may also hold a transparency log client (:class:`~opkey.tlog.client.RekorClient`):
every signature is then logged, with the PK-token certificate as its verifier
(:mod:`opkey.tlog.certificate`), and the entry with its proof travels with it
(``spec/transparency-log.md``). Only GQ256 PK tokens with ES256 keys are logged (checked when
the signer is made); a log that cannot take the entry fails the signing, and nothing is
returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, Protocol

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
    from opkey.tlog.client import RekorClient
    from opkey.tlog.entry import LogEntry

__all__ = ["PKTokenSource", "Signer"]


class PKTokenSource(Protocol):
    """Anything that obtains a PK token for an ephemeral key (see :mod:`opkey.providers`)."""

    def get_pktoken(self, signing_key: SigningKey) -> PKToken:
        """A PK token whose CIC commits to ``signing_key``."""
        ...


@dataclass(frozen=True)
class Signer:
    """An ephemeral key with its PK token, the time-stamping authorities to ask, and the
    transparency log to write every signature to."""

    pktoken: PKToken
    signing_key: SigningKey = field(repr=False)
    timestamp_clients: Sequence[TimestampClient] = ()
    tlog: RekorClient | None = None
    _certificate: list[bytes] = field(init=False, repr=False, compare=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.signing_key.public_jwk.members != self.pktoken.cic_claims.upk.members:
            raise ValueError("the PK token does not commit to this signing key")
        object.__setattr__(self, "timestamp_clients", tuple(self.timestamp_clients))
        if self.tlog is not None:
            from opkey.tlog.certificate import check_publishable

            check_publishable(self.pktoken, self.signing_key)

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

    def with_tlog(self, client: RekorClient | None) -> Signer:
        """The same key and PK token, logging every signature with ``client``.

        Raises :class:`~opkey.errors.ConfigError` for a PK token that must not be published
        (not GQ256) or a key a log cannot check (not ES256).
        """
        return replace(self, tlog=client)

    def certificate(self) -> bytes:
        """The DER PK-token certificate of this key (:mod:`opkey.tlog.certificate`), made once."""
        if not self._certificate:
            from opkey.tlog.certificate import pktoken_certificate

            self._certificate.append(pktoken_certificate(self.pktoken, self.signing_key))
        return self._certificate[0]

    def log_signature(
        self,
        kind: Literal["hashedrekord", "dsse"],
        signed: bytes,
        signature: bytes,
        *,
        envelope: bytes | None = None,
        payload_type: str | None = None,
        payload: bytes | None = None,
    ) -> LogEntry:
        """Log one signature made by this key in :attr:`tlog` and return its entry.

        ``hashedrekord``: ``signed`` is exactly what the key signed, ``signature`` the DER
        signature. ``dsse``: ``envelope`` the envelope's JSON bytes, ``payload_type`` and
        ``payload`` what its one signature (``signature``, DER) signs the PAE of; ``signed``
        is ignored. Raises :class:`~opkey.errors.NetworkError`,
        :class:`~opkey.errors.LogServiceError` or :class:`~opkey.errors.ExpiredError` (the log
        integrated the entry after the ID token expired: verifiers would reject it).
        """
        from opkey.tlog.signature_entry import EntryRequest

        if self.tlog is None:
            raise ValueError("this signer has no transparency log")
        if kind == "dsse":
            if envelope is None or payload_type is None or payload is None:
                raise ValueError("a dsse entry needs the envelope, its payload type and payload")
            request = EntryRequest.dsse(
                envelope, payload_type, payload, signature, self.certificate()
            )
        else:
            request = EntryRequest.hashedrekord(signed, signature, self.certificate())
        entry = self.tlog.upload(request)
        _check_integrated_time(entry, self.pktoken)
        return entry

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
        if self.timestamp_clients:
            tokens = self.stamp(bundle.signature_jws.signature)
            bundle = bundle.with_timestamps([token.der for token in tokens])
        if self.tlog is not None:
            from opkey.tlog.signature_entry import der_signature

            jws = bundle.signature_jws
            entry = self.log_signature(
                "hashedrekord", jws.signing_input, der_signature(jws.signature)
            )
            bundle = bundle.with_tlog_entries([entry])
        return bundle

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
        entries: tuple[LogEntry, ...] = ()
        if self.tlog is not None:
            # Rekor v1: a dsse entry (the log checks the envelope); Rekor v2: a hashedrekord
            # over the PAE. Either records this signature with the PK-token certificate.
            entry = self.log_signature(
                "dsse",
                signed,
                signature,
                envelope=envelope.to_json(),
                payload_type=INTOTO_PAYLOAD_TYPE,
                payload=payload,
            )
            entries = (entry,)
        return SignedAttestation(
            envelope,
            self.pktoken,
            f"{header}..{osm}",
            tuple(t.der for t in tokens),
            tlog_entries=entries,
        )


def _check_integrated_time(entry: LogEntry, pktoken: PKToken) -> None:
    """A log time after the ID token's ``exp`` (with the default leeway) is evidence that the
    signature was made too late: refuse to hand out such an entry."""
    from opkey.errors import ExpiredError
    from opkey.expiry import DEFAULT_LEEWAY

    if entry.integrated_time is None:
        return
    exp = pktoken.claims["exp"]
    if entry.integrated_time > exp + DEFAULT_LEEWAY:
        raise ExpiredError(
            f"the transparency log integrated the signature at {entry.integrated_time}, after "
            f"the ID token expired ({exp}): verifiers would reject it; sign with a fresh token",
            expected=f"<= {exp + DEFAULT_LEEWAY}",
            found=entry.integrated_time,
        )
