"""The JWKS archive, with GitHub's real 2022 and 2025 key sets and concurrent processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from opkey.errors import ConfigError, FormatError, KeyNotFoundError, SignatureError
from opkey.jose import parse_compact
from opkey.jwks.archive import ArchiveEntry, JwksArchive
from opkey.jwks.keyset import KeySet
from opkey.keys import PublicJWK, generate_signing_key, verify_signature

DATA = Path(__file__).parent / "data"
GHA = DATA / "github-actions"
GITHUB = "https://token.actions.githubusercontent.com"
GITLAB = "https://gitlab.com"
KID_2022 = "78167F727DEC5D801DD1C8784C704A1C880EC0E1"
KID_2022_OTHER = "52F197C481DE70112C441B4A9B37B53C7FCF0DB5"
KID_2025 = "38826b17-6a30-5f9b-b169-8beb8202f723"
TOKENS_2022 = sorted(p.name for p in GHA.glob("gha-202[23]-*.jwt"))
TOKENS_2025 = sorted(p.name for p in GHA.glob("gha-202[56]-*.jwt"))

JWKS_2022 = (GHA / "github-jwks_2022_step-security.json").read_bytes()
JWKS_2025_CRATES = (GHA / "github-jwks_2025_crates-io.json").read_bytes()
JWKS_2025_DOCS = (GHA / "github-jwks_2025_openpubkey-docs.json").read_bytes()
JWKS_GITLAB = (DATA / "gitlab-jwks_openpubkey-docs.json").read_bytes()

SEEN_2022 = datetime(2022, 8, 5, tzinfo=timezone.utc)
SEEN_2025 = datetime(2025, 5, 7, tzinfo=timezone.utc)
SEEN_2025_DEC = datetime(2025, 12, 5, tzinfo=timezone.utc)


@pytest.fixture
def archive(tmp_path: Path) -> JwksArchive:
    return JwksArchive(tmp_path / "jwks-archive.sqlite")


def verify_token(key: PublicJWK, name: str) -> None:
    jws = parse_compact((GHA / name).read_text().strip())
    verify_signature("RS256", key, jws.signing_input, jws.signature)


def test_fixture_selection() -> None:
    assert len(TOKENS_2022) == 5
    assert len(TOKENS_2025) == 2


# -- real keys: rotation ---------------------------------------------------------------------


@pytest.mark.parametrize("name", TOKENS_2022)
def test_archived_2022_key_verifies_2022_tokens_that_the_2025_jwks_cannot(
    archive: JwksArchive, name: str
) -> None:
    jws = parse_compact((GHA / name).read_text().strip())
    assert jws.header["kid"] == KID_2022
    archive.import_jwks(GITHUB, JWKS_2022, SEEN_2022)
    key = archive.find(GITHUB, kid=KID_2022)
    assert key.kid == KID_2022
    verify_signature("RS256", key, jws.signing_input, jws.signature)
    # the live 2025 key sets no longer have it
    for snapshot in (JWKS_2025_CRATES, JWKS_2025_DOCS):
        with pytest.raises(KeyNotFoundError, match=KID_2022):
            KeySet.from_json(snapshot).by_kid(KID_2022)
    # and the archived key is the real one: another 2022 key does not verify the token
    with pytest.raises(SignatureError):
        verify_signature(
            "RS256", archive.find(GITHUB, kid=KID_2022_OTHER), jws.signing_input, jws.signature
        )


def test_rotation_keeps_retired_keys_with_their_times(archive: JwksArchive) -> None:
    archive.import_jwks(GITHUB, JWKS_2022, SEEN_2022)
    archive.record(GITHUB, KeySet.from_json(JWKS_2025_CRATES), SEEN_2025)
    archive.record(GITHUB, KeySet.from_json(JWKS_2025_DOCS), SEEN_2025_DEC)
    live = KeySet.from_json(JWKS_2025_DOCS)
    with pytest.raises(KeyNotFoundError):
        live.by_kid(KID_2022)  # gone from the live set ...
    for name in TOKENS_2022:  # ... but still verifiable through the archive
        verify_token(archive.find(GITHUB, kid=KID_2022), name)
    for name in TOKENS_2025:
        verify_token(archive.find(GITHUB, kid=KID_2025), name)
    entries = {e.kid: e for e in archive.entries(GITHUB)}
    assert len(entries) == 8  # 2 (2022) + 4 (crates.io) + 2 new in the docs snapshot
    assert entries[KID_2022].first_seen == entries[KID_2022].last_seen == SEEN_2022
    assert entries[KID_2025].first_seen == SEEN_2025
    assert entries[KID_2025].last_seen == SEEN_2025_DEC
    assert entries["1F2AB83404C08EC9EA0BB99DAED02186B091DBF4"].last_seen == SEEN_2025
    assert entries["38E9B30B3A023A1B72309921A69A42FCC496C42C"].first_seen == SEEN_2025_DEC
    assert not any(e.conflict for e in entries.values())
    assert archive.issuers() == [GITHUB]


def test_find_by_thumbprint_and_by_both(archive: JwksArchive) -> None:
    keys = archive.import_jwks(GITHUB, JWKS_2022, SEEN_2022)
    original = keys.by_kid(KID_2022)
    other = keys.by_kid(KID_2022_OTHER)
    jkt = original.thumbprint()
    assert archive.find(GITHUB, jkt=jkt) == original
    assert archive.find(GITHUB, kid=KID_2022, jkt=jkt) == original
    with pytest.raises(KeyNotFoundError, match="never published with kid"):
        archive.find(GITHUB, kid=KID_2022_OTHER, jkt=jkt)
    with pytest.raises(KeyNotFoundError, match="thumbprint"):
        archive.find(GITHUB, kid=KID_2022, jkt=other.thumbprint()[:-1] + "A")
    with pytest.raises(KeyNotFoundError, match="refusing to guess"):
        archive.find(GITHUB)
    with pytest.raises(KeyNotFoundError, match="no archived key"):
        archive.find(GITHUB, kid=KID_2025)
    with pytest.raises(KeyNotFoundError):
        archive.find(GITHUB, kid=KID_2022.lower())  # kids are exact, not case-folded


def test_issuers_are_isolated(archive: JwksArchive) -> None:
    archive.import_jwks(GITHUB, JWKS_2022, SEEN_2022)
    archive.import_jwks(GITLAB, JWKS_GITLAB, SEEN_2025)
    jkt = KeySet.from_json(JWKS_2022).by_kid(KID_2022).thumbprint()
    for issuer in (GITLAB, GITHUB + "/", "https://accounts.google.com"):
        with pytest.raises(KeyNotFoundError):
            archive.find(issuer, kid=KID_2022)
        with pytest.raises(KeyNotFoundError):
            archive.find(issuer, jkt=jkt)
    # even when both issuers archived the *same* key material under the same kid
    archive.import_jwks(GITLAB, JWKS_2022, SEEN_2025)
    assert archive.find(GITLAB, kid=KID_2022) == archive.find(GITHUB, kid=KID_2022)
    gitlab_kids = {e.kid for e in archive.entries(GITLAB)}
    assert KID_2025 not in gitlab_kids
    assert archive.issuers() == [GITLAB, GITHUB]
    assert len(archive.keyset(GITHUB)) == 2
    assert len(archive.keyset(GITLAB)) == 5


def test_export_import_round_trip(archive: JwksArchive, tmp_path: Path) -> None:
    archive.import_jwks(GITHUB, JWKS_2022, SEEN_2022)
    archive.import_jwks(GITHUB, JWKS_2025_CRATES, SEEN_2025)
    exported = archive.export_jwks(GITHUB)
    assert exported == archive.export_jwks(GITHUB)  # deterministic
    document = json.loads(exported)
    assert [k["kid"] for k in document["keys"]][:2] == sorted([KID_2022, KID_2022_OTHER])
    copy = JwksArchive(tmp_path / "copy.sqlite")
    copy.import_jwks(GITHUB, exported, SEEN_2025_DEC)
    assert sorted(k.thumbprint() for k in copy.keyset(GITHUB)) == sorted(
        k.thumbprint() for k in archive.keyset(GITHUB)
    )
    copied = json.loads(copy.export_jwks(GITHUB))["keys"]
    assert sorted(copied, key=lambda k: k["kid"]) == sorted(
        document["keys"], key=lambda k: k["kid"]
    )
    for name in TOKENS_2022:
        verify_token(copy.find(GITHUB, kid=KID_2022), name)
    # the original JWK members (x5c, x5t, alg, use) survive byte-for-byte as JSON values
    originals = {k["kid"]: k for k in json.loads(JWKS_2022)["keys"]}
    assert {k["kid"]: k for k in document["keys"][:2]} == originals
    with pytest.raises(KeyNotFoundError, match="no archived keys"):
        archive.export_jwks(GITLAB)


def test_import_rejects_malformed_snapshots(archive: JwksArchive) -> None:
    with pytest.raises(FormatError):
        archive.import_jwks(
            GITHUB, b'{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}', SEEN_2022
        )
    with pytest.raises(FormatError, match="duplicate"):
        archive.import_jwks(GITHUB, b'{"keys": [], "keys": []}', SEEN_2022)
    assert list(archive.entries()) == []


# -- first/last seen and member updates ------------------------------------------------------


def test_first_and_last_seen_widen_in_any_order(archive: JwksArchive) -> None:
    keys = KeySet.from_json(JWKS_2022)
    t1, t2, t3 = (SEEN_2022 + timedelta(days=d) for d in (0, 10, 20))
    archive.record(GITHUB, keys, t2)
    archive.record(GITHUB, keys, t3)
    archive.record(GITHUB, keys, t1)  # an older snapshot imported late
    archive.record(GITHUB, keys, t2)
    for entry in archive.entries(GITHUB):
        assert (entry.first_seen, entry.last_seen) == (t1, t3)


def test_latest_observation_decides_the_stored_members(archive: JwksArchive) -> None:
    original = KeySet.from_json(JWKS_2022).by_kid(KID_2022)
    trimmed = PublicJWK.from_dict(
        {k: v for k, v in original.members.items() if k not in ("x5c", "x5t")}
    )
    assert trimmed.thumbprint() == original.thumbprint()
    archive.record(GITHUB, KeySet((original,)), SEEN_2022)
    archive.record(GITHUB, KeySet((trimmed,)), SEEN_2022 - timedelta(days=1))
    assert "x5c" in archive.find(GITHUB, kid=KID_2022).members  # older: no change
    archive.record(GITHUB, KeySet((trimmed,)), SEEN_2022 + timedelta(days=1))
    assert "x5c" not in archive.find(GITHUB, kid=KID_2022).members
    assert len(list(archive.entries())) == 1


def test_naive_times_are_rejected(archive: JwksArchive) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        archive.record(GITHUB, KeySet.from_json(JWKS_2022), datetime(2022, 8, 5))


# -- conflicts -------------------------------------------------------------------------------


def test_conflicting_key_material_under_one_kid_is_kept_and_never_guessed(
    archive: JwksArchive,
) -> None:
    genuine = KeySet.from_json(JWKS_2022).by_kid(KID_2022)
    impostor_members = dict(KeySet.from_json(JWKS_2025_CRATES).by_kid(KID_2025).members)
    impostor_members["kid"] = KID_2022
    impostor = PublicJWK.from_dict(impostor_members)
    archive.record(GITHUB, KeySet((genuine,)), SEEN_2022)
    archive.record(GITHUB, KeySet((impostor,)), SEEN_2025)
    with pytest.raises(KeyNotFoundError, match="ambiguous, refusing to pick one"):
        archive.find(GITHUB, kid=KID_2022)
    # naming the thumbprint too resolves each one exactly
    assert archive.find(GITHUB, kid=KID_2022, jkt=genuine.thumbprint()) == genuine
    assert archive.find(GITHUB, kid=KID_2022, jkt=impostor.thumbprint()) == impostor
    entries = list(archive.entries(GITHUB))
    assert len(entries) == 2
    assert all(e.conflict for e in entries)
    with pytest.raises(KeyNotFoundError, match="ambiguous"):
        archive.keyset(GITHUB).by_kid(KID_2022)
    # the conflict is per issuer: the same pair under another issuer is separate
    archive.record(GITLAB, KeySet((genuine,)), SEEN_2022)
    assert archive.find(GITLAB, kid=KID_2022) == genuine
    assert not any(e.conflict for e in archive.entries(GITLAB))


def test_keys_without_kid(archive: JwksArchive) -> None:
    key = generate_signing_key("ES256").public_jwk
    assert key.kid is None
    archive.record("https://idp.example", KeySet((key,)), SEEN_2025)
    assert archive.find("https://idp.example", jkt=key.thumbprint()) == key
    assert archive.find("https://idp.example", kid="any", jkt=key.thumbprint()) == key
    with pytest.raises(KeyNotFoundError):
        archive.find("https://idp.example", kid="any")
    (entry,) = archive.entries()
    assert entry.kid is None
    assert not entry.conflict


# -- limits and bad files --------------------------------------------------------------------


def test_per_issuer_limit_is_atomic(tmp_path: Path) -> None:
    small = JwksArchive(tmp_path / "small.sqlite", max_keys_per_issuer=5)
    small.import_jwks(GITHUB, JWKS_2022, SEEN_2022)
    with pytest.raises(ConfigError, match="would hold 6 keys, more than the 5 allowed"):
        small.import_jwks(GITHUB, JWKS_2025_CRATES, SEEN_2025)
    assert len(small.keyset(GITHUB)) == 2  # nothing of the rejected set was recorded
    small.import_jwks(GITLAB, JWKS_GITLAB, SEEN_2025)  # other issuers have their own budget


def test_foreign_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello\n" * 200)
    with pytest.raises(ConfigError, match=r"notes\.txt"):
        JwksArchive(not_sqlite).find(GITHUB, kid=KID_2022)
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE keys (x)")
    conn.close()
    with pytest.raises(ConfigError, match="not an opkey JWKS archive"):
        JwksArchive(foreign).record(GITHUB, KeySet.from_json(JWKS_2022), SEEN_2022)
    newer = tmp_path / "newer.sqlite"
    JwksArchive(newer).import_jwks(GITHUB, JWKS_2022, SEEN_2022)
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(ConfigError, match="schema version 7"):
        JwksArchive(newer).find(GITHUB, kid=KID_2022)
    with pytest.raises(ConfigError, match="cannot open"):
        JwksArchive(tmp_path / "missing-dir" / "a.sqlite").find(GITHUB, kid=KID_2022)
    with pytest.raises(ConfigError, match="file path"):
        JwksArchive(":memory:")


def test_tampered_rows_are_detected(archive: JwksArchive) -> None:
    archive.import_jwks(GITHUB, JWKS_2022, SEEN_2022)
    other = KeySet.from_json(JWKS_2025_CRATES).by_kid(KID_2025)
    with sqlite3.connect(archive.path) as conn:
        conn.execute(
            "UPDATE keys SET jwk = ? WHERE kid = ?",
            (json.dumps(other.to_dict(), sort_keys=True), KID_2022),
        )
    conn.close()
    with pytest.raises(ConfigError, match="corrupt"):
        archive.find(GITHUB, kid=KID_2022)


# -- processes -------------------------------------------------------------------------------

WORKERS = 8
ROUNDS = 15


def _record_worker(
    path: str, worker: int, shared: list[dict[str, Any]], own: list[dict[str, Any]]
) -> None:
    archive = JwksArchive(path, timeout=60)
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    shared_keys = KeySet(tuple(PublicJWK.from_dict(k) for k in shared))
    for round_ in range(ROUNDS):
        seen = base + timedelta(days=worker * ROUNDS + round_)
        own_key = PublicJWK.from_dict(own[round_])
        archive.record("https://idp.example", KeySet((*shared_keys.keys, own_key)), seen)


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    shared = [generate_signing_key("ES256").public_jwk.to_dict() for _ in range(3)]
    own = [
        [
            PublicJWK.from_key(
                generate_signing_key("ES256").public_jwk.key, alg="ES256", kid=f"w{w}-{r}"
            ).to_dict()
            for r in range(ROUNDS)
        ]
        for w in range(WORKERS)
    ]
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_record_worker, args=(path, w, shared, own[w]))
        for w in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    archive = JwksArchive(path)
    entries = list(archive.entries("https://idp.example"))
    assert len(entries) == 3 + WORKERS * ROUNDS
    by_jkt: dict[str, ArchiveEntry] = {e.jkt: e for e in entries}
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for key in shared:
        entry = by_jkt[PublicJWK.from_dict(key).thumbprint()]
        assert entry.first_seen == base
        assert entry.last_seen == base + timedelta(days=WORKERS * ROUNDS - 1)
    for w in range(WORKERS):
        for r in range(ROUNDS):
            assert archive.find("https://idp.example", kid=f"w{w}-{r}").to_dict() == own[w][r]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def _reader_worker(path: str, issuers: int, started: Any, result: Any) -> None:
    archive = JwksArchive(path, timeout=60)
    partial = passes = 0
    complete = 0
    while complete < issuers:
        counts: dict[str, int] = {}
        for entry in archive.entries():
            counts[entry.issuer] = counts.get(entry.issuer, 0) + 1
        partial += sum(1 for n in counts.values() if n != 4)
        complete = len(counts)
        passes += 1
        started.set()
    result.put((partial, passes))


def test_readers_never_see_half_a_key_set(tmp_path: Path) -> None:
    path = str(tmp_path / "atomic.sqlite")
    issuers = 40
    sets = [
        KeySet(tuple(generate_signing_key("ES256").public_jwk for _ in range(4)))
        for _ in range(issuers)
    ]
    writer = JwksArchive(path)
    writer.record("https://warmup.example", KeySet(sets[0].keys), SEEN_2025)
    context = multiprocessing.get_context("spawn")
    started = context.Event()
    result = context.Queue()
    reader = context.Process(target=_reader_worker, args=(path, issuers + 1, started, result))
    reader.start()
    assert started.wait(60)  # the reader is reading before the writes begin
    for index, keys in enumerate(sets):
        writer.record(f"https://idp{index}.example", keys, SEEN_2025)
    partial, passes = result.get(timeout=120)
    reader.join(60)
    assert reader.exitcode == 0
    assert passes >= 2
    assert partial == 0


def _crashing_worker(path: str, keys: list[dict[str, Any]]) -> None:
    archive = JwksArchive(path, timeout=60)
    original = JwksArchive._upsert
    calls = []

    def upsert_then_die(self: JwksArchive, *args: Any) -> None:
        original(self, *args)
        calls.append(1)
        if len(calls) == 2:
            os._exit(3)  # killed in the middle of a transaction: no cleanup runs

    JwksArchive._upsert = upsert_then_die  # type: ignore[method-assign,assignment]
    archive.record(
        "https://crash.example", KeySet(tuple(PublicJWK.from_dict(k) for k in keys)), SEEN_2025
    )


def test_a_process_killed_mid_write_leaves_nothing_behind(tmp_path: Path) -> None:
    path = str(tmp_path / "crash.sqlite")
    archive = JwksArchive(path)
    archive.import_jwks(GITHUB, JWKS_2022, SEEN_2022)
    keys = [generate_signing_key("ES256").public_jwk.to_dict() for _ in range(4)]
    process = multiprocessing.get_context("spawn").Process(
        target=_crashing_worker, args=(path, keys)
    )
    process.start()
    process.join(120)
    assert process.exitcode == 3
    assert [e.issuer for e in archive.entries()] == [GITHUB, GITHUB]
    # the lock died with the process: writing works at once, and the file is sound
    archive.record(
        "https://crash.example", KeySet(tuple(PublicJWK.from_dict(k) for k in keys)), SEEN_2025
    )
    assert len(archive.keyset("https://crash.example")) == 4
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
