"""Client instance claims (CIC) and the commitment that binds them into an ID token.

The CIC is the protected header of the ephemeral key's signature inside a PK token::

    {"alg": "ES256", "rz": "<64 lowercase hex>", "typ": "CIC",
     "upk": {"alg": "ES256", "crv": "P-256", "kty": "EC", "x": "…", "y": "…"}}

plus optional extra string claims. Its commitment is
``base64url(SHA3-256(go_json(header)))``: the identity provider signs that value (as ``nonce``,
``aud`` or the GQ ``cic`` member), which is what ties the ephemeral key to the identity.
``rz`` is 32 fresh random bytes so that the commitment reveals nothing about the key.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from opkey.errors import FormatError
from opkey.jose import go_json, sha3_b64url_once
from opkey.keys import USER_ALGORITHMS, PublicJWK

__all__ = ["RESERVED_CLAIMS", "ClientInstanceClaims"]

#: CIC header names that extra claims may not use.
RESERVED_CLAIMS = frozenset({"alg", "upk", "rz", "typ"})
_RZ = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ClientInstanceClaims:
    """The validated CIC protected header of a PK token."""

    alg: str
    upk: PublicJWK
    rz: str
    extra: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    _commitment: str | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.alg not in USER_ALGORITHMS:
            raise FormatError(
                f"CIC alg {self.alg!r} is not one of {sorted(USER_ALGORITHMS)}", found=self.alg
            )
        if self.upk.alg != self.alg:
            raise FormatError(
                f"CIC alg {self.alg!r} differs from upk alg {self.upk.alg!r}",
                expected=self.alg,
                found=self.upk.alg,
            )
        if not self.upk.allows(self.alg):
            raise FormatError(f"CIC upk key type {self.upk.kty} cannot sign {self.alg}")
        if _RZ.fullmatch(str(self.rz)) is None:
            raise FormatError("CIC rz must be 64 lowercase hex characters (32 random bytes)")
        for name, value in self.extra.items():
            if name in RESERVED_CLAIMS:
                raise FormatError(f"CIC extra claim {name!r} uses a reserved name")
            if not isinstance(value, str):
                raise FormatError(f"CIC extra claim {name!r} must have a string value")

    @classmethod
    def create(
        cls, upk: PublicJWK, *, extra: Mapping[str, str] | None = None, rz: bytes | None = None
    ) -> ClientInstanceClaims:
        """New claims for ``upk`` with fresh ``rz`` (or the given 32 bytes, for tests)."""
        if upk.alg is None:
            raise ValueError("upk must declare its alg")
        if rz is None:
            rz = secrets.token_bytes(32)
        if len(rz) != 32:
            raise ValueError("rz must be 32 bytes")
        return cls(alg=upk.alg, upk=upk, rz=rz.hex(), extra=MappingProxyType(dict(extra or {})))

    @classmethod
    def from_header(cls, header: Mapping[str, Any]) -> ClientInstanceClaims:
        """Validate a decoded CIC protected header."""
        if header.get("typ") != "CIC":
            raise FormatError(f"CIC header typ must be 'CIC', found {header.get('typ')!r}")
        for name in ("alg", "upk", "rz"):
            if name not in header:
                raise FormatError(f"CIC header is missing {name!r}")
        alg = header["alg"]
        if not isinstance(alg, str):
            raise FormatError("CIC alg must be a string")
        upk = PublicJWK.from_dict(header["upk"], what="CIC upk")
        extra = {k: v for k, v in header.items() if k not in RESERVED_CLAIMS}
        return cls(alg=alg, upk=upk, rz=header["rz"], extra=MappingProxyType(extra))

    def header(self) -> dict[str, Any]:
        """The protected header members, as hashed for the commitment and signed by the CIC."""
        result: dict[str, Any] = dict(self.extra)
        result.update(alg=self.alg, rz=self.rz, typ="CIC", upk=self.upk.to_dict())
        return result

    def header_bytes(self) -> bytes:
        """The protected header JSON (Go-style: sorted keys, compact)."""
        return go_json(self.header())

    def commitment(self) -> str:
        """``base64url(SHA3-256(go_json(header)))``, exactly as OpenPubkey computes it.

        Computed once: the claims are immutable.
        """
        return sha3_b64url_once(self, "_commitment", self.header_bytes)
