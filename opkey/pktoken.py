"""PK tokens: one ID-token payload carrying the provider's (OP), the ephemeral key's (CIC) and
optionally a cosigner's (COS) signature.

Two serializations, both OpenPubkey's:

* JSON: RFC 7515 general serialization, ``{"payload": …, "signatures": [OP, CIC, COS]}``;
* compact: ``payload:opH:opS:cicH:cicS[:cosH:cosS]`` with an optional ``.`` + refreshed ID token.

A signature's role comes only from its *protected* ``typ``: the OP signature has ``JWT``, no
``typ``, ``at+jwt`` (any case) or ``dpop+id_token``; the others ``CIC`` and ``COS`` exactly.
Exactly one OP, one CIC and at most one COS are accepted. Parsing is strict (see
:mod:`opkey.jose`) and checks the payload's claim types, but verifies nothing: that is
:func:`opkey.verify.verify_pktoken`'s job.

Parsing is a pure function of the serialized parts and a :class:`PKToken` is immutable, so the
last :data:`PARSE_CACHE_SIZE` tokens parsed are remembered: the many signatures of one CI run
carry the same PK token, and parsing it (base64url, strict JSON, loading the ephemeral key)
costs as much as one signature check. Input that fails to parse is never cached.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opkey.cic import ClientInstanceClaims
from opkey.errors import FormatError
from opkey.jose import (
    MAX_TOKEN_LENGTH,
    CompactJWS,
    b64url_decode,
    b64url_encode,
    check_protected_header,
    freeze_json,
    go_json,
    parse_compact,
    parse_json_object,
    sha3_b64url_once,
    thaw_json,
)
from opkey.keys import SigningKey

__all__ = [
    "MAX_TIME",
    "PARSE_CACHE_SIZE",
    "PKToken",
    "SignatureRole",
    "TokenSignature",
    "check_claim_types",
]

#: How many parsed PK tokens are remembered (about 10 KiB each with a GQ256 signature).
PARSE_CACHE_SIZE = 256


class SignatureRole(enum.Enum):
    """Who made a signature in a PK token."""

    OP = "OP"
    CIC = "CIC"
    COS = "COS"

    # Members are singletons compared by identity; hashing by identity too (in C) keeps the
    # role bookkeeping of every parsed token cheap. Enum's own __hash__ is Python code.
    __hash__ = object.__hash__


_ROLES = tuple(SignatureRole)  # iterating an Enum class runs Python code each time


def _role_of(header: Mapping[str, Any]) -> SignatureRole:
    typ = header.get("typ")
    if typ is None or typ in ("JWT", "dpop+id_token"):
        return SignatureRole.OP
    if isinstance(typ, str) and typ.lower() == "at+jwt":
        return SignatureRole.OP
    if typ == "CIC":
        return SignatureRole.CIC
    if typ == "COS":
        return SignatureRole.COS
    raise FormatError(f"PK token: unrecognized signature type {typ!r}", found=typ)


@dataclass(frozen=True, slots=True)
class TokenSignature:
    """One signature of a PK token, with its protected header kept byte-exact."""

    protected_b64: str
    header: Mapping[str, Any]
    signature_b64: str
    signature: bytes = field(repr=False)
    unprotected: Mapping[str, Any] | None = None

    @property
    def role(self) -> SignatureRole:
        """OP, CIC or COS, from the protected ``typ``."""
        return _role_of(self.header)

    @property
    def alg(self) -> str:
        """The protected ``alg``."""
        alg: str = self.header["alg"]
        return alg

    def compact(self, payload_b64: str) -> str:
        """This signature as a compact JWS over ``payload_b64``."""
        return f"{self.protected_b64}.{payload_b64}.{self.signature_b64}"

    def jws(self, payload_b64: str) -> CompactJWS:
        """This signature as a :class:`CompactJWS` over ``payload_b64``."""
        return CompactJWS(
            protected_b64=self.protected_b64,
            payload_b64=payload_b64,
            signature_b64=self.signature_b64,
            header=self.header,
            signature=self.signature,
        )

    @classmethod
    def parse(
        cls,
        protected_b64: Any,
        signature_b64: Any,
        unprotected: Any = None,
        *,
        what: str,
    ) -> TokenSignature:
        """Decode and validate the parts of one signature."""
        if not isinstance(protected_b64, str) or not isinstance(signature_b64, str):
            raise FormatError(f"{what}: protected header and signature must be strings")
        header = parse_json_object(
            b64url_decode(protected_b64, what=f"{what} protected header"),
            what=f"{what} protected header",
        )
        check_protected_header(header, what=what)
        if unprotected is not None and not isinstance(unprotected, dict):
            raise FormatError(f"{what}: unprotected header must be an object")
        return cls(
            protected_b64=protected_b64,
            header=freeze_json(header),
            signature_b64=signature_b64,
            signature=b64url_decode(signature_b64, what=f"{what} signature"),
            unprotected=freeze_json(unprotected) if unprotected else None,
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: Latest time claim accepted: 9999-12-31T23:59:59Z, the last second ``datetime`` can hold.
MAX_TIME = 253402300799


def _is_time(value: Any) -> bool:
    # Times outside 1970..9999 are no real token's and cannot become datetimes.
    return _is_int(value) and 0 <= value <= MAX_TIME


def check_claim_types(claims: Mapping[str, Any], *, what: str = "ID token") -> None:
    """Require the registered claims an ID token must have, with the right JSON types."""
    for name in ("iss", "sub"):
        value = claims.get(name)
        if not isinstance(value, str) or not value:
            raise FormatError(f"{what}: claim {name!r} must be a non-empty string", found=value)
    aud = claims.get("aud")
    if isinstance(aud, (list, tuple)):
        if not aud or not all(isinstance(item, str) for item in aud):
            raise FormatError(f"{what}: claim 'aud' must be a string or a list of strings")
    elif not isinstance(aud, str):
        raise FormatError(f"{what}: claim 'aud' must be a string or a list of strings", found=aud)
    for name in ("iat", "exp", "nbf"):
        if (name in claims or name != "nbf") and not _is_time(claims.get(name)):
            raise FormatError(
                f"{what}: claim {name!r} must be an integer time in 0..{MAX_TIME}, "
                f"found {claims.get(name)!r}"[:300]
            )
    if "nonce" in claims and not isinstance(claims["nonce"], str):
        raise FormatError(f"{what}: claim 'nonce' must be a string")


@dataclass(frozen=True, slots=True)
class PKToken:
    """A parsed, well-formed (not yet verified) PK token."""

    payload_b64: str
    claims: Mapping[str, Any]
    op: TokenSignature
    cic: TokenSignature
    cos: TokenSignature | None = None
    fresh_id_token: str | None = None
    cic_claims: ClientInstanceClaims = field(init=False, compare=False, repr=False)
    # hash() is asked for by the verifier's cache, the verification and every message check.
    _hash: str | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op.role is not SignatureRole.OP:
            raise FormatError("PK token: the OP signature has a non-OP typ")
        if self.cic.role is not SignatureRole.CIC:
            raise FormatError("PK token: the CIC signature has a non-CIC typ")
        if self.cos is not None and self.cos.role is not SignatureRole.COS:
            raise FormatError("PK token: the COS signature has a non-COS typ")
        if self.cic.unprotected or (self.cos is not None and self.cos.unprotected):
            raise FormatError("PK token: only the OP signature may carry an unprotected header")
        cic_claims = ClientInstanceClaims.from_header(self.cic.header)
        if self.cic.alg != cic_claims.alg:  # pragma: no cover - from_header checks it
            raise FormatError("PK token: CIC alg mismatch")
        object.__setattr__(self, "cic_claims", cic_claims)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def _assemble(
        cls,
        payload_b64: str,
        signatures: list[TokenSignature],
        fresh_id_token: str | None,
        *,
        what: str,
    ) -> PKToken:
        by_role: dict[SignatureRole, list[TokenSignature]] = {role: [] for role in _ROLES}
        for signature in signatures:
            by_role[signature.role].append(signature)
        counts = {role: len(items) for role, items in by_role.items()}
        if counts[SignatureRole.OP] != 1:
            raise FormatError(
                f"{what}: needs exactly one OP signature, found {counts[SignatureRole.OP]}"
            )
        if counts[SignatureRole.CIC] != 1:
            raise FormatError(
                f"{what}: needs exactly one CIC signature, found {counts[SignatureRole.CIC]}"
            )
        if counts[SignatureRole.COS] > 1:
            raise FormatError(
                f"{what}: at most one COS signature is allowed, found {counts[SignatureRole.COS]}"
            )
        payload = parse_json_object(
            b64url_decode(payload_b64, what=f"{what} payload"), what=f"{what} payload"
        )
        check_claim_types(payload, what=f"{what} payload")
        if fresh_id_token is not None:
            parse_compact(fresh_id_token, what=f"{what} refreshed ID token")
        return cls(
            payload_b64=payload_b64,
            claims=freeze_json(payload),
            op=by_role[SignatureRole.OP][0],
            cic=by_role[SignatureRole.CIC][0],
            cos=by_role[SignatureRole.COS][0] if by_role[SignatureRole.COS] else None,
            fresh_id_token=fresh_id_token,
        )

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any]) -> PKToken:
        """Parse the JWS JSON general serialization."""
        what = "PK token"
        document = dict(data) if isinstance(data, Mapping) else parse_json_object(data, what=what)
        unknown = set(document) - {"payload", "signatures"}
        if unknown:
            raise FormatError(f"{what}: unexpected members {sorted(unknown)}")
        payload_b64 = document.get("payload")
        raw_signatures = document.get("signatures")
        if not isinstance(payload_b64, str):
            raise FormatError(f"{what}: 'payload' must be a base64url string")
        if not isinstance(raw_signatures, list) or not raw_signatures:
            raise FormatError(f"{what}: 'signatures' must be a non-empty array")
        if len(raw_signatures) > 3:
            raise FormatError(f"{what}: {len(raw_signatures)} signatures; at most 3 are allowed")
        parts: list[str] = []
        for index, entry in enumerate(raw_signatures):
            if not isinstance(entry, dict):
                raise FormatError(f"{what}: signature {index} must be an object")
            extra = set(entry) - {"protected", "header", "signature"}
            if extra:
                raise FormatError(f"{what}: signature {index} has unexpected {sorted(extra)}")
            if "protected" not in entry or "signature" not in entry:
                raise FormatError(f"{what}: signature {index} needs 'protected' and 'signature'")
            if isinstance(entry["protected"], str) and isinstance(entry["signature"], str):
                parts += (entry["protected"], entry["signature"])
        if len(parts) == 2 * len(raw_signatures) and not any(
            "header" in entry for entry in raw_signatures
        ):
            # The usual shape: all strings, no unprotected header. Parse (or recall) by value.
            if cls is PKToken:
                return _parse_json_parts(payload_b64, tuple(parts))
            return cls._from_json_parts(payload_b64, tuple(parts))
        signatures = []
        for index, entry in enumerate(raw_signatures):
            signatures.append(
                TokenSignature.parse(
                    entry["protected"],
                    entry["signature"],
                    entry.get("header"),
                    what=f"{what} signature {index}",
                )
            )
        return cls._assemble(payload_b64, signatures, None, what=what)

    @classmethod
    def from_compact(cls, data: str | bytes) -> PKToken:
        """Parse OpenPubkey's compact form (with an optional refreshed ID token suffix)."""
        what = "compact PK token"
        if isinstance(data, bytes):
            try:
                data = data.decode("ascii")
            except UnicodeDecodeError:
                raise FormatError(f"{what}: not ASCII") from None
        if not isinstance(data, str):
            raise FormatError(f"{what}: expected a string")
        if len(data) > MAX_TOKEN_LENGTH:
            raise FormatError(f"{what}: {len(data)} characters is larger than allowed")
        return _parse_compact_text(data) if cls is PKToken else cls._from_compact_text(data)

    @classmethod
    def _from_json_parts(cls, payload_b64: str, parts: tuple[str, ...]) -> PKToken:
        """JSON serialization without unprotected headers: ``parts`` alternates protected
        headers and signatures."""
        signatures = [
            TokenSignature.parse(parts[i], parts[i + 1], what=f"PK token signature {i // 2}")
            for i in range(0, len(parts), 2)
        ]
        return cls._assemble(payload_b64, signatures, None, what="PK token")

    @classmethod
    def _from_compact_text(cls, data: str) -> PKToken:
        what = "compact PK token"
        tokens, dot, fresh = data.partition(".")
        parts = tokens.split(":")
        if len(parts) < 3 or len(parts) % 2 != 1:
            raise FormatError(f"{what}: expected payload:header:signature…, {len(parts)} parts")
        if len(parts) > 7:
            raise FormatError(f"{what}: {(len(parts) - 1) // 2} signatures; at most 3 allowed")
        signatures = [
            TokenSignature.parse(parts[i], parts[i + 1], what=f"{what} signature {i // 2}")
            for i in range(1, len(parts), 2)
        ]
        return cls._assemble(parts[0], signatures, fresh if dot else None, what=what)

    @classmethod
    def parse(cls, data: str | bytes) -> PKToken:
        """Parse either serialization: JSON when it starts with ``{``, compact otherwise."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if text.lstrip().startswith("{"):
            return cls.from_json(data)
        return cls.from_compact(text.strip())

    @classmethod
    def create(
        cls,
        id_token: str,
        cic: ClientInstanceClaims,
        signing_key: SigningKey,
    ) -> PKToken:
        """Wrap a provider-signed (or GQ-signed) compact ID token with a CIC signature."""
        if signing_key.public_jwk.members != cic.upk.members:
            raise ValueError("signing_key is not the key committed in the CIC")
        op_jws = parse_compact(id_token, what="ID token")
        protected_b64 = b64url_encode(cic.header_bytes())
        signing_input = f"{protected_b64}.{op_jws.payload_b64}".encode("ascii")
        signature = signing_key.sign(signing_input)
        cic_signature = TokenSignature.parse(
            protected_b64, b64url_encode(signature), what="CIC signature"
        )
        op_signature = TokenSignature.parse(
            op_jws.protected_b64, op_jws.signature_b64, what="ID token"
        )
        return cls._assemble(
            op_jws.payload_b64, [op_signature, cic_signature], None, what="PK token"
        )

    # -- serialization --------------------------------------------------------------------

    def signatures(self) -> tuple[TokenSignature, ...]:
        """OP, CIC and (if present) COS, in that order."""
        return (self.op, self.cic) if self.cos is None else (self.op, self.cic, self.cos)

    def to_json(self) -> bytes:
        """The general JWS JSON serialization, byte-identical to OpenPubkey's ``json.Marshal``.

        Field order follows Go's structs (``payload``, ``signatures``; ``protected``,
        ``header``, ``signature``), which is what :meth:`hash` covers.
        """
        entries = []
        for signature in self.signatures():
            header = ""
            if signature.unprotected:
                header = ',"header":' + go_json(thaw_json(signature.unprotected)).decode("utf-8")
            entries.append(
                f'{{"protected":"{signature.protected_b64}"{header},'
                f'"signature":"{signature.signature_b64}"}}'
            )
        return f'{{"payload":"{self.payload_b64}","signatures":[{",".join(entries)}]}}'.encode()

    def to_compact(self) -> str:
        """OpenPubkey's compact form."""
        parts = [self.payload_b64]
        for signature in self.signatures():
            parts += [signature.protected_b64, signature.signature_b64]
        compact = ":".join(parts)
        return f"{compact}.{self.fresh_id_token}" if self.fresh_id_token else compact

    def hash(self) -> str:
        """``base64url(SHA3-256(to_json()))``: the PK token hash an OSM names as its ``kid``.

        Computed once: the token is immutable.
        """
        return sha3_b64url_once(self, "_hash", self.to_json)

    # -- convenience ----------------------------------------------------------------------

    @property
    def payload(self) -> bytes:
        """The ID token payload bytes, exactly as the provider signed them."""
        return b64url_decode(self.payload_b64, what="PK token payload")

    @property
    def issuer(self) -> str:
        """The ``iss`` claim (unverified until the PK token is verified)."""
        iss: str = self.claims["iss"]
        return iss

    def op_token(self) -> str:
        """The OP signature as a compact JWT (the ID token, or its GQ form)."""
        return self.op.compact(self.payload_b64)

    def cic_token(self) -> str:
        """The CIC signature as a compact JWS."""
        return self.cic.compact(self.payload_b64)


# The remembered parsers (see the module doc); input that raises is not remembered.
_parse_json_parts = functools.lru_cache(maxsize=PARSE_CACHE_SIZE)(PKToken._from_json_parts)
_parse_compact_text = functools.lru_cache(maxsize=PARSE_CACHE_SIZE)(PKToken._from_compact_text)
