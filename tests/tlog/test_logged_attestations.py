"""Attestations logged in real Rekor logs: the DSSE signature goes in as a dsse entry (Rekor
v1, which checks the envelope) or a hashedrekord over the PAE (Rekor v2), with the PK-token
certificate; the entry travels in the attestation bundle and on the layer, and verifies
offline like a signature's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from opkey import Digest, TransparencyLogError
from opkey.attestation import SignedAttestation
from opkey.cli import main
from opkey.cosign import OPKEY_TLOG
from opkey.intoto import Statement, Subject
from opkey.sandbox.devidp import DevIdP
from opkey.tlog.signature_entry import read_entry_body
from opkey.verification.evidence import AttestationEvidence
from tests.tlog.servers import RekorV1, RekorV2
from tests.tlog.signing import fresh_signer, log_verifier
from tests.tlog.test_logged_bundles import network_gone

pytestmark = pytest.mark.rekor

DIGEST = Digest("sha256:" + "a7" * 32)


def _statement() -> Statement:
    return Statement.about(
        [Subject.of("app.tar.gz", DIGEST)], "vuln", {"scanner": {"result": "PASSED"}}
    )


@pytest.mark.parametrize("version", [1, 2])
def test_a_logged_attestation_verifies_with_the_network_gone(
    version: int, rekor_v1: RekorV1, rekor_v2: RekorV2
) -> None:
    rekor = rekor_v1 if version == 1 else rekor_v2
    attestation = fresh_signer(rekor.url).attest(_statement())
    (entry,) = attestation.tlog_entries
    assert read_entry_body(entry.body).kind == ("dsse" if version == 1 else "hashedrekord")
    document = json.loads(attestation.to_json())
    assert document["tlogEntries"][0]["logIndex"] == str(entry.log_index)
    verifier = log_verifier(
        [rekor.trusted_log], require_tlog=True, require_signing_time=version == 1
    )
    again = SignedAttestation.from_json(attestation.to_json())
    layer = AttestationEvidence.from_layer(
        attestation.envelope_bytes(), attestation.layer_annotations(_statement().predicate_type)
    )
    with network_gone():
        from_bundle = verifier.check(AttestationEvidence.from_bundle(again), DIGEST)
        from_layer = verifier.check(layer, DIGEST)
    for identity in (from_bundle, from_layer):
        assert [e.log_index for e in identity.log_entries] == [entry.log_index]
        assert (identity.signed_at is not None) == (version == 1)
        assert identity.statement is not None


def test_an_attestation_with_another_signatures_entry_is_rejected(rekor_v1: RekorV1) -> None:
    signer = fresh_signer(rekor_v1.url)
    attestation = signer.attest(_statement())
    (signature_entry,) = signer.sign_digest(DIGEST).tlog_entries
    swapped = dataclasses.replace(attestation, tlog_entries=(signature_entry,))
    verifier = log_verifier([rekor_v1.trusted_log], require_tlog=True)
    with pytest.raises(TransparencyLogError, match="other signed bytes"):
        verifier.check(AttestationEvidence.from_bundle(swapped), DIGEST)
    # The layer's annotation is read the same way.
    annotations = attestation.layer_annotations(_statement().predicate_type)
    assert OPKEY_TLOG in annotations


def test_attest_and_verify_attestation_with_a_log_on_the_command_line(
    dev_idp: DevIdP,
    rekor_v1: RekorV1,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in dev_idp.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GITLAB_CI", raising=False)
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release")
    scan = tmp_path / "scan.json"
    scan.write_text(json.dumps({"scanner": {"result": "PASSED"}}))
    argv = ["attest", "--file", str(artifact), "--type", "vuln", "--predicate", str(scan)]
    assert main([*argv, "--tlog-url", rekor_v1.url]) == 0, capsys.readouterr().err
    bundle = SignedAttestation.from_json((tmp_path / "app.tar.gz.att.opkey.json").read_bytes())
    assert len(bundle.tlog_entries) == 1
    key = tmp_path / "rekor.pub"
    key.write_bytes(rekor_v1.public_key_pem)
    check = [
        "verify-attestation",
        "--file",
        str(artifact),
        "--type",
        "vuln",
        "--issuer",
        dev_idp.issuer,
        "--github-repository-id",
        "614000001",
        "--tlog-key",
        str(key),
        "--tlog-origin",
        rekor_v1.trusted_log.origin,
        "--require-tlog",
        "--json",
    ]
    capsys.readouterr()
    assert main(check) == 0
    (signature,) = json.loads(capsys.readouterr().out)["signatures"]
    assert signature["log_entries"][0]["origin"] == rekor_v1.trusted_log.origin
    assert signature["signed_at"]["kind"] == "tlog"
