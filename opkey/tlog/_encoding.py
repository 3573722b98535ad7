"""Strict decoders for the encodings logs use: padded standard base64, hex, JSON integers.

Logs speak RFC 4648 §4 base64 *with* padding (signed notes, Rekor's bodies and signatures),
lowercase hex (Rekor v1's hashes and log IDs) and 64-bit integers that protobuf JSON may write
as strings. Each value has exactly one accepted spelling, for the reason ``opkey.jose`` gives
for base64url: what was verified must be what is stored.
"""

from __future__ import annotations

import binascii
import re
import sys

from opkey.errors import FormatError

__all__ = ["b64std_decode", "b64std_encode", "check_bytes", "check_uint", "hex_decode", "json_uint"]

_STRICT = sys.version_info >= (3, 11)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64STD = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


def b64std_encode(data: bytes) -> str:
    """Padded standard base64."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64std_decode(text: object, *, what: str, max_length: int) -> bytes:
    """Decode canonical padded standard base64 of at most ``max_length`` characters."""
    if not isinstance(text, str):
        raise FormatError(f"{what}: expected a base64 string, found {type(text).__name__}")
    if len(text) > max_length:
        raise FormatError(
            f"{what}: {len(text)} characters is more than the {max_length} allowed",
            expected=max_length,
            found=len(text),
        )
    if _STRICT:
        # Python 3.11+: the alphabet, the padding and its place are checked while decoding;
        # what is left is the spare bits before the padding, which must be zero.
        try:
            raw = binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            raise FormatError(f"{what}: not padded standard base64") from None
        if len(text) % 4:  # strict mode lets some short groups with padding through
            raise FormatError(f"{what}: not padded standard base64")
        if text.endswith("=") and _ALPHABET.index(text[-3 if text.endswith("==") else -2]) & (
            0x0F if text.endswith("==") else 0x03
        ):
            raise FormatError(f"{what}: non-canonical base64 (non-zero trailing bits)")
        return raw
    # Python 3.10: decoding leniently and requiring the canonical encoding of the result to be
    # the text accepts exactly the canonical padded spellings.
    try:
        raw = binascii.a2b_base64(text)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what}: not padded standard base64") from None
    if binascii.b2a_base64(raw, newline=False).decode("ascii") != text:
        if _B64STD.fullmatch(text) is None:
            raise FormatError(f"{what}: not padded standard base64")
        raise FormatError(f"{what}: non-canonical base64 (non-zero trailing bits)")
    return raw


def hex_decode(text: object, *, what: str, length: int | None = None) -> bytes:
    """Decode lowercase hex; with ``length``, exactly that many bytes."""
    if not isinstance(text, str):
        raise FormatError(f"{what}: expected a hex string, found {type(text).__name__}")
    if length is not None and len(text) != 2 * length:
        raise FormatError(
            f"{what}: expected {2 * length} hex digits, found {len(text)}",
            expected=2 * length,
            found=len(text),
        )
    if _HEX.fullmatch(text) is None:
        raise FormatError(f"{what}: not lowercase hex")
    return bytes.fromhex(text)


def json_uint(value: object, *, what: str, maximum: int = 2**63 - 1) -> int:
    """A non-negative integer from JSON: a number, or protobuf JSON's decimal string form."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise FormatError(f"{what}: expected a non-negative integer, found {value!r:.40}")
    if not 0 <= number <= maximum:
        raise FormatError(f"{what}: {number} is outside 0..{maximum}", found=number)
    return number


def check_bytes(value: object, what: str, *, length: int | None = None) -> bytes:
    """``value`` if it is non-empty ``bytes`` (of exactly ``length``, when given)."""
    if not isinstance(value, bytes) or not value:
        raise FormatError(f"{what}: expected non-empty bytes, found {type(value).__name__}")
    if length is not None and len(value) != length:
        raise FormatError(
            f"{what}: expected {length} bytes, found {len(value)}",
            expected=length,
            found=len(value),
        )
    return value


def check_uint(value: object, what: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) within ``minimum..maximum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"{what}: expected an integer, found {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise FormatError(f"{what}: {value} is outside {minimum}..{maximum}", found=value)
    return value
