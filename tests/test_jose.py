"""Strict base64url, JSON and compact-JWS parsing (DESIGN.md §4: strict parsing before crypto)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opkey.errors import FormatError
from opkey.jose import (
    MAX_JSON_DEPTH,
    MAX_TOKEN_LENGTH,
    b64url_decode,
    b64url_encode,
    freeze_json,
    go_json,
    parse_compact,
    parse_json,
    parse_json_object,
    thaw_json,
)


@pytest.mark.parametrize("data", [b"", b"f", b"fo", b"foo", b"\xff\xfe\x00", bytes(range(256))])
def test_b64url_round_trip(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert "=" not in encoded
    assert b64url_decode(encoded) == data


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Zm9v==", "padding"),
        ("Zm9v+/", "standard alphabet"),
        ("Zm9 v", "whitespace"),
        ("Zm9v\n", "newline"),
        ("Zg=", "padding"),
        ("Z", "impossible length"),
        ("Zh", "non-zero trailing bits (canonical is Zg)"),
        ("Zm8", "fine"),
    ],
)
def test_b64url_rejects_non_canonical(text: str, reason: str) -> None:
    if reason == "fine":
        assert b64url_decode(text) == b"fo"
        return
    with pytest.raises(FormatError):
        b64url_decode(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Zm9v==", "not unpadded base64url"),
        ("Zm9v+/", "not unpadded base64url"),
        ("Zm9é", "not unpadded base64url"),
        ("Z", "impossible"),
        ("Zh", "non-zero trailing bits"),
        ("Zm9", "non-zero trailing bits"),
    ],
)
def test_b64url_errors_say_why(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        b64url_decode(text, what="field")


def _reference_b64url_decode(text: str) -> bytes | None:
    """The definition, spelled out slowly: alphabet, length, zero trailing bits."""
    if re.fullmatch(r"[A-Za-z0-9_-]*", text) is None or len(text) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return data if base64.urlsafe_b64encode(data).rstrip(b"=").decode() == text else None


_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= \n.!\x00é"


@given(
    st.one_of(
        st.text(alphabet=_B64_CHARS, max_size=24),
        st.binary(max_size=24).map(b64url_encode),
        st.tuples(
            st.binary(min_size=1, max_size=24), st.integers(0, 40), st.sampled_from(_B64_CHARS)
        )
        .map(lambda t: (b64url_encode(t[0]), t[1], t[2]))
        .map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]),
    )
)
def test_b64url_decode_accepts_exactly_the_canonical_spellings(text: str) -> None:
    expected = _reference_b64url_decode(text)
    if expected is None:
        with pytest.raises(FormatError):
            b64url_decode(text)
    else:
        assert b64url_decode(text) == expected


def test_b64url_rejects_non_string() -> None:
    with pytest.raises(FormatError, match="expected a base64url string"):
        b64url_decode(b"Zm9v")  # type: ignore[arg-type]


def test_parse_json_rejects_duplicate_members() -> None:
    with pytest.raises(FormatError, match="duplicate JSON member name 'exp'"):
        parse_json(b'{"exp": 1, "exp": 2}')


def test_parse_json_rejects_nested_duplicates() -> None:
    with pytest.raises(FormatError, match="duplicate"):
        parse_json(b'{"a": {"b": 1, "b": 1}}')


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_parse_json_rejects_non_finite(constant: str) -> None:
    with pytest.raises(FormatError, match="not allowed"):
        parse_json(f'{{"exp": {constant}}}'.encode())


def test_parse_json_rejects_invalid_utf8_and_utf16() -> None:
    with pytest.raises(FormatError, match="UTF-8"):
        parse_json(b'{"a": "\xff"}')
    with pytest.raises(FormatError):
        parse_json('{"a": 1}'.encode("utf-16"))


def test_parse_json_rejects_lone_surrogates() -> None:
    with pytest.raises(FormatError, match="surrogate"):
        parse_json(b'{"sub": "\\ud800"}')


def test_parse_json_rejects_deep_nesting() -> None:
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(FormatError, match="nested deeper"):
        parse_json(deep)
    very_deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(FormatError):
        parse_json(very_deep)


def test_parse_json_accepts_max_depth() -> None:
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(ok) is not None


def test_parse_json_rejects_oversize_and_huge_integers() -> None:
    with pytest.raises(FormatError, match="more than"):
        parse_json(b'"' + b"a" * MAX_TOKEN_LENGTH + b'"')
    with pytest.raises(FormatError, match="invalid JSON"):
        parse_json(b'{"exp": ' + b"9" * 5000 + b"}")


def test_parse_json_object_requires_object() -> None:
    with pytest.raises(FormatError, match="expected a JSON object, found list"):
        parse_json_object(b"[1]")


def test_go_json_matches_go_encoding() -> None:
    value = {"b": "<&>", "a": {"z": 1, "y": "\u2028é"}}
    assert go_json(value) == '{"a":{"y":"\\u2028é","z":1},"b":"\\u003c\\u0026\\u003e"}'.encode()


def test_freeze_and_thaw_round_trip() -> None:
    value = {"a": [1, {"b": "c"}], "d": None}
    frozen = freeze_json(value)
    with pytest.raises(TypeError):
        frozen["a"] = 1
    assert thaw_json(frozen) == value


def _token(header: dict[str, object], payload: bytes = b"{}", sig: bytes = b"s") -> str:
    return ".".join(
        [b64url_encode(json.dumps(header).encode()), b64url_encode(payload), b64url_encode(sig)]
    )


def test_parse_compact_keeps_segments_exact() -> None:
    token = _token({"alg": "RS256", "kid": "k"})
    jws = parse_compact(token)
    assert jws.compact() == token
    assert jws.signing_input == token.rsplit(".", 1)[0].encode()
    assert jws.alg == "RS256"
    assert jws.payload() == b"{}"


@pytest.mark.parametrize("member", ["crit", "b64", "enc", "zip", "jwk", "jku", "x5u", "x5c"])
def test_parse_compact_rejects_dangerous_header_members(member: str) -> None:
    with pytest.raises(FormatError, match=member):
        parse_compact(_token({"alg": "RS256", member: ["x"]}))


def test_parse_compact_rejects_jwe_and_wrong_part_counts() -> None:
    with pytest.raises(FormatError, match="JWE"):
        parse_compact("a.b.c.d.e")
    with pytest.raises(FormatError, match="3 dot-separated parts, found 2"):
        parse_compact("a.b")


@pytest.mark.parametrize("alg", [None, 1, "", ["RS256"]])
def test_parse_compact_requires_string_alg(alg: object) -> None:
    header: dict[str, object] = {} if alg is None else {"alg": alg}
    with pytest.raises(FormatError, match="alg"):
        parse_compact(_token(header))


def test_parse_compact_rejects_non_string_kid_and_typ() -> None:
    with pytest.raises(FormatError, match="kid"):
        parse_compact(_token({"alg": "RS256", "kid": 7}))
    with pytest.raises(FormatError, match="typ"):
        parse_compact(_token({"alg": "RS256", "typ": ["JWT"]}))


def test_parse_compact_rejects_padded_signature() -> None:
    token = _token({"alg": "RS256"}, sig=b"ab")
    with pytest.raises(FormatError, match="signature"):
        parse_compact(token + "==")


@pytest.mark.parametrize("value", [[1], 5, None, {"a": 1}])
def test_parse_json_rejects_values_that_are_not_text(value: object) -> None:
    """A decoded value where JSON text is expected (a session file's nested member, say) is
    a FormatError, not a TypeError from deep inside the parser."""
    with pytest.raises(FormatError, match="expected JSON text"):
        parse_json(value)  # type: ignore[arg-type]


def test_pktoken_from_a_decoded_array_is_a_format_error() -> None:
    from opkey.pktoken import PKToken

    with pytest.raises(FormatError, match="expected JSON text, found list"):
        PKToken.from_json([1])  # type: ignore[arg-type]
