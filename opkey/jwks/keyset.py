"""A provider's published keys (JWKS) as data, and lookup by ``kid`` or ``jkt``.

Parsing is pure: bytes in, :class:`KeySet` out. Keys opkey cannot use are skipped, because
real JWKS mix them with signing keys (Keycloak publishes an ``RSA-OAEP`` encryption key next to
its ``RS256`` one by default): symmetric ``oct`` keys, other curves, keys whose ``use`` is not
``sig`` or whose ``key_ops`` exclude ``verify``, and keys declaring an algorithm opkey does not
verify. Keys that are *malformed* while claiming a usable algorithm, or that carry private
members, make the whole document invalid, because a provider publishing them is broken or
compromised. Lookup is exact and never falls back to trying other
keys: a missing ``kid`` resolves only when the set holds exactly one key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from opkey.errors import FormatError, KeyNotFoundError
from opkey.jose import parse_json_object
from opkey.keys import ALL_OP_ALGORITHMS, PRIVATE_MEMBERS, PublicJWK

__all__ = ["KeyLookup", "KeySet"]

_MAX_KEYS = 100
_SKIPPED_KTY = frozenset({"oct"})


def _unusable(jwk: Mapping[str, Any]) -> bool:
    """Whether a JWKS entry is a key opkey never verifies with (skipped, not an error)."""
    kty = jwk.get("kty")
    if isinstance(kty, str) and kty in _SKIPPED_KTY:
        return True
    if kty in ("EC", "OKP") and jwk.get("crv") not in ("P-256", "Ed25519"):
        return True  # a curve opkey does not verify with: unusable, not malformed
    use = jwk.get("use")
    if isinstance(use, str) and use != "sig":
        return True  # an encryption key ("enc")
    key_ops = jwk.get("key_ops")
    if isinstance(key_ops, list) and "verify" not in key_ops:
        return True
    alg = jwk.get("alg")
    # A declared algorithm opkey does not verify (RSA-OAEP, RS384, ES512…): someone else's key.
    return isinstance(alg, str) and alg not in ALL_OP_ALGORITHMS


class KeyLookup(Protocol):
    """Finds one issuer's key by ``kid`` and/or ``jkt`` (exactly; never by trying keys)."""

    def find(self, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
        """The key named; :class:`KeyNotFoundError` if there is none or it is ambiguous."""
        ...


@dataclass(frozen=True, slots=True)
class KeySet:
    """The validated public keys of one issuer."""

    keys: tuple[PublicJWK, ...]
    _by_kid: Mapping[str, tuple[PublicJWK, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _by_jkt: Mapping[str, PublicJWK] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        by_kid: dict[str, list[PublicJWK]] = {}
        by_jkt: dict[str, PublicJWK] = {}
        for key in self.keys:
            if key.kid is not None:
                by_kid.setdefault(key.kid, []).append(key)
            by_jkt[key.thumbprint()] = key
        object.__setattr__(self, "_by_kid", {k: tuple(v) for k, v in by_kid.items()})
        object.__setattr__(self, "_by_jkt", by_jkt)

    @classmethod
    def from_json(cls, data: bytes | str, *, what: str = "JWKS") -> KeySet:
        """Parse a JWKS document (``{"keys": [...]}``)."""
        return cls.from_dict(parse_json_object(data, what=what), what=what)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any], *, what: str = "JWKS") -> KeySet:
        """Validate a decoded JWKS document."""
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise FormatError(f"{what}: expected a 'keys' array")
        if len(keys) > _MAX_KEYS:
            raise FormatError(f"{what}: {len(keys)} keys is more than the {_MAX_KEYS} allowed")
        parsed: list[PublicJWK] = []
        for index, jwk in enumerate(keys):
            if isinstance(jwk, Mapping) and _unusable(jwk):
                # Even an unusable asymmetric key must not come with its private parts (an
                # ``oct`` key is nothing but its ``k``: it is skipped like any other).
                private = PRIVATE_MEMBERS.intersection(jwk) if jwk.get("kty") != "oct" else ()
                if private:
                    raise FormatError(
                        f"{what} key {index}: contains private key members {sorted(private)}"
                    )
                continue
            parsed.append(PublicJWK.from_dict(jwk, what=f"{what} key {index}"))
        return cls(tuple(parsed))

    def __iter__(self) -> Iterator[PublicJWK]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def by_kid(self, kid: str | None) -> PublicJWK:
        """The key with exactly this ``kid``; with no ``kid``, the only key of a one-key set."""
        if kid is None:
            if len(self.keys) == 1:
                return self.keys[0]
            raise KeyNotFoundError(
                f"token has no kid and the JWKS holds {len(self.keys)} keys; refusing to guess"
            )
        matches = self._by_kid.get(kid, ())
        if len(matches) > 1:
            raise KeyNotFoundError(f"JWKS holds {len(matches)} keys with kid {kid!r}; ambiguous")
        if not matches:
            raise KeyNotFoundError(f"no key with kid {kid!r} in the JWKS", found=kid)
        return matches[0]

    def by_jkt(self, jkt: str) -> PublicJWK:
        """The key whose RFC 7638 thumbprint is ``jkt``."""
        key = self._by_jkt.get(jkt)
        if key is None:
            raise KeyNotFoundError(f"no key with thumbprint {jkt!r} in the JWKS", found=jkt)
        return key

    def find(self, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
        """Look a key up by ``kid``, then by ``jkt``; when both are given they must agree."""
        if kid is not None and kid in self._by_kid:
            key = self.by_kid(kid)
            if jkt is not None and key.thumbprint() != jkt:
                raise KeyNotFoundError(
                    f"key {kid!r} has thumbprint {key.thumbprint()!r}, token names {jkt!r}",
                    expected=jkt,
                    found=key.thumbprint(),
                )
            return key
        if jkt is not None:
            key = self.by_jkt(jkt)
            if kid is not None and key.kid is not None and key.kid != kid:
                raise KeyNotFoundError(
                    f"key with thumbprint {jkt!r} has kid {key.kid!r}, token names {kid!r}"
                )
            return key
        return self.by_kid(kid)

    def to_dict(self) -> dict[str, Any]:
        """The JWKS document of these keys."""
        return {"keys": [key.to_dict() for key in self.keys]}
