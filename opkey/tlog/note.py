"""C2SP signed notes (c2sp.org/signed-note): the envelope of every log checkpoint.

A signed note is UTF-8 text ending in a newline, a blank line, then one or more lines
``— <key name> base64(key ID || signature)``. The 4-byte key ID names the key so a verifier can
pick it among those it trusts; it is an identifier, not a security check: only the signature,
under a key the verifier was configured with, is.

Key IDs as the logs opkey speaks to compute them (:class:`NoteKey`):

* **Ed25519** (C2SP type ``0x01``; Rekor v2): ``SHA-256(name || 0x0A || 0x01 || key)[:4]``,
  the key being its 32 raw bytes;
* **ECDSA P-256** (C2SP type ``0x02``; Rekor v1 and v2): ``SHA-256(SPKI DER)[:4]``, the name
  not included; the signature is ASN.1 DER over SHA-256 of the note text;
* **Rekor v1** hashes the SPKI DER for *every* key type, Ed25519 included
  (sigstore/rekor ``pkg/util/signed_note.go``), hence :meth:`NoteKey.rekor_v1`.

The full 32-byte hash is also kept: Rekor uses it as the log's ID (:attr:`NoteKey.key_hash`).

Verification follows the spec's rules: signatures by unknown keys (name *and* ID not both
matching) are ignored, so witnesses' cosignatures and key rotation do not break a note; a
signature that claims a known key must verify, or the whole note is rejected; and at least one
known key must have signed. Parsing is strict and bounded (size, number of signatures, UTF-8,
no control characters, canonical base64) and happens before any signature check.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from opkey.errors import FormatError, TransparencyLogError
from opkey.jose import check_size
from opkey.tlog._encoding import b64std_decode, b64std_encode, check_bytes

__all__ = [
    "MAX_NOTE_LENGTH",
    "MAX_NOTE_SIGNATURES",
    "LogPublicKey",
    "NoteKey",
    "NoteSignature",
    "SignedNote",
    "load_log_public_key",
    "verify_log_signature",
]

LogPublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

#: Largest signed note accepted, in bytes of UTF-8. A Rekor checkpoint is about 250 bytes; the
#: spec asks verifiers to take 16 signatures, and post-quantum ones reach 5 kB each.
MAX_NOTE_LENGTH = 128 * 1024
#: Most signature lines accepted on one note (the spec's floor is 16).
MAX_NOTE_SIGNATURES = 32
_MAX_SIGNATURE_B64 = 8 * 1024
_EM_DASH_SPACE = "\u2014 "
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
# Unicode spaces (what Go's unicode.IsSpace and Python's str.isspace agree on), "+" and
# control characters: none may appear in a key name.
_BAD_NAME = re.compile("[\\s+\x00-\x1f]")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_ED25519_TYPE = b"\x01"


def load_log_public_key(data: bytes, *, what: str = "log public key") -> LogPublicKey:
    """Load a log's public key from PEM or DER SubjectPublicKeyInfo: ECDSA P-256 or Ed25519.

    Those are the keys Rekor v1 and v2 sign with; anything else is refused here rather than
    half-supported later.
    """
    if not isinstance(data, bytes):
        raise FormatError(f"{what}: expected bytes, found {type(data).__name__}")
    if len(data) > 16 * 1024:
        raise FormatError(f"{what}: {len(data)} bytes is too large for a public key")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{what}: not a PEM or DER public key ({exc})") from None
    return _check_key(key, what)


def _check_key(key: object, what: str) -> LogPublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise FormatError(
                f"{what}: ECDSA log keys must be on P-256, found {key.curve.name}",
                expected="secp256r1",
                found=key.curve.name,
            )
        return key
    raise FormatError(
        f"{what}: a log key is ECDSA P-256 or Ed25519, found {type(key).__name__}",
        found=type(key).__name__,
    )


def _spki(key: LogPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify_log_signature(key: LogPublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature over ``message`` as a log makes it:
    ECDSA P-256 with SHA-256, DER-encoded; or pure Ed25519."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise FormatError(f"{what}: a key name must be a non-empty string")
    if _BAD_NAME.search(name):
        raise FormatError(f"{what}: key name {name[:60]!r} holds a space, '+' or control char")
    return name


@dataclass(frozen=True, slots=True)
class NoteKey:
    """A key a verifier trusts for signed notes: its name, 4-byte ID and public key.

    Build it with :meth:`ed25519`, :meth:`ecdsa` or :meth:`rekor_v1`, which compute the key ID
    the way the signer does; ``key_hash`` is the full SHA-256 the ID is cut from.
    """

    name: str
    key_hash: bytes
    public_key: LogPublicKey = field(compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name, "note key")
        check_bytes(self.key_hash, "note key hash", length=32)
        _check_key(self.public_key, "note key")

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID signature lines carry."""
        return self.key_hash[:4]

    @property
    def algorithm(self) -> Literal["Ed25519", "ECDSA-P256-SHA256"]:
        """The signature algorithm of this key."""
        if isinstance(self.public_key, ed25519.Ed25519PublicKey):
            return "Ed25519"
        return "ECDSA-P256-SHA256"

    @classmethod
    def ed25519(cls, name: str, public_key: ed25519.Ed25519PublicKey) -> NoteKey:
        """A C2SP Ed25519 note key: ID = ``SHA-256(name || 0x0A || 0x01 || key)``."""
        _check_name(name, "note key")
        if not isinstance(public_key, ed25519.Ed25519PublicKey):
            raise FormatError("note key: an Ed25519 note key needs an Ed25519 public key")
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        digest = hashlib.sha256(name.encode() + b"\n" + _ED25519_TYPE + raw).digest()
        return cls(name, digest, public_key)

    @classmethod
    def ecdsa(cls, name: str, public_key: ec.EllipticCurvePublicKey) -> NoteKey:
        """An ECDSA P-256 note key (C2SP type ``0x02``): ID = ``SHA-256(SPKI DER)``."""
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise FormatError("note key: an ECDSA note key needs an EC public key")
        key = _check_key(public_key, "note key")
        return cls(name, hashlib.sha256(_spki(key)).digest(), key)

    @classmethod
    def c2sp(cls, name: str, public_key: LogPublicKey) -> NoteKey:
        """The C2SP key of ``public_key``'s type (:meth:`ed25519` or :meth:`ecdsa`): how
        Rekor v2 names its checkpoint key, and so its log ID."""
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            return cls.ed25519(name, public_key)
        return cls.ecdsa(name, public_key)

    @classmethod
    def rekor_v1(cls, name: str, public_key: LogPublicKey) -> NoteKey:
        """A Rekor v1 checkpoint key: ID = ``SHA-256(SPKI DER)`` whatever the key type."""
        key = _check_key(public_key, "note key")
        return cls(name, hashlib.sha256(_spki(key)).digest(), key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's signature over ``message``."""
        return verify_log_signature(self.public_key, signature, message)


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID, signature bytes."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A parsed signed note: the signed text (ending in a newline) and its signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]

    @classmethod
    def parse(cls, data: bytes | str, *, what: str = "signed note") -> SignedNote:
        """Parse a signed note strictly; raises :class:`FormatError`."""
        if isinstance(data, str):
            try:
                raw = data.encode("utf-8")
            except UnicodeEncodeError:
                raise FormatError(f"{what}: text holds a lone surrogate") from None
        elif isinstance(data, bytes):
            raw = data
        else:
            raise FormatError(f"{what}: expected text, found {type(data).__name__}")
        check_size(len(raw), MAX_NOTE_LENGTH, what)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{what}: not valid UTF-8") from None
        if _CONTROL.search(text):
            raise FormatError(f"{what}: holds a control character other than newline")
        split = text.rfind("\n\n")
        if split < 0:
            raise FormatError(f"{what}: no blank line before the signatures")
        body, block = text[: split + 1], text[split + 2 :]
        if not block.endswith("\n"):
            raise FormatError(f"{what}: the signature block must end with a newline")
        lines = block[:-1].split("\n")
        check_size(len(lines), MAX_NOTE_SIGNATURES, what, unit="signatures")
        signatures = tuple(_parse_signature_line(line, what) for line in lines)
        return cls(body, signatures)

    def to_text(self) -> str:
        """The note as it was received: parsing is canonical, so this is byte for byte the
        text it was parsed from."""
        lines = "".join(
            f"{_EM_DASH_SPACE}{line.name} {b64std_encode(line.key_id + line.signature)}\n"
            for line in self.signatures
        )
        return f"{self.text}\n{lines}"

    def verify(self, keys: Sequence[NoteKey], *, what: str = "signed note") -> tuple[NoteKey, ...]:
        """Check the signatures by ``keys``; returns the keys that signed (at least one).

        Raises :class:`TransparencyLogError` when no trusted key signed, or when a signature
        that names a trusted key (same name and ID) does not verify.
        """
        message = self.text.encode("utf-8")
        signed: list[NoteKey] = []
        for line in self.signatures:
            for key in keys:
                if key.name != line.name or key.key_id != line.key_id:
                    continue
                if not key.verify(message, line.signature):
                    raise TransparencyLogError(
                        f"{what}: the signature by {key.name} (key ID "
                        f"{key.key_id.hex()}) does not verify"
                    )
                if key not in signed:
                    signed.append(key)
        if not signed:
            names = ", ".join(f"{k.name} ({k.key_id.hex()})" for k in keys) or "no key"
            found = ", ".join(f"{s.name} ({s.key_id.hex()})" for s in self.signatures)
            raise TransparencyLogError(
                f"{what}: not signed by a trusted key: expected {names}, found {found}",
                expected=names,
                found=found,
            )
        return tuple(signed)


def _parse_signature_line(line: str, what: str) -> NoteSignature:
    if not line.startswith(_EM_DASH_SPACE):
        raise FormatError(f"{what}: a signature line must start with an em dash and a space")
    parts = line[len(_EM_DASH_SPACE) :].split(" ")
    if len(parts) != 2:
        raise FormatError(f"{what}: a signature line is '— <name> <base64>'")
    name = _check_name(parts[0], what)
    raw = b64std_decode(
        parts[1], what=f"{what}: signature by {name[:60]}", max_length=_MAX_SIGNATURE_B64
    )
    if len(raw) < 5:
        raise FormatError(f"{what}: signature by {name[:60]} is shorter than a key ID and a byte")
    return NoteSignature(name, raw[:4], raw[4:])
