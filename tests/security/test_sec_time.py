"""Times at and beyond the edges: every conversion is a clear error, never an overflow.

``--at 0001-01-01T00:00:00+14:00`` is a valid ``datetime`` whose UTC time is in year 0, and
``--at 9999-12-31T23:59:59-14:00`` one whose UTC time is in year 10000; both ended in
``ValueError``/``OverflowError`` tracebacks when verification formatted or converted them. The
rule now is one range for every time opkey handles, 1970-01-01T00:00:00Z to
9999-12-31T23:59:59Z (``opkey.expiry.EARLIEST_TIME``/``LATEST_TIME``): a verification time
outside it is a ``ConfigError``, a claim or stored time outside it a ``FormatError`` (or the
archive's ``ConfigError``), and arithmetic past its end (``iat`` + a maximum age, ``exp`` + the
leeway, a timestamp's time + its accuracy) is done in integers, never in ``datetime``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from opkey import Bundle, Digest, Requirement, Verifier
from opkey.cli import main
from opkey.cli._common import parse_time
from opkey.errors import ConfigError, ExpiredError, FormatError
from opkey.expiry import (
    LATEST_TIME,
    ExpiryPolicy,
    format_utc,
    timestamp,
    utc_datetime,
)
from opkey.issuers import CommitmentType
from opkey.jwks.archive import JwksArchive
from opkey.jwks.keyset import KeySet
from opkey.pktoken import PKToken
from opkey.policy.claims import UnsafeNoPolicy
from opkey.signer import Signer
from opkey.timestamp import VerifiedTimestamp, check_signed_while_valid
from opkey.verification.evidence import BundleEvidence
from opkey.verify import verify_pktoken
from tests.helpers import CLIENT_ID, MiniOP
from tests.security.sec_common import mint_pktoken, pinned_verifier

PLUS_14 = timezone(timedelta(hours=14))
MINUS_14 = timezone(timedelta(hours=-14))
#: Valid datetimes, each outside what opkey can check (the two from the issue first).
OUTSIDE = {
    "year-1-at-plus-14": datetime(1, 1, 1, tzinfo=PLUS_14),
    "year-9999-at-minus-14": datetime(9999, 12, 31, 23, 59, 59, tzinfo=MINUS_14),
    "year-1-utc": datetime(1, 1, 1, tzinfo=timezone.utc),
    "before-1970": datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
    "datetime-max-at-minus-1": datetime.max.replace(tzinfo=timezone(timedelta(hours=-1))),
}
OUTSIDE_TEXT = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "253402300800",
    "99999999999999999999",
    "9" * 5000,  # more digits than int() converts by default
]
RANGE = "outside the times opkey can check (1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z)"
DIGEST = Digest("sha256:" + "77" * 32)


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


def _bundle(op: MiniOP, **claims: Any) -> Bundle:
    wrapped = mint_pktoken(op, **claims)
    return Signer(wrapped.pktoken, wrapped.key).sign_digest(DIGEST)


# -- the verification time ----------------------------------------------------------------------


@pytest.mark.parametrize("text", OUTSIDE_TEXT, ids=lambda t: t[:30])
def test_cli_at_outside_the_range_is_a_usage_error(
    text: str, op: MiniOP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_bytes(_bundle(op).to_json())
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(op.keyset.to_dict()))
    argv = ["verify", "--digest", str(DIGEST), "--bundle", str(bundle), "--issuer", op.issuer]
    argv += ["--commitment", "nonce", "--client-id", CLIENT_ID, "--subject", "user-1234"]
    assert main([*argv, "--jwks", str(jwks), "--offline", "--at", text]) == 2
    err = capsys.readouterr().err
    assert f"argument --at: invalid time {text[:80]!r}" in err
    assert "outside the times opkey can check" in err or "RFC 3339" in err
    argv = ["jwks", "--archive", str(tmp_path / "a"), "import", op.issuer, "-", "--seen-at", text]
    assert main(argv) == 2
    assert "argument --seen-at: invalid time" in capsys.readouterr().err


def test_parse_time_range_and_forms() -> None:
    for text in OUTSIDE_TEXT[:-2]:
        with pytest.raises(ConfigError, match=re.escape(RANGE)):
            parse_time(text)
    with pytest.raises(ConfigError, match=r"RFC 3339|outside"):
        parse_time("9" * 5000)
    with pytest.raises(ConfigError, match="RFC 3339"):
        parse_time("١٢٣")  # Arabic-Indic digits: int() would take them, a time must not
    assert parse_time("253402300799") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert parse_time("0") == datetime(1970, 1, 1, tzinfo=timezone.utc)
    # Offsets are kept exactly, and the result is UTC.
    assert parse_time("9999-12-31T23:59:59+14:00") == datetime(
        9999, 12, 31, 9, 59, 59, tzinfo=timezone.utc
    )


@pytest.mark.parametrize("name", sorted(OUTSIDE))
def test_library_verification_time_outside_the_range(op: MiniOP, name: str) -> None:
    at = OUTSIDE[name]
    bundle = _bundle(op)
    verifier = pinned_verifier((op.config(), op.keyset))
    with pytest.raises(ConfigError, match="outside the times opkey can check"):
        verifier.verdict(Requirement.of(UnsafeNoPolicy()), DIGEST, [BundleEvidence(bundle)], at=at)
    with pytest.raises(ConfigError, match="outside the times opkey can check"):
        verifier.identify(bundle.pktoken, at=at)
    with pytest.raises(ConfigError, match="outside the times opkey can check"):
        verify_pktoken(bundle.pktoken, op.config(), op.keyset, now=at)
    with pytest.raises(ConfigError, match="outside the times opkey can check"):
        timestamp(at)


def test_verifier_clock_outside_the_range(op: MiniOP) -> None:
    bundle = _bundle(op)
    verifier = Verifier(
        pinned_verifier((op.config(), op.keyset)).trust, clock=lambda: OUTSIDE["year-1-at-plus-14"]
    )
    verdict = verifier.verdict(Requirement.of(UnsafeNoPolicy()), DIGEST, [BundleEvidence(bundle)])
    assert not verdict.accepted
    assert isinstance(verdict.signatures[0].error, ConfigError)


# -- token claims at and past the edges ---------------------------------------------------------


def test_claims_at_the_edges_verify_and_convert(op: MiniOP) -> None:
    wrapped = mint_pktoken(op, iat=0, nbf=0, exp=LATEST_TIME)
    at = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    for expiry in (ExpiryPolicy.oidc(), ExpiryPolicy.never()):
        verifier = pinned_verifier((op.config(expiry=expiry), op.keyset), at=at)
        identity = verifier.identify(wrapped.pktoken)
        assert identity.issued_at == datetime(1970, 1, 1, tzinfo=timezone.utc)
        assert identity.expires_at == at
    # iat at the very end plus a week: the limit lies past the year 9999, and still no overflow.
    late = mint_pktoken(op, iat=LATEST_TIME - 10, nbf=LATEST_TIME - 10, exp=LATEST_TIME)
    config = op.config(expiry=ExpiryPolicy.max_age_of(7 * 86400))
    verify_pktoken(late.pktoken, config, op.keyset, now=at)
    with pytest.raises(ExpiredError, match="issued in the future"):
        verify_pktoken(
            late.pktoken, config, op.keyset, now=datetime(1970, 1, 2, tzinfo=timezone.utc)
        )


@pytest.mark.parametrize("value", [-1, LATEST_TIME + 1, 10**30, 2**63, -(2**63), True, 1.5])
@pytest.mark.parametrize("claim", ["iat", "exp", "nbf"])
def test_claims_past_the_edges_are_format_errors(op: MiniOP, claim: str, value: Any) -> None:
    with pytest.raises(FormatError, match=f"claim '{claim}' must be an integer time"):
        PKToken.from_json(mint_pktoken(op, **{claim: value}).pktoken.to_json())


def test_expiry_messages_past_the_end_of_datetime() -> None:
    """``ExpiryPolicy.check`` takes integer times: a limit past 9999 is shown, not converted."""
    claims = {"iat": LATEST_TIME, "exp": LATEST_TIME}
    policy = ExpiryPolicy.max_age_of(7 * 86400)
    with pytest.raises(ExpiredError, match=r"accepted until \d+ s after 1970-01-01T00:00:00Z"):
        policy.check(claims, LATEST_TIME + 10**9)
    with pytest.raises(ExpiredError, match=r"ID token expired at 9999-12-31T23:59:59Z"):
        ExpiryPolicy.oidc().check(claims, LATEST_TIME + 10**12)
    with pytest.raises(ExpiredError, match=r"issued in the future .*now -\d+ s after"):
        policy.check(claims, -(10**12))
    assert format_utc(LATEST_TIME) == "9999-12-31T23:59:59Z"
    assert format_utc(-1) == "-1 s after 1970-01-01T00:00:00Z"


@pytest.mark.parametrize("value", [-1, LATEST_TIME + 1, 10**400, True, "0", None, 0.0])
def test_utc_datetime_refuses_what_it_cannot_convert(value: object) -> None:
    with pytest.raises(FormatError, match=r"expected an integer time in 0\.\.253402300799"):
        utc_datetime(value)


def test_archive_with_a_corrupt_stored_time(tmp_path: Path, op: MiniOP) -> None:
    archive = JwksArchive(tmp_path / "a.sqlite")
    archive.import_jwks(
        op.issuer, json.dumps(op.keyset.to_dict()), datetime(2026, 1, 1, tzinfo=timezone.utc)
    )
    for value in (10**15, -(10**15)):
        with sqlite3.connect(tmp_path / "a.sqlite") as conn:
            conn.execute("UPDATE keys SET last_seen = ?", (value,))
        with pytest.raises(ConfigError, match="JWKS archive is corrupt: stored time"):
            list(archive.entries())
    with pytest.raises(ConfigError, match="outside the times opkey can check"):
        archive.record(
            op.issuer, KeySet.from_json(json.dumps(op.keyset.to_dict())), OUTSIDE["year-1-utc"]
        )


# -- timestamps: the time rule near the end of datetime -----------------------------------------


def _stamp(time: datetime, accuracy: timedelta | None) -> VerifiedTimestamp:
    # Only time, accuracy and the subject take part in the time rule.
    return VerifiedTimestamp(
        time=time,
        accuracy=accuracy,
        tsa_subject="CN=test TSA",
        root_sha256="00" * 32,
        certificate=None,  # type: ignore[arg-type]
        authority=None,  # type: ignore[arg-type]
        serial_number=1,
        policy="1.2.3",
    )


def test_timestamp_rule_at_the_end_of_datetime() -> None:
    end = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    # exp + leeway lies past 9999: accepted, not an OverflowError.
    stamp = _stamp(end, timedelta(seconds=1))
    check_signed_while_valid(
        stamp, issued_at=end - timedelta(hours=1), expires_at=end, leeway=timedelta(seconds=600)
    )
    assert stamp.latest == datetime.max.replace(tzinfo=timezone.utc)  # saturates
    # time + accuracy past 9999, exp earlier: refused with the reason, not an OverflowError.
    huge = _stamp(end, timedelta(days=10**6))
    with pytest.raises(ExpiredError, match="signed after the ID token expired"):
        check_signed_while_valid(
            huge, issued_at=end - timedelta(days=2), expires_at=end - timedelta(days=1)
        )
    start = datetime(1970, 1, 1, tzinfo=timezone.utc)
    early = _stamp(start, timedelta(days=10**6))
    assert early.earliest == datetime.min.replace(tzinfo=timezone.utc)
    with pytest.raises(ExpiredError, match="predates the ID token"):
        check_signed_while_valid(
            _stamp(start, None), issued_at=start + timedelta(days=1), expires_at=end
        )
    with pytest.raises(ConfigError, match="has no UTC time"):
        check_signed_while_valid(stamp, issued_at=OUTSIDE["year-1-at-plus-14"], expires_at=end)
    with pytest.raises(ConfigError, match="has no UTC time"):
        check_signed_while_valid(
            stamp, issued_at=start, expires_at=OUTSIDE["year-9999-at-minus-14"]
        )


def test_commitment_types_are_unaffected(op: MiniOP) -> None:
    """Control: an ordinary token at an ordinary time still verifies under each commitment."""
    for commitment in (CommitmentType.NONCE, CommitmentType.AUD):
        wrapped = mint_pktoken(op, commitment=commitment)
        verify_pktoken(
            wrapped.pktoken,
            op.config(commitment),
            op.keyset,
            now=datetime(2026, 1, 1, tzinfo=timezone.utc),
        )
