"""Digests and artifact statements."""

from __future__ import annotations

from pathlib import Path

import pytest

from opkey.artifact import artifact_statement, parse_artifact_statement
from opkey.digest import Digest
from opkey.errors import FormatError
from opkey.jose import go_json


@pytest.mark.parametrize(
    "value",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha512:" + "a" * 64,
        " sha256:" + "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        "SHA256:" + "a" * 64,
        "a" * 64,
    ],
)
def test_invalid_digests(value: str) -> None:
    with pytest.raises(FormatError, match="invalid digest"):
        Digest(value)


def test_digest_of_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    assert Digest.of_file(path) == Digest.of_bytes(b"hello")
    assert Digest.of_bytes(b"hello").hex.startswith("2cf24dba")
    with pytest.raises(FormatError, match="cannot read"):
        Digest.of_file(tmp_path / "missing")


def test_statement_is_canonical_and_domain_separated() -> None:
    d = Digest("sha256:" + "0f" * 32)
    statement = artifact_statement(d)
    assert (
        statement == b'{"digest":"sha256:' + b"0f" * 32 + b'","type":"opkey artifact signature v1"}'
    )
    assert parse_artifact_statement(statement) == d
    for bad in (
        statement.replace(b'"digest"', b'"digest" '),
        statement.replace(b"v1", b"v2"),
        b'{"critical":{},"type":"cosign container image signature"}',
        statement[:-1] + b',"x":1}',
    ):
        with pytest.raises(FormatError):
            parse_artifact_statement(bad)


@pytest.mark.parametrize("hex_digits", ["0" * 64, "0123456789abcdef" * 4, "f" * 64])
def test_statement_is_go_json_of_the_statement(hex_digits: str) -> None:
    digest = Digest("sha256:" + hex_digits)
    expected = go_json({"digest": digest.value, "type": "opkey artifact signature v1"})
    assert artifact_statement(digest) == expected
