"""Strict decoders for the encodings logs use: padded standard base64, hex, JSON integers.

Logs speak RFC 4648 §4 base64 *with* padding (signed notes, Rekor's bodies and signatures),
lowercase hex (Rekor v1's hashes and log IDs) and 64-bit integers that protobuf JSON may write
as strings. Each value has exactly one accepted spelling, for the reason ``opkey.jose`` gives
for base64url: what was verified must be what is stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opkey.errors import FormatError
from opkey.jose import b64std_decode, b64std_encode

__all__ = [
    "b64std_decode",
    "b64std_encode",
    "check_bytes",
    "check_uint",
    "hex_decode",
    "json_member",
    "json_object",
    "json_uint",
]

_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


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


def json_object(value: object, what: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object: every log document opkey reads is walked through this
    and :func:`json_member`, so each wrong shape is named the same way."""
    if not isinstance(value, Mapping):
        raise FormatError(f"{what}: expected a JSON object, found {type(value).__name__}")
    return value


def json_member(obj: Mapping[str, Any], name: str, what: str) -> Any:
    """The member ``name`` of a JSON object that must have it."""
    if name not in obj:
        raise FormatError(f"{what}: missing member {name!r}")
    return obj[name]


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
