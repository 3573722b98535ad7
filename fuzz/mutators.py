"""Mutations for JOSE documents: bytes, JSON structure and base64url segments.

Random bytes almost never get past a strict parser, so most mutations here understand what
they mutate:

* **bytes**: bit flips, byte replacement, insertion of random or *interesting* bytes
  (JSON punctuation, JOSE separators, ``=``, ``+``, ``/``, NUL), deletion, duplication of a
  range, truncation;
* **JSON**: parse (leniently), pick a node, and change its type, delete or add a member (from a
  dictionary of JOSE and claim names), duplicate a member, nest it deeper, swap two values,
  or put an awkward string or number in; then write it back in a random style (compact,
  spaced, sorted, ASCII-escaped), possibly with duplicate members;
* **base64url segments**: find a segment (``[A-Za-z0-9_-]{8,}``), decode it, mutate the decoded
  bytes (as JSON when they are JSON: this is how a mutation reaches a protected header or the
  ``upk`` inside one), and re-encode it canonically or in a non-canonical spelling;
* **tokens**: reorder, drop or duplicate the ``:``/``.`` separated parts of a compact token;
* **splicing**: the head of one corpus item with the tail of another, or a segment of one put
  into another.

Every function takes a :class:`random.Random` so that a seed reproduces a mutation.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import random
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["mutate", "mutate_json", "mutate_segment", "mutate_toml", "splice"]

INTERESTING_BYTES = b'\x00\xff"{}[]:,.=\\+/-_ \n\t\x7f'
INTERESTING_TOKENS = [
    b"null", b"true", b"false", b"0", b"-1", b"1e400", b"-0", b"1.5", b"NaN", b"Infinity",
    b'"\\ud800"', b'"\\u0000"', b"{}", b"[]", b'""', b'"a":1,', b"9" * 40, b"..", b"::",
    b"==", b"%2e", "\u0430".encode(), b"\xc0\xaf", b"\xed\xa0\x80", b"\xef\xbb\xbf",
]  # fmt: skip
NAMES = [
    "alg", "kid", "typ", "jwk", "jku", "x5u", "x5c", "x5t", "crit", "b64", "enc", "zip", "cic",
    "jkt", "upk", "rz", "kty", "crv", "x", "y", "n", "e", "d", "use", "key_ops", "header",
    "payload", "signatures", "protected", "signature", "iss", "aud", "sub", "exp", "iat", "nbf",
    "nonce", "mediaType", "pktoken", "keys", "issuer", "jwks_uri", "digest", "type",
    "repository_id", "email_verified", "version", "signers", "issuers", "name", "claim",
    "equals", "all_of", "any_of", "github", "unsafe_no_policy", "commitment", "require_gq",
]  # fmt: skip
STRINGS = [
    "", "none", "HS256", "RS256", "rs256", "RS256 ", "GQ256", "ES256", "EdDSA", "JWT", "CIC",
    "COS", "osm", "at+jwt", "dpop+id_token", "RSA", "EC", "OKP", "oct", "P-256", "Ed25519",
    "../../etc/passwd", "' OR 1=1 --", "\u0430", "\u200b", "\ud800", "A" * 300, "sha256:",
    "https://evil.example", "http://127.0.0.1/", "https://169.254.169.254/", "OPENPUBKEY-PKTOKEN:",
    "application/vnd.opkey.bundle.v1+json", "opkey artifact signature v1",
]  # fmt: skip
NUMBERS: list[Any] = [0, -1, 1, 2**31, 2**63, 10**30, 253402300799, 253402300800, 1.5, 1e308, True]
_SEGMENT = re.compile(rb"[A-Za-z0-9_-]{8,}")


class _Raw(str):
    """A number written exactly as spelled: spellings ``json.dumps`` never produces."""


RAW_NUMBERS = [_Raw(t) for t in ("1e400", "-1e400", "1E999", "-0.0", "1.0e-400", "0e0", "9" * 30)]


_Mutator = Callable[[bytes, random.Random], "bytes | None"]


def _safe(mutator: _Mutator) -> _Mutator:
    """A structural mutator that gives up (``None``: mutate the bytes instead) on structures it
    cannot handle, such as documents nested deeper than the recursion limit."""

    @functools.wraps(mutator)
    def guarded(data: bytes, rng: random.Random) -> bytes | None:
        try:
            return mutator(data, rng)
        except (RecursionError, TypeError, ValueError, KeyError, IndexError):
            return None

    return guarded


# -- bytes -------------------------------------------------------------------------------------


def _flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4))):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _replace(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    i = rng.randrange(len(out))
    out[i] = rng.choice(INTERESTING_BYTES) if rng.random() < 0.6 else rng.randrange(256)
    return bytes(out)


def _insert(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:
        chunk = rng.choice(INTERESTING_TOKENS)
    else:
        chunk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return data[:i] + chunk + data[i:]


def _delete(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, min(64, len(data) - i)) :]


def _duplicate(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 128))
    k = rng.randrange(len(data) + 1)
    return data[:k] + data[i:j] * rng.randint(1, 4) + data[k:]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)] if data else data


BYTE_MUTATORS: list[Callable[[bytes, random.Random], bytes]] = [
    _flip, _replace, _insert, _delete, _duplicate, _truncate,
]  # fmt: skip


# -- JSON ----------------------------------------------------------------------------------------


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return None


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    found = [(path, value)]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _nodes(item, (*path, index))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _set(root: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = _get(root, path[:-1])
    parent[path[-1]] = new
    return root


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 2 else 4)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice(NUMBERS) if rng.random() < 0.7 else rng.choice(RAW_NUMBERS)
    if kind == 2:
        return rng.choice([None, True, False])
    if kind == 3:
        return rng.choice(NAMES)
    if kind == 4:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == 5:
        return {rng.choice(NAMES): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return "x" * rng.randint(0, 50)


def _mutate_string(text: str, rng: random.Random) -> str:
    choice = rng.randrange(6)
    if choice == 0 and text:
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(["\u0430", "\u200b", "\u00e9", "e\u0301", " ", "/"]) + text[i:]
    if choice == 1:
        return text.upper() if text != text.upper() else text.lower()
    if choice == 2:
        return text + rng.choice([" ", "/", "\n", "\x00", "="])
    if choice == 3 and text:
        return text[: rng.randrange(len(text))]
    if choice == 4:
        return rng.choice(STRINGS)
    return text * 2


_Duplicate = tuple[tuple[Any, ...], str, Any]


def _mutate_json_value(root: Any, rng: random.Random) -> tuple[Any, list[_Duplicate]]:
    """Mutate ``root`` in place (or replace it); return it and duplicate members to write."""
    nodes = _nodes(root)
    path, node = rng.choice(nodes)
    duplicates: list[_Duplicate] = []
    op = rng.randrange(9)
    if op == 0:  # change type
        root = _set(root, path, _random_value(rng))
    elif op == 1 and isinstance(node, dict) and node:  # delete a member
        del node[rng.choice(list(node))]
    elif op == 2 and isinstance(node, dict):  # add a member
        node[rng.choice(NAMES)] = _random_value(rng)
    elif op == 3 and isinstance(node, dict) and node:  # duplicate a member
        key = rng.choice(list(node))
        other = _random_value(rng) if rng.random() < 0.5 else copy.deepcopy(node[key])
        duplicates.append((path, key, other))
    elif op == 4:  # nest deeper
        wrapped: Any = node
        for _ in range(rng.randint(1, 20)):
            wrapped = [wrapped] if rng.random() < 0.5 else {"a": wrapped}
        root = _set(root, path, wrapped)
    elif op == 5 and len(nodes) > 2:  # swap two values
        (p1, v1), (p2, v2) = rng.sample(nodes[1:], 2)
        if p1[: len(p2)] != p2 and p2[: len(p1)] != p1:
            root = _set(root, p1, v2)
            root = _set(root, p2, v1)
    elif op == 6 and isinstance(node, str):
        root = _set(root, path, _mutate_string(node, rng))
    elif op == 7 and isinstance(node, (int, float)) and not isinstance(node, bool):
        root = _set(
            root, path, rng.choice([node + 1, -node, str(node), float(node), rng.choice(NUMBERS)])
        )
    elif op == 8 and isinstance(node, list):
        if node and rng.random() < 0.5:
            node.pop(rng.randrange(len(node)))
        else:
            reused = copy.deepcopy(rng.choice(node)) if node else None
            node.append(_random_value(rng) if reused is None or rng.random() < 0.5 else reused)
    else:
        root = _set(root, path, _random_value(rng))
    return root, duplicates


def _dump(
    value: Any,
    rng: random.Random,
    duplicates: Sequence[_Duplicate] = (),
    path: tuple[Any, ...] = (),
    style: tuple[str, str, bool] | None = None,
) -> str:
    """Serialize JSON in a random style, adding the requested duplicate members."""
    if style is None:
        style = (rng.choice([",", ", "]), rng.choice([":", ": "]), rng.random() < 0.3)
    item_sep, key_sep, ascii_only = style
    if isinstance(value, dict):
        parts = [
            json.dumps(str(k), ensure_ascii=ascii_only)
            + key_sep
            + _dump(v, rng, duplicates, (*path, k), style)
            for k, v in value.items()
        ]
        parts += [
            json.dumps(key, ensure_ascii=ascii_only) + key_sep + _dump(extra, rng, (), (), style)
            for where, key, extra in duplicates
            if where == path
        ]
        return "{" + item_sep.join(parts) + "}"
    if isinstance(value, list):
        return (
            "["
            + item_sep.join(
                _dump(v, rng, duplicates, (*path, i), style) for i, v in enumerate(value)
            )
            + "]"
        )
    if isinstance(value, _Raw):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=ascii_only)
    except (TypeError, ValueError):  # pragma: no cover - only JSON values are produced
        return "null"


@_safe
def mutate_json(data: bytes, rng: random.Random) -> bytes | None:
    """A structural mutation of JSON ``data``; ``None`` if ``data`` is not JSON."""
    value = _loads(data)
    if value is None and data.strip() != b"null":
        return None
    value, duplicates = _mutate_json_value(value, rng)
    return _dump(value, rng, duplicates).encode("utf-8", "surrogatepass")


# -- TOML (policy files) -------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # inf and nan are TOML floats too
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ "
            + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
            + " }"
        )
    return '"null"' if value is None else json.dumps(str(value))


def _toml_dump(document: Any) -> str:
    if not isinstance(document, dict):
        return f"value = {_toml_value(document)}\n"
    lines: list[str] = []
    tables: list[str] = []
    for key, value in document.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                tables.append(f"\n[[{_toml_key(str(key))}]]")
                tables.extend(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in item.items())
        else:
            lines.append(f"{_toml_key(str(key))} = {_toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


@_safe
def mutate_toml(data: bytes, rng: random.Random) -> bytes | None:
    """A structural mutation of a TOML document; ``None`` if ``data`` is not TOML."""
    try:
        document: Any = tomllib.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    for _ in range(rng.randint(1, 3)):
        document, _duplicates = _mutate_json_value(document, rng)
    return _toml_dump(document).encode("utf-8", "surrogatepass")


# -- base64url segments ----------------------------------------------------------------------


def _b64decode(segment: bytes) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def _b64encode(data: bytes, rng: random.Random) -> bytes:
    encoded = base64.urlsafe_b64encode(data).rstrip(b"=")
    spelling = rng.randrange(12)
    if spelling == 0:
        return encoded + b"=" * (-len(encoded) % 4 or 1)
    if spelling == 1:
        return encoded.replace(b"-", b"+").replace(b"_", b"/")
    if spelling == 2 and len(encoded) % 4 in (2, 3):
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last = alphabet.index(encoded[-1:])
        return encoded[:-1] + alphabet[(last + 1) % 64 : (last + 1) % 64 + 1]
    return encoded


@_safe
def mutate_segment(data: bytes, rng: random.Random) -> bytes | None:
    """Decode a base64url segment of ``data``, mutate what it holds, and re-encode it."""
    segments = list(_SEGMENT.finditer(data))
    if not segments:
        return None
    match = rng.choice(segments)
    decoded = _b64decode(match.group())
    if decoded is None:
        return None
    inner: bytes | None = None
    if decoded[:1] in (b"{", b"[") and rng.random() < 0.85:
        inner = mutate_json(decoded, rng)
        if inner is not None and rng.random() < 0.3:
            inner = mutate_json(inner, rng) or inner
    if inner is None:
        inner = rng.choice(BYTE_MUTATORS)(decoded, rng)
    return data[: match.start()] + _b64encode(inner, rng) + data[match.end() :]


# -- compact tokens and splicing ---------------------------------------------------------------


@_safe
def mutate_parts(data: bytes, rng: random.Random) -> bytes | None:
    """Reorder, drop or duplicate the ``:``/``.`` separated parts of a compact token."""
    separator = b":" if b":" in data else b"."
    parts = data.split(separator)
    if len(parts) < 2:
        return None
    op = rng.randrange(4)
    if op == 0:
        rng.shuffle(parts)
    elif op == 1:
        parts.pop(rng.randrange(len(parts)))
    elif op == 2:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(parts))
    else:
        i, j = rng.randrange(len(parts)), rng.randrange(len(parts))
        parts[i], parts[j] = parts[j], parts[i]
    other = b"." if separator == b":" else b":"
    return (other if rng.random() < 0.05 else separator).join(parts)


def splice(a: bytes, b: bytes, rng: random.Random) -> bytes:
    """The head of ``a`` with the tail of ``b``, or a segment of ``b`` put into ``a``."""
    if rng.random() < 0.5:
        segments_a = list(_SEGMENT.finditer(a))
        segments_b = list(_SEGMENT.finditer(b))
        if segments_a and segments_b:
            target, source = rng.choice(segments_a), rng.choice(segments_b)
            return a[: target.start()] + source.group() + a[target.end() :]
    return a[: rng.randrange(len(a) + 1)] + b[rng.randrange(len(b) + 1) :]


def mutate(data: bytes, rng: random.Random, corpus: Sequence[bytes] = ()) -> bytes:
    """One to four stacked mutations of ``data`` (splicing with ``corpus`` items too)."""
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        choice = rng.random()
        result: bytes | None = None
        if choice < 0.35:
            result = mutate_segment(data, rng)
        elif choice < 0.6:
            result = mutate_json(data, rng)
            if result is None:
                result = mutate_toml(data, rng)
        elif choice < 0.68:
            result = mutate_parts(data, rng)
        elif choice < 0.76 and corpus:
            result = splice(data, rng.choice(corpus), rng)
        if result is None:
            result = rng.choice(BYTE_MUTATORS)(data, rng)
        data = result
    return data
