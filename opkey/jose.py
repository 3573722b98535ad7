"""Strict JOSE encoding helpers: base64url, JSON and compact JWS splitting.

Everything that reaches the cryptography goes through these functions first, so that
malformed input is rejected as a :class:`~opkey.errors.FormatError` *before* any key lookup or
signature check (DESIGN.md §4):

* base64url must be canonical: the URL-safe alphabet, no padding, no non-zero trailing bits.
  Python's decoder accepts several encodings of the same bytes; a token that can be written two
  ways invites confusion between what was verified and what is stored.
* JSON must be UTF-8, free of duplicate member names, ``NaN``/``Infinity``, lone surrogates and
  huge integers, and within a size and nesting budget.
* Protected headers must not use ``crit``, ``b64``, ``enc``, ``zip`` or key-carrying members
  (``jwk``, ``jku``, ``x5u``, ``x5c``): keys come only from the pinned issuer's JWKS.

``go_json`` reproduces Go's ``encoding/json`` output for maps, which OpenPubkey hashes.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from opkey.errors import FormatError

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_TOKEN_LENGTH",
    "CompactJWS",
    "b64std_decode",
    "b64std_encode",
    "b64url_decode",
    "b64url_encode",
    "check_protected_header",
    "check_size",
    "freeze_json",
    "go_json",
    "parse_compact",
    "parse_json",
    "parse_json_object",
    "sha3_b64url_once",
    "thaw_json",
]

#: Largest token or document (in characters) accepted anywhere. Real ID tokens are under 4 KiB,
#: GQ-signed PK tokens under 16 KiB; 256 KiB leaves room while bounding parsing work.
MAX_TOKEN_LENGTH = 256 * 1024
#: Deepest JSON nesting accepted. ID tokens nest two or three levels.
MAX_JSON_DEPTH = 16

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_B64STD = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_STD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_STRICT_BASE64 = sys.version_info >= (3, 11)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
# Members that carry or point to keys, or change how the signature is computed.
_FORBIDDEN_HEADER_MEMBERS = ("crit", "b64", "enc", "zip", "jwk", "jku", "x5u", "x5c")


# Decoding maps the URL-safe alphabet onto the standard one and every character that must not
# appear (``+``, ``/``, ``=``) onto one the decoder skips, so such input can never re-encode to
# itself; encoding maps back.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PADDING = (b"", b"===", b"==", b"=")


def b64url_encode(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url (RFC 7515 §2)."""
    return (
        binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")
    )


def sha3_b64url_once(owner: object, slot: str, data: Callable[[], bytes]) -> str:
    """``base64url(SHA3-256(data()))``, computed on first use and kept in ``owner.slot``.

    For the identifiers of immutable (frozen, slotted) values, the CIC commitment and the
    PK token hash: they are asked for repeatedly on the verification path, so the hash is
    taken once and the stored string returned afterwards. ``data`` is only called when the
    slot is still ``None``; the slot is set with ``object.__setattr__`` because the owner is
    frozen.
    """
    value: str | None = getattr(owner, slot)
    if value is None:
        value = b64url_encode(hashlib.sha3_256(data()).digest())
        object.__setattr__(owner, slot, value)
    return value


def check_size(
    size: int,
    limit: int,
    what: str,
    *,
    unit: str = "bytes",
    error: type[FormatError] = FormatError,
) -> None:
    """Refuse ``size`` above ``limit``: every bounded input says so in the same words."""
    if size > limit:
        raise error(
            f"{what}: {size} {unit} is more than the {limit} allowed", expected=limit, found=size
        )


def b64std_encode(data: bytes) -> str:
    """Padded standard base64 (RFC 4648 §4), the spelling of logs, cosign and bundles."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64std_decode(text: object, *, what: str, max_length: int) -> bytes:
    """Decode canonical padded standard base64 of at most ``max_length`` characters.

    One spelling only (padding present, no spare bits set), for the reason base64url has
    one: what was verified must be what is stored. On Python 3.11+ the alphabet and the
    padding are checked while decoding (strict mode, plus the length and the spare bits it
    leaves unchecked), which costs a fraction of a regex over the text on the large bodies of
    log entries; on 3.10 the canonical encoding of the result must be the text.
    """
    if not isinstance(text, str):
        raise FormatError(f"{what}: expected a base64 string, found {type(text).__name__}")
    check_size(len(text), max_length, what, unit="characters")
    if _STRICT_BASE64:
        try:
            raw = binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            raise FormatError(f"{what}: not padded standard base64") from None
        if len(text) % 4:  # strict mode lets some short groups with padding through
            raise FormatError(f"{what}: not padded standard base64")
        if text.endswith("=="):
            spare = _STD_ALPHABET.index(text[-3]) & 0x0F
        elif text.endswith("="):
            spare = _STD_ALPHABET.index(text[-2]) & 0x03
        else:
            spare = 0
        if spare:
            raise FormatError(f"{what}: non-canonical base64 (non-zero trailing bits)")
        return raw
    try:
        raw = binascii.a2b_base64(text)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what}: not padded standard base64") from None
    if binascii.b2a_base64(raw, newline=False).decode("ascii") != text:
        if _B64STD.fullmatch(text) is None:
            raise FormatError(f"{what}: not padded standard base64")
        raise FormatError(f"{what}: non-canonical base64 (non-zero trailing bits)")
    return raw


def b64url_decode(text: str, *, what: str = "value") -> bytes:
    """Decode canonical unpadded base64url, rejecting every other spelling of the same bytes.

    The fast path decodes leniently and accepts only if the bytes re-encode to exactly the
    input: that single comparison rejects foreign characters, padding and non-zero trailing
    bits alike, all in C. For anything it rejects, :func:`_b64url_error` names the reason.
    """
    if not isinstance(text, str):
        raise FormatError(f"{what}: expected a base64url string, found {type(text).__name__}")
    if len(text) > MAX_TOKEN_LENGTH * 2:
        raise FormatError(f"{what}: {len(text)} characters is larger than allowed")
    if text.isascii():
        standard = text.encode("ascii").translate(_TO_STANDARD) + _PADDING[len(text) % 4]
        try:
            raw = binascii.a2b_base64(standard)
        except binascii.Error:
            pass
        else:
            if binascii.b2a_base64(raw, newline=False) == standard:
                return raw
    raise _b64url_error(text, what)


def _b64url_error(text: str, what: str) -> FormatError:
    """The :class:`FormatError` that says why ``text`` is not canonical base64url."""
    if _B64URL.fullmatch(text) is None:
        return FormatError(
            f"{what}: not unpadded base64url (only A-Z a-z 0-9 - _ are allowed, no '=' padding)"
        )
    remainder = len(text) % 4
    if remainder == 1:
        return FormatError(f"{what}: base64url length {len(text)} is impossible")
    # The unused low bits of the last character must be zero (RFC 4648 §3.5).
    unused_mask = 0b1111 if remainder == 2 else 0b11
    if remainder and _INDEX[text[-1]] & unused_mask:
        return FormatError(f"{what}: non-canonical base64url (non-zero trailing bits)")
    return FormatError(f"{what}: invalid base64url")  # pragma: no cover - covered above


def _reject_constant(name: str) -> Any:
    raise FormatError(f"JSON constant {name} is not allowed")


def _finite_float(text: str) -> float:
    # ``1e400`` is valid JSON that Python reads as ``inf``: the NaN/Infinity rule, respelled.
    value = float(text)
    if not math.isfinite(value):
        raise FormatError(f"JSON number {text[:40]} is not a finite number")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise FormatError(f"duplicate JSON member name {key!r}")
            seen.add(key)
    return result


# One decoder for every document: building one per call (what ``json.loads`` does with
# keyword arguments) costs more than decoding a small header.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_reject_constant, parse_float=_finite_float
)

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_tree(value: Any, text: str, what: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Bound the nesting depth and reject lone surrogates (``\\ud800`` escapes).

    Both walks are skipped when the text cannot contain the problem: fewer brackets than the
    depth limit, or no surrogate escape at all (valid UTF-8 text holds no surrogates itself).
    """
    deep = text.count("{") + text.count("[") > max_depth
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if not (deep or surrogates):
        return
    if not surrogates:
        _check_depth(value, what, max_depth)
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise FormatError(f"{what}: JSON nested deeper than {max_depth} levels")
        items = list(node.items()) if isinstance(node, dict) else [(None, v) for v in node]
        for key, item in items:
            if key is not None:
                _check_str(key, what)
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
            elif isinstance(item, str):
                _check_str(item, what)


def _check_depth(value: Any, what: str, max_depth: int) -> None:
    """The depth walk alone, level by level (large documents, such as admission reviews)."""
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > max_depth:
            raise FormatError(f"{what}: JSON nested deeper than {max_depth} levels")
        below: list[Any] = []
        for node in level:
            for item in node.values() if type(node) is dict else node:
                if type(item) is dict or type(item) is list:
                    below.append(item)
        level = below
        depth += 1


def _check_str(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"{what}: JSON string contains a lone surrogate") from None


def parse_json(
    data: bytes | str,
    *,
    what: str = "JSON",
    max_length: int = MAX_TOKEN_LENGTH,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Parse JSON strictly (UTF-8, no duplicates, no NaN, bounded size and depth).

    ``max_depth`` exists for documents deeper than tokens: Kubernetes objects in admission
    reviews nest 15 levels and more (``managedFields``).
    """
    if not isinstance(data, (bytes, str)):
        raise FormatError(f"{what}: expected JSON text, found {type(data).__name__}")
    check_size(len(data), max_length, what)
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{what}: not valid UTF-8") from None
    else:
        text = data
        try:
            # Text from bytes cannot hold a surrogate; a caller's str can hold a raw one.
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError(f"{what}: JSON text contains a lone surrogate") from None
    try:
        value = _DECODER.decode(text)
    except FormatError as exc:
        raise FormatError(f"{what}: {exc}") from None
    except RecursionError:
        raise FormatError(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() beyond the digit limit
        raise FormatError(f"{what}: invalid JSON ({exc})") from None
    if isinstance(value, (dict, list)):
        _check_tree(value, text, what, max_depth)
    elif isinstance(value, str) and _SURROGATE_ESCAPE.search(text):
        _check_str(value, what)
    return value


def parse_json_object(
    data: bytes | str,
    *,
    what: str = "JSON",
    max_length: int = MAX_TOKEN_LENGTH,
    max_depth: int = MAX_JSON_DEPTH,
) -> dict[str, Any]:
    """Parse strict JSON that must be an object."""
    value = parse_json(data, what=what, max_length=max_length, max_depth=max_depth)
    if not isinstance(value, dict):
        raise FormatError(f"{what}: expected a JSON object, found {type(value).__name__}")
    return value


_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


_GO_ESCAPED = re.compile("[<>&\u2028\u2029]")
_SORTED_ENCODER, _ORDERED_ENCODER = (
    json.JSONEncoder(sort_keys=sort, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for sort in (True, False)
)


def go_json(value: Any, *, sort_keys: bool = True) -> bytes:
    """Serialize like Go's ``json.Marshal`` of a map: sorted keys, compact, HTML-escaped.

    OpenPubkey hashes this encoding (commitments, PK token hash), so it must match byte for byte.
    ``sort_keys=False`` keeps the caller's key order, as Go writes *structs* (fields in
    declaration order), for OCI manifests.
    """
    try:
        text = (_SORTED_ENCODER if sort_keys else _ORDERED_ENCODER).encode(value)
    except ValueError as exc:
        raise FormatError(f"cannot encode JSON: {exc}") from None
    if _GO_ESCAPED.search(text):
        text = text.translate(_GO_ESCAPES)
    return text.encode("utf-8")


def freeze_json(value: Any) -> Any:
    """Return a read-only view of parsed JSON: objects become mappings, arrays tuples.

    Takes ownership of ``value`` (a freshly parsed document): flat objects are wrapped, not
    copied, which keeps this off the verification profile.
    """
    if isinstance(value, dict):
        for item in value.values():  # a plain loop: cheaper than any() over a generator
            if isinstance(item, (dict, list)):
                value = {
                    k: freeze_json(v) if isinstance(v, (dict, list)) else v
                    for k, v in value.items()
                }
                break
        return MappingProxyType(value)
    if isinstance(value, list):
        return tuple(freeze_json(v) for v in value)
    return value


def thaw_json(value: Any) -> Any:
    """The inverse of :func:`freeze_json`: plain dicts and lists, for serialization."""
    if isinstance(value, Mapping):
        return {k: thaw_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw_json(v) for v in value]
    return value


def check_protected_header(header: Mapping[str, Any], *, what: str) -> str:
    """Validate members every protected header must satisfy and return its ``alg``."""
    for member in _FORBIDDEN_HEADER_MEMBERS:
        if member in header:
            raise FormatError(
                f"{what}: protected header member {member!r} is not allowed",
                found=member,
            )
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise FormatError(f"{what}: protected header needs a string 'alg'", found=alg)
    for member in ("typ", "kid"):
        if member in header and not isinstance(header[member], str):
            raise FormatError(f"{what}: header {member!r} must be a string")
    return alg


@dataclass(frozen=True, slots=True)
class CompactJWS:
    """A compact JWS ``header.payload.signature`` split into verified-well-formed parts.

    ``protected_b64`` and ``payload_b64`` are kept byte-exact: they are the signing input.
    """

    protected_b64: str
    payload_b64: str
    signature_b64: str
    header: Mapping[str, Any]
    signature: bytes
    #: The payload bytes, when the parser has already decoded them (kept to decode once).
    decoded_payload: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def signing_input(self) -> bytes:
        """The bytes the signature covers: ``protected_b64 '.' payload_b64``."""
        return f"{self.protected_b64}.{self.payload_b64}".encode("ascii")

    @property
    def alg(self) -> str:
        """The protected ``alg`` (already checked to be a non-empty string)."""
        alg: str = self.header["alg"]
        return alg

    def payload(self) -> bytes:
        """The decoded payload bytes."""
        if self.decoded_payload is not None:
            return self.decoded_payload
        return b64url_decode(self.payload_b64, what="JWS payload")

    def compact(self) -> str:
        """The token as ``header.payload.signature``."""
        return f"{self.protected_b64}.{self.payload_b64}.{self.signature_b64}"


def parse_compact(token: str, *, what: str = "JWS") -> CompactJWS:
    """Split and strictly decode a compact JWS (three parts; a five-part JWE is rejected)."""
    if not isinstance(token, str):
        raise FormatError(f"{what}: expected a string, found {type(token).__name__}")
    if len(token) > MAX_TOKEN_LENGTH:
        raise FormatError(f"{what}: {len(token)} characters is larger than allowed")
    parts = token.split(".")
    if len(parts) == 5:
        raise FormatError(f"{what}: five-part token is a JWE; only signed JWS is accepted")
    if len(parts) != 3:
        raise FormatError(f"{what}: expected 3 dot-separated parts, found {len(parts)}")
    protected_b64, payload_b64, signature_b64 = parts
    header = parse_json_object(
        b64url_decode(protected_b64, what=f"{what} protected header"),
        what=f"{what} protected header",
    )
    check_protected_header(header, what=what)
    # The payload is decoded to check its encoding now; callers parse it as they need.
    payload = b64url_decode(payload_b64, what=f"{what} payload")
    signature = b64url_decode(signature_b64, what=f"{what} signature")
    return CompactJWS(
        protected_b64=protected_b64,
        payload_b64=payload_b64,
        signature_b64=signature_b64,
        header=MappingProxyType(header),
        signature=signature,
        decoded_payload=payload,
    )
