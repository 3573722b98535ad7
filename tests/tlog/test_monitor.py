"""``opkey monitor`` against real logs: it finds a second signature under a watched identity,
flags entries that claim the identity without proving it, and detects a forked log.

The spoofed entries are real uploads that Rekor accepts (their signatures verify under their
own certificates): a certificate with a genuine PK token but the attacker's key, a certificate
that only names the identity, and a PK token signed by a key the provider never had. The fork
is real too: a Rekor v2 log restarted with the same key and origin on empty storage (a log
that rewrote its history), and a Rekor v1 checkpoint signed with the log's own key for another
root of the same size (a log showing two views).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opkey import CommitmentType, Digest
from opkey.cli import main
from opkey.policy import claims
from opkey.tlog import SignedCheckpoint
from opkey.tlog.certificate import FULCIO_ISSUER_V1
from opkey.tlog.client import ReadEntry, RekorClient, RekorV1Reader, TileReader
from opkey.tlog.merkle import ConsistencyProof
from opkey.tlog.monitor import MonitorState, Watch, monitor_log, policy_matcher
from opkey.tlog.signature_entry import EntryRequest
from tests.helpers import MiniOP, rsa_key
from tests.tlog.netns import NetworkNamespace
from tests.tlog.servers import REKOR_V2_PORT, RekorV1, start_rekor_v2
from tests.tlog.signing import LOG_OP, fresh_signer, log_verifier

pytestmark = pytest.mark.rekor

SUBJECT = "repo:opkey-test/app:ref:refs/heads/main"
WATCH = claims.AllOf(
    [claims.Issuer(LOG_OP.issuer), claims.ClaimGlob("sub", "repo:opkey-test/app:**")]
)


def _watch() -> Watch:
    return Watch(policy_matcher([WATCH]), log_verifier([]))


def _sign(url: str, run_id: str, subject: str = SUBJECT) -> int:
    signer = fresh_signer(url, sub=subject, run_id=run_id, workflow_ref="w@refs/heads/main")
    (entry,) = signer.sign_digest(Digest("sha256:" + "7b" * 32)).tlog_entries
    return entry.log_index


def test_the_monitor_finds_a_second_signature_under_a_watched_identity(rekor_v1: RekorV1) -> None:
    reader = RekorV1Reader(rekor_v1.url)
    log = rekor_v1.trusted_log
    first = _sign(rekor_v1.url, "1001")
    _sign(rekor_v1.url, "1002", subject="repo:someone-else/app:ref:refs/heads/main")
    report = monitor_log(reader, log, None, _watch())
    assert report.fork is None
    assert report.state is not None
    assert report.previous_size == 0
    assert report.entries_read == report.checkpoint.tree_size
    assert first in [e.index for e in report.watched]
    assert all(e.subject.startswith("repo:opkey-test/app:") for e in report.watched)
    # Round two: only what is new, and the second run is found.
    second = _sign(rekor_v1.url, "1003")
    again = monitor_log(reader, log, report.state, _watch())
    assert again.fork is None
    assert again.previous_size == report.checkpoint.tree_size
    (found,) = [e for e in again.watched if e.index == second]
    assert found.claims["run_id"] == "1003"
    assert found.integrated_time is not None
    assert found.to_dict()["workflow_ref"] == "w@refs/heads/main"
    assert all(e.index >= report.checkpoint.tree_size for e in again.watched)
    # The state survives a round trip through its file format.
    assert again.state is not None
    kept = MonitorState.from_json(again.state.to_json(), log)
    assert kept.tree == again.state.tree


# -- spoofed entries ----------------------------------------------------------------------------


def _certificate(
    key: ec.EllipticCurvePrivateKey, *, pktoken_json: bytes | None, issuer: str, name: str
) -> bytes:
    """An attacker's self-signed certificate in opkey's layout (or naming only)."""
    now = datetime.now(timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opkey PK token")])
    builder = (
        x509.CertificateBuilder()
        .serial_number(x509.random_serial_number())
        .subject_name(subject)
        .issuer_name(subject)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(minutes=10))
        .public_key(key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(FULCIO_ISSUER_V1, issuer.encode()), critical=False
        )
    )
    if pktoken_json is not None:
        builder = builder.add_extension(x509.SubjectKeyIdentifier(pktoken_json), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _upload_as(url: str, key: ec.EllipticCurvePrivateKey, certificate: bytes) -> int:
    data = b"the attacker's artifact " + str(time.time()).encode()
    signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    entry = RekorClient(url).upload(EntryRequest.hashedrekord(data, signature, certificate))
    return entry.log_index


def test_the_monitor_flags_entries_that_claim_the_identity(rekor_v1: RekorV1) -> None:
    reader = RekorV1Reader(rekor_v1.url)
    log = rekor_v1.trusted_log
    baseline = monitor_log(reader, log, None, _watch())
    assert baseline.state is not None
    genuine = fresh_signer(sub=SUBJECT).pktoken  # a genuine, public PK token of the identity
    attacker = ec.generate_private_key(ec.SECP256R1())
    copied = _upload_as(
        rekor_v1.url,
        attacker,
        _certificate(attacker, pktoken_json=genuine.to_json(), issuer=LOG_OP.issuer, name=SUBJECT),
    )
    named = _upload_as(
        rekor_v1.url,
        attacker,
        _certificate(attacker, pktoken_json=None, issuer=LOG_OP.issuer, name=SUBJECT),
    )
    # Same issuer URL and key ID, a key the provider never had.
    impostor = MiniOP(kid=LOG_OP.kid, private_key=rsa_key(fresh=True))
    now = int(time.time())
    forged, forged_key = impostor.pktoken(
        CommitmentType.GQ_BOUND, sub=SUBJECT, iat=now, nbf=now, exp=now + 300
    )
    from opkey.tlog.certificate import pktoken_certificate

    forged_cert = pktoken_certificate(forged, forged_key)
    data = b"forged artifact"
    forged_index = (
        RekorClient(rekor_v1.url)
        .upload(EntryRequest.hashedrekord(data, forged_key.sign_der(data), forged_cert))
        .log_index
    )
    report = monitor_log(reader, log, baseline.state, _watch())
    reasons = {s.index: s.reason for s in report.spoofed}
    assert "not the one the PK token commits to" in reasons[copied]
    assert "carries no PK token" in reasons[named]
    assert "does not verify" in reasons[forged_index]
    assert not [e for e in report.watched if e.index in reasons]
    assert report.alarm


def test_the_monitor_command_reports_and_keeps_its_state(
    rekor_v1: RekorV1, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "rekor.pub"
    key.write_bytes(rekor_v1.public_key_pem)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [LOG_OP.public_jwk.to_dict()]}))
    state = tmp_path / "monitor.json"
    argv = [
        "monitor",
        "--log",
        rekor_v1.url,
        "--log-key",
        str(key),
        "--log-origin",
        rekor_v1.trusted_log.origin,
        "--state",
        str(state),
        "--identity",
        f"{LOG_OP.issuer}=repo:opkey-cli/app:**",
        "--commitment",
        "gq-bound",
        "--jwks",
        str(jwks),
        "--offline",
        "--json",
    ]
    assert main(argv) in (0, 1)
    first = json.loads(capsys.readouterr().out)
    assert state.exists()
    index = _sign(rekor_v1.url, "2001", subject="repo:opkey-cli/app:ref:refs/heads/main")
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["previous_size"] == first["tree_size"]
    assert [e["index"] for e in second["watched"]] == [index]
    assert second["watched"][0]["run_id"] == "2001"
    assert second["fork"] is None
    assert main([a for a in argv if a != "--json"]) == 0
    out = capsys.readouterr().out
    assert "consistent" in out
    # Another log's state file is refused.
    other = tmp_path / "other.json"
    other.write_text(state.read_text().replace(rekor_v1.log_id.hex(), "00" * 32))
    assert main([str(other) if a == str(state) else a for a in argv]) == 2
    assert "not the pinned log" in capsys.readouterr().err


# -- forks -----------------------------------------------------------------------------------


def _forged_checkpoint(rekor: RekorV1, size: int, root: bytes) -> SignedCheckpoint:
    """A checkpoint signed with the log's own key: what a compromised log can show."""
    assert rekor.signer_key_file is not None
    key = serialization.load_pem_private_key(rekor.signer_key_file.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    text = f"{rekor.trusted_log.origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    signature = key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    key_id = rekor.trusted_log.key.key_id
    line = base64.b64encode(key_id + signature).decode()
    return SignedCheckpoint.parse(f"{text}\n— {rekor.hostname} {line}\n")


class _SplitView:
    """A Rekor v1 reader whose log shows this client another checkpoint."""

    def __init__(self, inner: RekorV1Reader, checkpoint: SignedCheckpoint) -> None:
        self.inner, self.served = inner, checkpoint

    def checkpoint(self) -> SignedCheckpoint:
        return self.served

    def consistency(self, old: int, new: int) -> ConsistencyProof | None:
        return self.inner.consistency(old, new)

    def entries(self, start: int, end: int) -> Iterator[ReadEntry]:
        return self.inner.entries(start, end)


def test_the_monitor_detects_two_views_of_a_rekor_v1_log(rekor_v1: RekorV1) -> None:
    reader = RekorV1Reader(rekor_v1.url)
    log = rekor_v1.trusted_log
    kept = monitor_log(reader, log, None, _watch()).state
    assert kept is not None
    size = kept.tree.size
    other_root = hashlib.sha256(b"another history").digest()
    report = monitor_log(
        _SplitView(reader, _forged_checkpoint(rekor_v1, size, other_root)), log, kept, _watch()
    )
    assert report.fork is not None
    assert f"two roots for tree size {size}" in report.fork.reason
    assert report.state is None
    # A bigger forged tree fails the log's own consistency proof... or the entries' root.
    _sign(rekor_v1.url, "3001")
    newer = reader.checkpoint().checkpoint
    forged = _forged_checkpoint(rekor_v1, newer.tree_size, other_root)
    report = monitor_log(_SplitView(reader, forged), log, kept, _watch())
    assert report.fork is not None
    assert "not consistent" in report.fork.reason


@pytest.fixture
def tile_server() -> Iterator[Any]:
    """A static file server on loopback for a directory set later (``server.directory``)."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

    holder: dict[str, Path] = {}

    def factory(*args: Any, **kwargs: Any) -> Handler:
        return Handler(*args, directory=str(holder["dir"]), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), factory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.holder = holder  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_monitor_detects_a_rekor_v2_log_that_rewrote_its_history(
    tmp_path: Path, tile_server: Any
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    netns = NetworkNamespace.start([REKOR_V2_PORT])
    try:
        first = start_rekor_v2(netns, tmp_path, key, tmp_path / "tiles-a")
        try:
            for run in ("1", "2", "3"):
                fresh_signer(first.url, sub=SUBJECT, run_id=run).sign_digest(
                    Digest("sha256:" + "3c" * 32)
                )
        finally:
            first.process.stop()
        tile_server.holder["dir"] = first.storage
        reader = TileReader(f"http://127.0.0.1:{tile_server.server_address[1]}")
        report = monitor_log(reader, first.trusted_log, None, _watch())
        assert report.fork is None, report.fork
        assert sorted(e.claims["run_id"] for e in report.watched) == ["1", "2", "3"]
        assert report.state is not None
        second = start_rekor_v2(netns, tmp_path, key, tmp_path / "tiles-b")
        try:
            for run in ("4", "5", "6", "7"):
                fresh_signer(second.url, sub=SUBJECT, run_id=run).sign_digest(
                    Digest("sha256:" + "3d" * 32)
                )
        finally:
            second.process.stop()
        assert second.trusted_log == first.trusted_log  # same key, same origin
        tile_server.holder["dir"] = second.storage
        forked = monitor_log(reader, second.trusted_log, report.state, _watch())
        assert forked.fork is not None
        assert "do not make the tree its checkpoint signs" in forked.fork.reason
        assert forked.state is None
    finally:
        netns.close()
