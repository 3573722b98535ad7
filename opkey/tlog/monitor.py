"""Monitoring a transparency log for the signatures made under an identity.

The point of logging every signature is that the owner of an identity can see them all:
"identity owners will tail the log seeking to discover any signatures issued from their
identity that they are not aware of". :func:`monitor_log` does one round of that, from the
state the last round kept (:class:`MonitorState`: the last checkpoint and the compact range of
the tree it signs):

1. read the log's latest checkpoint and verify it under the pinned key and origin;
2. compare it with the kept one: a smaller tree, another root for the same size, or (Rekor v1)
   a consistency proof that fails means the log forked, shown two views of itself, and the
   round stops there with both signed checkpoints as the evidence (:class:`Fork`);
3. read every new entry, hash it into the compact range, and require the root it makes to be
   the checkpoint's: the entries read *are* the tree the log signed, and it extends the kept
   one (a tile log, Rekor v2, is checked this way only);
4. for every entry whose certificate claims a watched identity (the PK token it carries, or
   its issuer extension and names), verify the claim: the PK token under the watched issuers'
   keys, the certificate key is the PK token's, the signature verifies under it over the
   logged digest, and (Rekor v1, SET verified) the log integrated it while the ID token was
   valid. A claim that holds is a :class:`WatchedEntry` (run, workflow, time); one that does
   not is a :class:`SpoofedEntry`, listed separately with the reason.

The new state is returned, to be kept only when no fork was found. Nothing here reads a file
or a clock (the verification time is a parameter); the reader does the network.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from opkey.errors import FormatError, OpkeyError, PolicyError, TransparencyLogError
from opkey.expiry import DEFAULT_LEEWAY
from opkey.tlog.checkpoint import Checkpoint, SignedCheckpoint
from opkey.tlog.entry_timestamp import SignedEntryTimestamp
from opkey.tlog.log import TrustedLog
from opkey.tlog.merkle import CompactRange, ConsistencyProof, leaf_hash
from opkey.tlog.signature_entry import read_entry_body

if TYPE_CHECKING:
    from opkey.pktoken import PKToken
    from opkey.tlog.certificate import PKTokenCertificate
    from opkey.tlog.client import ReadEntry
    from opkey.verification.identity import VerifiedIdentity

__all__ = [
    "MONITOR_STATE_TYPE",
    "Fork",
    "IdentityVerifier",
    "LogReader",
    "MonitorReport",
    "MonitorState",
    "SpoofedEntry",
    "Watch",
    "WatchedEntry",
    "monitor_log",
    "policy_matcher",
]

MONITOR_STATE_TYPE = "application/vnd.opkey.monitor-state.v1+json"
#: Claims reported for each genuine entry, when the token has them.
_REPORTED = ("run_id", "run_attempt", "workflow_ref", "job_workflow_ref", "ref", "sha", "jti")


class LogReader(Protocol):
    """What the monitor reads (:class:`~opkey.tlog.client.RekorV1Reader`, ``TileReader``)."""

    def checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint, not yet verified."""
        ...

    def consistency(self, old_size: int, new_size: int) -> ConsistencyProof | None:
        """The log's consistency proof, or ``None`` when it serves none (tiles)."""
        ...

    def entries(self, start: int, end: int) -> Iterator[ReadEntry]:
        """The entries ``start .. end - 1``, in order."""
        ...


class IdentityVerifier(Protocol):
    """Verifies a PK token under the watched issuers (:class:`opkey.Verifier`)."""

    def identify(self, pktoken: PKToken, *, at: datetime | None = None) -> VerifiedIdentity:
        """Who the genuine PK token identifies; raises otherwise."""
        ...


@dataclass(frozen=True)
class MonitorState:
    """What a monitor keeps between rounds: the last verified checkpoint (as signed, so a
    fork can be proven later) and the compact range of the tree it signs."""

    origin: str
    log_id: bytes
    checkpoint: SignedCheckpoint
    tree: CompactRange

    def __post_init__(self) -> None:
        body = self.checkpoint.checkpoint
        if body.origin != self.origin or body.tree_size != self.tree.size:
            raise FormatError("monitor state: the checkpoint is not for the kept tree")
        if body.root_hash != self.tree.root():
            raise FormatError("monitor state: the kept tree does not have the checkpoint's root")

    def to_json(self) -> bytes:
        """The state file's content."""
        document = {
            "mediaType": MONITOR_STATE_TYPE,
            "origin": self.origin,
            "logId": self.log_id.hex(),
            "checkpoint": self.checkpoint.note.to_text(),
            "tree": {
                "size": self.tree.size,
                "hashes": [base64.b64encode(h).decode("ascii") for h in self.tree.hashes],
            },
        }
        return (json.dumps(document, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, log: TrustedLog) -> MonitorState:
        """Read a state file kept for ``log`` (another log's state is refused)."""
        from opkey.jose import parse_json_object
        from opkey.tlog._encoding import b64std_decode

        document = parse_json_object(data, what="monitor state", max_length=64 * 1024)
        if document.get("mediaType") != MONITOR_STATE_TYPE:
            raise FormatError("not an opkey monitor state file")
        if document.get("origin") != log.origin or document.get("logId") != log.log_id.hex():
            raise FormatError(
                f"the monitor state is for log {str(document.get('origin'))[:80]!r}, not the "
                f"pinned log {log.origin!r}",
                expected=log.origin,
                found=document.get("origin"),
            )
        tree = document.get("tree")
        if not isinstance(tree, dict) or not isinstance(tree.get("hashes"), list):
            raise FormatError("monitor state: 'tree' must hold 'size' and 'hashes'")
        hashes = tuple(
            b64std_decode(h, what="monitor state tree hash", max_length=44)
            for h in tree["hashes"][:64]
        )
        checkpoint = SignedCheckpoint.parse(
            str(document.get("checkpoint", "")), what="monitor state checkpoint"
        )
        # The kept checkpoint was verified when it was kept; verify again, it is evidence.
        checkpoint.verify([log.key], origin=log.origin, what="monitor state checkpoint")
        size = tree.get("size")
        if not isinstance(size, int) or isinstance(size, bool):
            raise FormatError("monitor state: 'tree.size' must be an integer")
        return cls(log.origin, log.log_id, checkpoint, CompactRange(size, hashes))


@dataclass(frozen=True)
class WatchedEntry:
    """A genuine signature under a watched identity: where it is, who made it, when."""

    index: int
    kind: str
    issuer: str
    subject: str
    integrated_time: int | None
    claims: Mapping[str, Any] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``opkey monitor --json`` reports."""
        reported = {name: _text(self.claims[name]) for name in _REPORTED if name in self.claims}
        return {**_fields(self, but="claims"), **reported}


def _fields(finding: WatchedEntry | SpoofedEntry, *, but: str = "") -> dict[str, Any]:
    """A finding's fields by name, in declaration order (all values JSON scalars): the JSON
    report names exactly what the finding holds."""
    return {f.name: getattr(finding, f.name) for f in fields(finding) if f.name != but}


def _text(value: object) -> Any:
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class SpoofedEntry:
    """An entry that claims a watched identity and does not prove it, and why."""

    index: int
    issuer: str | None
    subject: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``opkey monitor --json`` reports."""
        return _fields(self)


@dataclass(frozen=True)
class Fork:
    """Two checkpoints the log signed that cannot both be views of one append-only log."""

    kept: SignedCheckpoint
    served: SignedCheckpoint
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: both signed checkpoints, the evidence."""
        return {
            "reason": self.reason,
            "kept": self.kept.note.to_text(),
            "served": self.served.note.to_text(),
        }


@dataclass(frozen=True)
class MonitorReport:
    """One round: the checkpoint reached, what was read, and what was found."""

    checkpoint: Checkpoint
    previous_size: int
    entries_read: int
    watched: tuple[WatchedEntry, ...]
    spoofed: tuple[SpoofedEntry, ...]
    fork: Fork | None
    state: MonitorState | None

    @property
    def alarm(self) -> bool:
        """Whether the owner must act: a fork, or entries claiming the identity falsely."""
        return self.fork is not None or bool(self.spoofed)


@dataclass(frozen=True)
class Watch:
    """Whom to watch: a claim check per identity (any of them), and the PK token verifier.

    ``matches(claims)`` says whether claims name a watched identity (applied to the claims a
    certificate asserts before anything is verified, then to the verified ones).
    """

    matches: Callable[[Mapping[str, Any]], bool]
    verifier: IdentityVerifier
    at: datetime | None = None


def policy_matcher(policies: Sequence[Any]) -> Callable[[Mapping[str, Any]], bool]:
    """A matcher that accepts claims any of ``policies`` (``.check`` raising
    :class:`PolicyError` on refusal) accepts."""

    def matches(claims: Mapping[str, Any]) -> bool:
        for policy in policies:
            try:
                policy.check(claims)
            except PolicyError:
                continue
            return True
        return False

    return matches


def _claimed(certificate: PKTokenCertificate) -> dict[str, Any] | None:
    """The identity a certificate asserts, unverified: its PK token's claims, else its
    issuer extension and first name."""
    if certificate.pktoken is not None:
        return dict(certificate.pktoken.claims)
    if certificate.claimed_issuer is None and not certificate.claimed_names:
        return None
    claims: dict[str, Any] = {}
    if certificate.claimed_issuer is not None:
        claims["iss"] = certificate.claimed_issuer
    if certificate.claimed_names:
        claims["sub"] = certificate.claimed_names[0]
    return claims


def _check_entry(
    read: ReadEntry, log: TrustedLog, watch: Watch
) -> WatchedEntry | SpoofedEntry | None:
    """Classify one entry (see the module documentation); ``None`` when it claims no watched
    identity."""
    try:
        logged = read_entry_body(read.body)
        certificate = logged.read_certificate()
    except FormatError:
        return None  # another kind of entry, or no certificate opkey can read: claims nobody
    if certificate is None:
        return None
    claims = _claimed(certificate)
    if claims is None or not watch.matches(claims):
        return None
    issuer, subject = claims.get("iss"), claims.get("sub")
    issuer = issuer if isinstance(issuer, str) else None
    subject = subject if isinstance(subject, str) else None

    def spoofed(reason: str) -> SpoofedEntry:
        return SpoofedEntry(read.index, issuer, subject, reason)

    pktoken = certificate.pktoken
    if pktoken is None:
        return spoofed("the certificate names the identity but carries no PK token")
    integrated_time = None
    if read.signed_entry_timestamp is not None and read.integrated_time is not None:
        try:
            SignedEntryTimestamp(
                read.body, read.integrated_time, log.log_id, read.index, read.signed_entry_timestamp
            ).verify(log.key.public_key)
        except (TransparencyLogError, FormatError) as exc:
            return spoofed(f"the log's signed entry timestamp does not verify: {exc}")
        integrated_time = read.integrated_time
    try:
        identity = watch.verifier.identify(pktoken, at=watch.at)
    except OpkeyError as exc:
        return spoofed(f"the PK token does not verify: {exc}")
    if not watch.matches(identity.claims):
        return spoofed("the verified PK token is not a watched identity")
    if not certificate.key_is(pktoken.cic_claims.upk):
        return spoofed("the certificate's key is not the one the PK token commits to")
    public_key = certificate.public_key
    if logged.kind == "hashedrekord":
        if public_key is None:
            return spoofed("the certificate's key is not ECDSA P-256")
        try:
            public_key.verify(
                logged.signature, logged.digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
            )
        except InvalidSignature:
            return spoofed("the logged signature does not verify under the certificate's key")
    exp = identity.expires_at.timestamp()
    if integrated_time is not None and integrated_time > exp + DEFAULT_LEEWAY:
        stamp = datetime.fromtimestamp(integrated_time, timezone.utc).isoformat()
        return spoofed(
            f"logged at {stamp}, after the ID token expired: the ephemeral key was used late "
            "(leaked?)"
        )
    return WatchedEntry(
        read.index, logged.kind, identity.issuer, identity.subject, integrated_time, identity.claims
    )


def _fork(
    state: MonitorState, served: SignedCheckpoint, new: Checkpoint, reader: LogReader
) -> Fork | None:
    old = state.checkpoint.checkpoint
    if new.tree_size < old.tree_size:
        return Fork(
            state.checkpoint,
            served,
            f"the tree shrank from {old.tree_size} to {new.tree_size} entries",
        )
    if new.tree_size == old.tree_size:
        if new.root_hash != old.root_hash:
            return Fork(state.checkpoint, served, f"two roots for tree size {new.tree_size}")
        return None
    # From the empty tree nothing needs proving (RFC 9162 has no such proof); the entries read
    # next are checked against the new root anyway.
    proof = reader.consistency(old.tree_size, new.tree_size) if old.tree_size else None
    if proof is not None:
        try:
            proof.verify(old.root_hash, new.root_hash)
        except (TransparencyLogError, FormatError) as exc:
            return Fork(
                state.checkpoint,
                served,
                f"tree {new.tree_size} is not consistent with the kept tree {old.tree_size}: {exc}",
            )
    return None


def monitor_log(
    reader: LogReader,
    log: TrustedLog,
    state: MonitorState | None,
    watch: Watch,
    *,
    on_entry: Callable[[int], None] | None = None,
) -> MonitorReport:
    """One monitoring round (module documentation). Raises :class:`TransparencyLogError`
    when the served checkpoint does not verify under ``log``."""
    served = reader.checkpoint()
    new = served.verify([log.key], origin=log.origin, what="the log's checkpoint")
    previous = state.tree if state is not None else CompactRange()
    if state is not None:
        fork = _fork(state, served, new, reader)
        if fork is not None:
            return MonitorReport(new, previous.size, 0, (), (), fork, None)
    watched: list[WatchedEntry] = []
    spoofed: list[SpoofedEntry] = []
    hashes: list[bytes] = []
    expected = previous.size
    for read in _entries(reader, previous.size, new.tree_size):
        if read.index != expected:
            raise TransparencyLogError(
                f"the log served entry {read.index} where {expected} was next"
            )
        expected += 1
        hashes.append(leaf_hash(read.body))
        found = _check_entry(read, log, watch)
        if isinstance(found, WatchedEntry):
            watched.append(found)
        elif found is not None:
            spoofed.append(found)
        if on_entry is not None:
            on_entry(read.index)
    tree = previous.extend(hashes)
    if tree.root() != new.root_hash:
        kept = state.checkpoint if state is not None else served
        fork = Fork(
            kept,
            served,
            f"the {len(hashes)} entries the log served do not make the tree its checkpoint "
            f"signs (size {new.tree_size})",
        )
        return MonitorReport(new, previous.size, len(hashes), (), (), fork, None)
    kept_state = MonitorState(log.origin, log.log_id, served, tree)
    return MonitorReport(
        new, previous.size, len(hashes), tuple(watched), tuple(spoofed), None, kept_state
    )


def _entries(reader: LogReader, start: int, end: int) -> Iterable[ReadEntry]:
    if start >= end:
        return ()
    return reader.entries(start, end)
