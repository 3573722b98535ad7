"""Signatures logged in real Rekor logs, carried in bundles, and verified with no network.

A signer with a transparency log logs each bundle's OSM signature as a hashedrekord whose
verifier is the PK-token certificate; the entry, its proof and checkpoint (and on Rekor v1
the SET) travel in the bundle's ``tlogEntries``; the verifier checks them offline against the
log it pins and against the signature, key and PK token it verifies, and takes Rekor v1's
signed integrated time as the signing time.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from opkey import Bundle, ConfigError, Digest, ExpiredError, TransparencyLogError, Verifier
from opkey.errors import LogServiceError, TimestampError
from opkey.policy.claims import UnsafeNoPolicy
from opkey.tlog import LogEntry, SignedCheckpoint, TrustedLog, entry_from_rekor_v1
from opkey.tlog.certificate import read_certificate
from opkey.tlog.client import RekorClient
from opkey.tlog.note import NoteSignature
from opkey.tlog.signature_entry import EntryRequest, read_entry_body
from tests.helpers import MiniOP
from tests.tlog.servers import RekorV1, RekorV2
from tests.tlog.signing import fresh_signer, log_verifier

pytestmark = pytest.mark.rekor

DIGEST = Digest("sha256:" + "5a" * 32)
ANYONE = UnsafeNoPolicy()


@contextmanager
def network_gone() -> Iterator[None]:
    """Every socket connection fails inside the block: verification must need none."""
    saved = socket.socket.connect, socket.create_connection

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("verification opened a network connection")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.socket.connect, socket.create_connection = saved  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def v1_bundle(rekor_v1: RekorV1) -> Bundle:
    """One bundle logged in Rekor v1 (after a few other entries, so its proof has hashes)."""
    for _ in range(3):
        fresh_signer(rekor_v1.url).sign_digest(Digest("sha256:" + "01" * 32))
    return fresh_signer(rekor_v1.url, log=rekor_v1.trusted_log).sign_digest(DIGEST)


def test_sign_log_and_verify_with_the_network_gone_rekor_v1(
    rekor_v1: RekorV1, v1_bundle: Bundle
) -> None:
    (entry,) = v1_bundle.tlog_entries
    document = Bundle.from_json(v1_bundle.to_json())
    assert document == v1_bundle
    assert json.loads(v1_bundle.to_json())["tlogEntries"][0]["kindVersion"] == {
        "kind": "hashedrekord",
        "version": "0.0.1",
    }
    verifier = log_verifier([rekor_v1.trusted_log], require_tlog=True, require_signing_time=True)
    with network_gone():
        identity = verifier.verify_bundle(document, DIGEST, policy=ANYONE)
    assert identity.signed_at is not None
    assert identity.signed_at.kind == "tlog"
    assert identity.signed_at.authority == rekor_v1.trusted_log.origin
    assert identity.signed_at.authority_id == rekor_v1.log_id.hex()
    assert int(identity.signed_at.time.timestamp()) == entry.integrated_time
    (logged,) = identity.log_entries
    assert logged.log_index == entry.log_index
    # The entry names the PK-token certificate: the PK token, byte for byte, and the key.
    certificate = read_entry_body(entry.body).read_certificate()
    assert certificate is not None
    assert certificate.pktoken_json == v1_bundle.pktoken.to_json()
    assert certificate.key_is(v1_bundle.pktoken.cic_claims.upk)
    assert certificate.claimed_issuer == v1_bundle.pktoken.issuer


def test_sign_log_and_verify_with_the_network_gone_rekor_v2(rekor_v2: RekorV2) -> None:
    bundle = fresh_signer(rekor_v2.url).sign_digest(DIGEST)
    (entry,) = bundle.tlog_entries
    assert entry.signed_entry_timestamp is None
    assert read_entry_body(entry.body).version == "0.0.2"
    verifier = log_verifier([rekor_v2.trusted_log], require_tlog=True)
    with network_gone():
        identity = verifier.verify_bundle(Bundle.from_json(bundle.to_json()), DIGEST, policy=ANYONE)
    # Rekor v2 signs no time: inclusion is proven, the signing time is not.
    assert identity.signed_at is None
    assert [e.origin for e in identity.log_entries] == [rekor_v2.origin]
    with pytest.raises(ConfigError, match="no pinned transparency log signs times"):
        log_verifier([rekor_v2.trusted_log], require_signing_time=True)


def test_the_v1_fallback_finds_rekor_v2_from_one_url(rekor_v2: RekorV2) -> None:
    signer = fresh_signer(rekor_v2.url)
    assert signer.tlog is not None
    assert signer.tlog.api is None
    signer.sign_digest(DIGEST)
    assert signer.tlog.api == "v2"


# -- what is refused ---------------------------------------------------------------------------


def test_only_gq256_pk_tokens_are_ever_published(rekor_v1: RekorV1) -> None:
    before = requests.get(f"{rekor_v1.url}/api/v1/log", timeout=10).json()["treeSize"]
    with pytest.raises(ConfigError, match="only GQ256 PK tokens may be published"):
        fresh_signer(rekor_v1.url, gq=False)
    op = MiniOP()
    rs256 = fresh_signer(op=op, gq=False)
    with pytest.raises(ConfigError, match="replayable"):
        rs256.with_tlog(RekorClient(rekor_v1.url))
    eddsa_token, eddsa_key = op.pktoken(user_alg="EdDSA", gq_sign=True)
    from opkey import Signer

    with pytest.raises(ConfigError, match="needs an ES256 ephemeral key"):
        Signer(eddsa_token, eddsa_key, tlog=RekorClient(rekor_v1.url))
    after = requests.get(f"{rekor_v1.url}/api/v1/log", timeout=10).json()["treeSize"]
    assert after == before  # nothing was logged


def test_a_log_that_refuses_the_entry_fails_the_signing(rekor_v1: RekorV1) -> None:
    signer = fresh_signer(rekor_v1.url)
    assert signer.tlog is not None
    request = EntryRequest.hashedrekord(
        b"signed bytes", b"\x30\x06\x02\x01\x01\x02\x01\x01", signer.certificate()
    )
    with pytest.raises(LogServiceError, match="refused the entry: HTTP 400"):
        signer.tlog.upload(request)


def test_an_unreachable_log_fails_the_signing() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    signer = fresh_signer(f"http://127.0.0.1:{port}")
    from opkey.errors import NetworkError

    with pytest.raises(NetworkError, match="transparency log"):
        signer.sign_digest(DIGEST)


def test_a_duplicate_upload_returns_the_existing_entry(rekor_v1: RekorV1) -> None:
    signer = fresh_signer(rekor_v1.url)
    assert signer.tlog is not None
    jws_signer = signer.sign(b"a statement logged twice")
    from opkey.jose import parse_compact
    from opkey.tlog.signature_entry import der_signature

    jws = parse_compact(jws_signer)
    request = EntryRequest.hashedrekord(
        jws.signing_input, der_signature(jws.signature), signer.certificate()
    )
    first = signer.tlog.upload(request)
    again = signer.tlog.upload(request)  # Rekor answers 409; the client reads the entry back
    assert again.log_index == first.log_index
    assert again.body == first.body
    assert again.integrated_time == first.integrated_time
    # The certificate is deterministic: a new signer object for the same token agrees.
    assert read_certificate(signer.certificate()).der == signer.certificate()


def test_an_integrated_time_after_the_tokens_exp_is_refused_when_signing(
    rekor_v1: RekorV1,
) -> None:
    """A dev token whose validity ended before the upload: the log's time proves the
    signature was made after exp, so the signer refuses to hand it out."""
    signer = fresh_signer(rekor_v1.url, lifetime=60, issued_ago=400)
    with pytest.raises(ExpiredError, match="after the ID token expired"):
        signer.sign_digest(DIGEST)


def _moved_entry(rekor: RekorV1, entry: LogEntry, seconds: int) -> LogEntry:
    """The entry re-read after moving Trillian's stored integration time: rekor-server signs a
    valid SET over the new time (faketime cannot move a Go program's clock)."""
    later = (entry.integrated_time or 0) + seconds
    statement = (
        "UPDATE SequencedLeafData SET IntegrateTimestampNanos = {} "
        "WHERE TreeId = {} AND SequenceNumber = {};"
    )
    rekor.sql(statement.format(later * 1_000_000_000, rekor.tree_id, entry.inclusion_proof.index))
    uuid = f"{rekor.tree_id:016x}{entry.leaf_hash.hex()}"
    answer = requests.get(f"{rekor.url}/api/v1/log/entries/{uuid}", timeout=10)
    assert answer.status_code == 200, answer.text
    moved = entry_from_rekor_v1(answer.json())
    assert moved.integrated_time == later
    return moved


def test_an_integrated_time_after_the_tokens_exp_is_rejected(rekor_v1: RekorV1) -> None:
    bundle = fresh_signer(rekor_v1.url).sign_digest(DIGEST)
    (entry,) = bundle.tlog_entries
    moved = _moved_entry(rekor_v1, entry, 3600)
    late = Bundle(bundle.pktoken, bundle.signature, tlog_entries=[moved])
    verifier = log_verifier([rekor_v1.trusted_log])
    with pytest.raises(ExpiredError, match="signed after the ID token expired"):
        verifier.verify_bundle(late, DIGEST, policy=ANYONE)
    # The same entry from an unpinned log proves nothing, and then nothing rejects it.
    assert log_verifier([]).verify_bundle(late, DIGEST, policy=ANYONE).signed_at is None


# -- every tamper is rejected ---------------------------------------------------------------------


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _with_note(entry: LogEntry, text: str | None = None, sig: bytes | None = None) -> LogEntry:
    note = entry.checkpoint.note
    line = note.signatures[0]
    new = NoteSignature(line.name, line.key_id, sig if sig is not None else line.signature)
    raw = (
        f"{text or note.text}\n— {new.name} "
        + base64.b64encode(new.key_id + new.signature).decode()
    )
    return dataclasses.replace(entry, checkpoint=SignedCheckpoint.parse(raw + "\n"))


def _body_with(entry: LogEntry, change: Callable[[dict[str, Any]], None]) -> LogEntry:
    document = json.loads(entry.body)
    change(document)
    return dataclasses.replace(entry, body=json.dumps(document, separators=(",", ":")).encode())


def _tampers(bundle: Bundle, rekor: RekorV1) -> dict[str, Callable[[], Bundle]]:
    (entry,) = bundle.tlog_entries
    proof = entry.inclusion_proof
    checkpoint = entry.checkpoint.checkpoint

    def rebundle(changed: LogEntry) -> Bundle:
        return Bundle(bundle.pktoken, bundle.signature, tlog_entries=[changed])

    def hashed(i: int) -> Callable[[], Bundle]:
        hashes = tuple(_flip(h) if j == i else h for j, h in enumerate(proof.hashes))
        return lambda: rebundle(
            dataclasses.replace(entry, inclusion_proof=dataclasses.replace(proof, hashes=hashes))
        )

    other = fresh_signer(rekor.url).sign_digest(DIGEST)
    (other_entry,) = other.tlog_entries

    def other_key(document: dict[str, Any]) -> None:
        other_body = json.loads(other_entry.body)
        document["spec"]["signature"]["publicKey"] = other_body["spec"]["signature"]["publicKey"]

    def other_hash(document: dict[str, Any]) -> None:
        document["spec"]["data"]["hash"]["value"] = "00" * 32

    def other_signature(document: dict[str, Any]) -> None:
        document["spec"]["signature"]["content"] = json.loads(other_entry.body)["spec"][
            "signature"
        ]["content"]

    tampers: dict[str, Callable[[], Bundle]] = {
        f"proof hash {i}": hashed(i) for i in range(len(proof.hashes))
    }
    tampers |= {
        "body (artifact hash)": lambda: rebundle(_body_with(entry, other_hash)),
        "body (signature)": lambda: rebundle(_body_with(entry, other_signature)),
        "key (another PK token's certificate)": lambda: rebundle(_body_with(entry, other_key)),
        "root": lambda: rebundle(dataclasses.replace(entry, root_hash=_flip(entry.root_hash))),
        "checkpoint signature": lambda: rebundle(
            _with_note(entry, sig=_flip(entry.checkpoint.note.signatures[0].signature, 12))
        ),
        "checkpoint root": lambda: rebundle(
            _with_note(
                entry, dataclasses.replace(checkpoint, root_hash=_flip(checkpoint.root_hash)).text()
            )
        ),
        "signed entry timestamp": lambda: rebundle(
            dataclasses.replace(
                entry, signed_entry_timestamp=_flip(entry.signed_entry_timestamp or b"\0", 8)
            )
        ),
        "integrated time": lambda: rebundle(
            dataclasses.replace(entry, integrated_time=(entry.integrated_time or 0) - 1)
        ),
        # Another genuine PK token (another run's) with this key's signature: the entry's
        # certificate carries this bundle's token, not that one.
        "PK token": lambda: Bundle(
            other.pktoken, bundle.signature, tlog_entries=bundle.tlog_entries
        ),
        "entry of another signature": lambda: rebundle(other_entry),
    }
    return tampers


def test_every_tamper_is_rejected(rekor_v1: RekorV1, v1_bundle: Bundle) -> None:
    verifier = log_verifier([rekor_v1.trusted_log], require_tlog=True)
    verifier.verify_bundle(v1_bundle, DIGEST, policy=ANYONE)
    tampers = _tampers(v1_bundle, rekor_v1)
    assert len(tampers) >= 11
    for name, tamper in tampers.items():
        candidate = Bundle.from_json(tamper().to_json())
        with pytest.raises(TransparencyLogError):
            verifier.verify_bundle(candidate, DIGEST, policy=ANYONE)
        del name


def test_a_bundle_without_an_entry_is_rejected_only_when_one_is_required(
    rekor_v1: RekorV1, v1_bundle: Bundle
) -> None:
    bare = Bundle(v1_bundle.pktoken, v1_bundle.signature)
    log_verifier([rekor_v1.trusted_log]).verify_bundle(bare, DIGEST, policy=ANYONE)
    strict = log_verifier([rekor_v1.trusted_log], require_tlog=True)
    with pytest.raises(TransparencyLogError, match="no entry in a pinned transparency log"):
        strict.verify_bundle(bare, DIGEST, policy=ANYONE)
    timed = log_verifier([rekor_v1.trusted_log], require_signing_time=True)
    with pytest.raises(TimestampError, match="no proven signing time"):
        timed.verify_bundle(bare, DIGEST, policy=ANYONE)


def test_an_entry_of_an_unpinned_log_proves_nothing(
    rekor_v1: RekorV1, rekor_v2: RekorV2, v1_bundle: Bundle
) -> None:
    verifier = log_verifier([rekor_v2.trusted_log], require_tlog=True)
    with pytest.raises(TransparencyLogError, match="which is not pinned"):
        verifier.verify_bundle(v1_bundle, DIGEST, policy=ANYONE)
    # Pinned under another origin (another tree of the same key): the checkpoint is refused.
    other_tree = TrustedLog.rekor_v1(rekor_v1.hostname, rekor_v1.tree_id + 1, rekor_v1.public_key)
    with pytest.raises(TransparencyLogError, match="origin"):
        log_verifier([other_tree]).verify_bundle(v1_bundle, DIGEST, policy=ANYONE)


def test_a_verifier_of_another_identity_still_checks_the_log(
    rekor_v1: RekorV1, v1_bundle: Bundle
) -> None:
    verifier: Verifier = log_verifier([rekor_v1.trusted_log])
    assert verifier.verify_bundle(v1_bundle, DIGEST, policy=ANYONE).log_entries


# -- attestations: DSSE envelopes -----------------------------------------------------------------


def _envelope(signer: Any) -> tuple[bytes, str, bytes, bytes]:
    from opkey.tlog.signature_entry import dsse_pae

    payload_type = "application/vnd.in-toto+json"
    payload = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": []}).encode()
    signature = signer.signing_key.sign_der(dsse_pae(payload_type, payload))
    envelope = json.dumps(
        {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": payload_type,
            "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
        }
    ).encode()
    return envelope, payload_type, payload, signature


@pytest.mark.parametrize("version", [1, 2])
def test_an_envelope_is_logged_the_same_way(
    version: int, rekor_v1: RekorV1, rekor_v2: RekorV2
) -> None:
    """Rekor v1 takes a dsse entry (it checks the envelope's signature over the PAE), Rekor v2
    a hashedrekord over the PAE; either records this envelope's signature, by this PK token."""
    from opkey.tlog.signature_entry import ExpectedSignature, check_entry_for, dsse_pae

    rekor = rekor_v1 if version == 1 else rekor_v2
    signer = fresh_signer(rekor.url)
    envelope, payload_type, payload, signature = _envelope(signer)
    entry = signer.log_signature(
        "dsse", b"", signature, envelope=envelope, payload_type=payload_type, payload=payload
    )
    logged = read_entry_body(entry.body)
    assert logged.kind == ("dsse" if version == 1 else "hashedrekord")
    expected = ExpectedSignature(
        dsse_pae(payload_type, payload), signature, signer.pktoken, payload=payload
    )
    assert check_entry_for(entry.body, expected).signature == signature
    with pytest.raises(TransparencyLogError):
        check_entry_for(entry.body, dataclasses.replace(expected, payload=b"{}", signed=b"x"))
