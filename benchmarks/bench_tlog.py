"""Transparency-log benchmarks: the offline check of one log entry, and a monitor's floor.

*One entry*: ``verify_log_entry`` on a real Rekor v1 entry (recorded from the tests' own
rekor-server, ``tests/data/tlog/rekor-v1-entry.json``: a 12-entry tree, 4 proof hashes) and a
real Rekor v2 entry, from the parsed value and from the JSON text. Each is set beside

* its primitive floor: the cryptography it cannot skip, timed with pyca/cryptography and
  hashlib on the same inputs (the checkpoint's signature, the SET's signature on v1, the leaf
  hash and one node hash per proof step);
* one ES256 verify over a signed payload, the signature the log entry vouches for: the ratio
  says what a log check adds to a verification.

*A monitor's floor*: on a tree of 2**16 entries built here (RFC 6962, reference construction),
how many checkpoint advances (parse and verify a new ECDSA-signed checkpoint, then a
consistency proof from an older one) and how many entry inclusion checks (leaf hash and a
16-hash audit path against a verified root) one core does per second, each beside its floor
(the checkpoint's signature verify and the node hashes the proof needs; the leaf hash and the
path's node hashes).

*An entry next to the signature it protects*: a whole logged bundle (recorded from the tests'
own logs, ``tests/data/tlog/logged-signatures.json``), parsed and verified offline with its
entry required, beside the same bundle without the entry; and a whole logged image layer
(its annotations) beside the same layer without them. Cold: a fresh verifier each time (the
GQ256 PK token verified too); warm: one verifier, the PK token cached, so the entry's own cost
shows.

*Monitoring*: ``monitor_log`` over 64 entries with distinct GQ256 PK tokens (a Rekor v1 log
built here: bodies as Rekor canonicalizes them, SETs, a signed checkpoint), every entry claiming
the watched identity, so each costs its PK token's verification, the signature's, the SET's and
the tree hashing: entries checked per second, beside those primitives timed alone.

Run alone with ``python -m benchmarks.bench_tlog`` or through ``benchmarks/run.py --only tlog``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from benchmarks.harness import Figure, best_time, ratio_figure
from opkey import (
    Bundle,
    CommitmentType,
    CosignLayerEvidence,
    Digest,
    IssuerConfig,
    KeySet,
    PinnedKeys,
    Requirement,
    Trust,
    TrustedIssuer,
    Verifier,
)
from opkey.cosign import COSIGN_BUNDLE_ANNOTATION, COSIGN_CERTIFICATE, OPKEY_TLOG
from opkey.policy.claims import AllOf, ClaimGlob, Issuer, UnsafeNoPolicy
from opkey.tlog import (
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    LogEntry,
    SignedCheckpoint,
    SignedEntryTimestamp,
    TrustedLog,
    entry_from_rekor_v1,
    entry_from_transparency_log_entry,
    leaf_hash,
    load_log_public_key,
    verify_log_entry,
)
from opkey.tlog.certificate import pktoken_certificate
from opkey.tlog.client import ReadEntry
from opkey.tlog.merkle import CompactRange
from opkey.tlog.monitor import Watch, monitor_log, policy_matcher
from opkey.tlog.signature_entry import EntryRequest
from tests.tlog.reference_tree import ReferenceTree

__all__ = ["run"]

_DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "tlog"
_ECDSA = ec.ECDSA(hashes.SHA256())
_MONITOR_TREE = 2**16


def _paired(
    ours: Callable[[], object], floor: Callable[[], object], *, number: int, rounds: int = 25
) -> tuple[float, float]:
    """Seconds per call of ``ours`` and of ``floor``, batches interleaved so that a busy machine
    slows both sides alike; the best batch of each."""
    ours()
    floor()
    best_ours = best_floor = float("inf")
    for _ in range(rounds):
        best_ours = min(best_ours, best_time(ours, number=number, repeat=1))
        best_floor = min(best_floor, best_time(floor, number=number, repeat=1))
    return best_ours, best_floor


def _entry_floor(entry: LogEntry, log: TrustedLog) -> Callable[[], None]:
    """The signature checks and hashes of one entry check, nothing else."""
    key = log.key.public_key
    note = entry.checkpoint.note
    text, signature = note.text.encode(), note.signatures[0].signature
    body, path = entry.body, entry.inclusion_proof.hashes
    set_payload = set_signature = None
    if entry.signed_entry_timestamp is not None and entry.integrated_time is not None:
        set_payload = SignedEntryTimestamp(
            entry.body, entry.integrated_time, entry.log_id, entry.log_index, b"-"
        ).payload()
        set_signature = entry.signed_entry_timestamp
    sha256 = hashlib.sha256

    def floor() -> None:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, text)
        else:
            key.verify(signature, text, _ECDSA)
            if set_payload is not None and set_signature is not None:
                key.verify(set_signature, set_payload, _ECDSA)
        node = sha256(b"\x00" + body).digest()
        for sibling in path:
            node = sha256(b"\x01" + sibling + node).digest()

    return floor


def _es256_verify() -> Callable[[], None]:
    """One ES256 verify of a simple-signing-sized payload (the signature a log entry covers)."""
    key = ec.generate_private_key(ec.SECP256R1())
    payload = b'{"critical":{"identity":{"docker-reference":"registry.example/app"}}}' * 3
    signature = key.sign(payload, _ECDSA)
    public = key.public_key()
    return lambda: public.verify(signature, payload, _ECDSA)


def _from_json(
    text: str, parse: Callable[[object], LogEntry], log: TrustedLog
) -> Callable[[], object]:
    return lambda: verify_log_entry(parse(json.loads(text)), log)


def _entry_figures() -> list[Figure]:
    es256_verify = _es256_verify()
    figures: list[Figure] = []
    v1 = json.loads((_DATA / "rekor-v1-entry.json").read_text())
    v2 = json.loads((_DATA / "rekor-v2-entry.json").read_text())
    cases = [
        (
            "v1",
            TrustedLog.rekor_v1(
                v1["hostname"], v1["tree_id"], load_log_public_key(v1["public_key_pem"].encode())
            ),
            json.dumps(v1["entry"]),
            entry_from_rekor_v1,
        ),
        (
            "v2",
            TrustedLog.rekor_v2(v2["origin"], load_log_public_key(v2["public_key_pem"].encode())),
            json.dumps(v2["entry"]),
            entry_from_transparency_log_entry,
        ),
    ]
    for version, log, text, parse in cases:
        entry = parse(json.loads(text))
        check = functools.partial(verify_log_entry, entry, log)
        checked, floor = _paired(check, _entry_floor(entry, log), number=60)
        from_json, es256 = _paired(_from_json(text, parse, log), es256_verify, number=60)
        what = "checkpoint+SET+inclusion" if version == "v1" else "checkpoint+inclusion"
        figures.append(
            ratio_figure(f"tlog_{version}_entry_check_vs_primitives", checked, floor, target=1.3)
        )
        figures.append(
            Figure(
                f"tlog_{version}_entry_check_vs_es256_verify",
                round(checked / es256, 3),
                "ratio",
                sides={
                    "entry_check_us": round(checked * 1e6, 1),
                    "entry_from_json_us": round(from_json * 1e6, 1),
                    "es256_verify_us": round(es256 * 1e6, 1),
                    "checks": what,
                    "proof_hashes": len(entry.inclusion_proof.hashes),
                },
            )
        )
    return figures


def _signed_checkpoint(tree: ReferenceTree, size: int, key: ec.EllipticCurvePrivateKey,
                       log: TrustedLog) -> str:  # fmt: skip
    text = Checkpoint(log.origin, size, tree.root(size)).text()
    line = base64.b64encode(log.key.key_id + key.sign(text.encode(), _ECDSA)).decode()
    return f"{text}\n— {log.key.name} {line}\n"


def _consistency_hashes(old: int, new: int, proof_length: int) -> int:
    """How many node hashes RFC 9162 §2.1.4.2 computes from ``old`` to ``new``: its control
    flow with the hashing left out (two per step that climbs both trees, one otherwise)."""
    steps = proof_length
    if old & (old - 1) == 0:
        steps += 1
    fn, sn, count = old - 1, new - 1, 0
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    for _ in range(steps - 1):
        if fn & 1 or fn == sn:
            count += 2
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            count += 1
        fn, sn = fn >> 1, sn >> 1
    return count


def _monitor_figures() -> list[Figure]:
    rng = random.Random(7)
    tree = ReferenceTree([rng.randbytes(rng.randrange(200, 600)) for _ in range(_MONITOR_TREE)])
    key = ec.generate_private_key(ec.SECP256R1())
    log = TrustedLog.rekor_v1("rekor.monitor.test", 1, key.public_key())
    size = _MONITOR_TREE
    root = tree.root()
    olds = [rng.randrange(size // 2, size) for _ in range(20)]
    advances = [
        (
            tree.root(o),
            o,
            tuple(tree.consistency_proof(o)),
            _signed_checkpoint(tree, size, key, log),
        )
        for o in olds
    ]
    public = key.public_key()

    def advance_all() -> None:
        for old_root, old, proof, envelope in advances:
            new = SignedCheckpoint.parse(envelope).verify([log.key], origin=log.origin)
            ConsistencyProof(old, new.tree_size, proof).verify(old_root, new.root_hash)

    notes = [SignedCheckpoint.parse(e).note for *_, e in advances]
    raw = [(n.text.encode(), n.signatures[0].signature) for n in notes]
    hash_count = sum(_consistency_hashes(old, size, len(p)) for _, old, p, _ in advances)
    blob = b"\x01" + bytes(64)

    def advance_floor() -> None:
        for text, signature in raw:
            public.verify(signature, text, _ECDSA)
        for _ in range(hash_count):
            hashlib.sha256(blob).digest()

    indexes = [rng.randrange(size) for _ in range(200)]
    inclusions = [
        (tree.entries[i], InclusionProof(i, size, tuple(tree.inclusion_proof(i)))) for i in indexes
    ]

    def include_all() -> None:
        for body, proof in inclusions:
            proof.verify(leaf_hash(body), root)

    def include_floor() -> None:
        for body, proof in inclusions:
            node = hashlib.sha256(b"\x00" + body).digest()
            for sibling in proof.hashes:
                node = hashlib.sha256(b"\x01" + sibling + node).digest()

    advance, advance_min = (
        t / len(advances) for t in _paired(advance_all, advance_floor, number=3)
    )
    include, include_min = (
        t / len(inclusions) for t in _paired(include_all, include_floor, number=5)
    )
    return [
        Figure(
            "tlog_monitor_checkpoint_advances_per_s",
            round(1 / advance),
            "checks/s",
            sides={
                "per_check_us": round(advance * 1e6, 1),
                "op": "parse+verify ECDSA checkpoint, consistency proof to 2**16 from ≥ 2**15",
            },
        ),
        ratio_figure(
            "tlog_monitor_checkpoint_advance_vs_primitives", advance, advance_min, target=1.5
        ),
        Figure(
            "tlog_monitor_inclusion_checks_per_s",
            round(1 / include),
            "checks/s",
            sides={
                "per_check_us": round(include * 1e6, 1),
                "op": "leaf hash + 16-hash audit path against a verified root (tree of 2**16)",
            },
        ),
        ratio_figure("tlog_monitor_inclusion_check_vs_hashing", include, include_min, target=1.5),
    ]


def _logged_trust(data: dict[str, Any], version: str, *, logged: bool) -> Trust:
    provider = data["provider"]
    config = IssuerConfig(
        issuer=provider["issuer"],
        commitment=CommitmentType.GQ_BOUND,
        require_gq=True,
        algorithms=frozenset({"GQ256"}),
    )
    keys = PinnedKeys({provider["issuer"]: KeySet.from_dict(provider["jwks"])})
    pin = data[version]["log"]
    log = TrustedLog.pinned(pin["origin"], load_log_public_key(pin["public_key_pem"].encode()))
    return Trust(
        (TrustedIssuer(config, (keys,)),),
        transparency_logs=(log,) if logged else (),
        require_tlog=logged,
    )


_Maker = Callable[..., Callable[[], object]]
_TLOG_ANNOTATIONS = (OPKEY_TLOG, COSIGN_CERTIFICATE, COSIGN_BUNDLE_ANNOTATION)


def _bundle_check(
    trust: Trust, text: str, digest: Digest, verifier: Verifier | None = None
) -> Callable[[], object]:
    """Parse and verify a bundle (a fresh verifier each time unless one is given)."""
    policy = UnsafeNoPolicy()

    def check() -> object:
        used = verifier or Verifier(trust)
        return used.verify_bundle(Bundle.from_json(text), digest, policy=policy)

    return check


def _layer_check(
    trust: Trust,
    payload: bytes,
    annotations: dict[str, str],
    digest: Digest,
    verifier: Verifier | None = None,
) -> Callable[[], object]:
    """Verify one image signature layer and decide a one-policy requirement over it."""
    requirement = Requirement.of(UnsafeNoPolicy())

    def check() -> object:
        used = verifier or Verifier(trust)
        verdict = used.verdict(requirement, digest, [CosignLayerEvidence(payload, annotations)])
        verdict.raise_if_rejected()
        return verdict

    return check


def _logged_signature_figures() -> list[Figure]:
    """Whole logged bundles and layers, beside the same signatures without their entries."""
    data = json.loads((_DATA / "logged-signatures.json").read_text())
    digest = Digest(data["digest"])
    figures: list[Figure] = []
    for version in ("v1", "v2"):
        logged = _logged_trust(data, version, logged=True)
        bare = _logged_trust(data, version, logged=False)
        document = data[version]["bundle"]
        bare_document = {k: v for k, v in document.items() if k != "tlogEntries"}
        layer = data[version]["layer"]
        payload = base64.b64decode(layer["payload"])
        annotations = layer["annotations"]
        bare_annotations = {k: v for k, v in annotations.items() if k not in _TLOG_ANNOTATIONS}
        sides: dict[
            str, tuple[Callable[..., Callable[[], object]], tuple[Any, ...], tuple[Any, ...]]
        ]
        sides = {
            "bundle": (
                _bundle_check,
                (json.dumps(document), digest),
                (json.dumps(bare_document), digest),
            ),
            "layer": (
                _layer_check,
                (payload, annotations, digest),
                (payload, bare_annotations, digest),
            ),
        }
        for what, (make, logged_args, bare_args) in sides.items():
            cold_logged, cold_bare = _paired(
                make(logged, *logged_args), make(bare, *bare_args), number=15, rounds=8
            )
            warm_logged, warm_bare = _paired(
                make(logged, *logged_args, Verifier(logged)),
                make(bare, *bare_args, Verifier(bare)),
                number=40,
                rounds=8,
            )
            figures.append(
                ratio_figure(
                    f"tlog_{version}_logged_{what}_vs_unlogged_cold",
                    cold_logged,
                    cold_bare,
                    target=1.5,
                    ours_label="logged",
                    floor_label="unlogged",
                )
            )
            figures.append(
                Figure(
                    f"tlog_{version}_logged_{what}_vs_unlogged_warm",
                    round(warm_logged / warm_bare, 3),
                    "ratio",
                    sides={
                        "logged_us": round(warm_logged * 1e6, 1),
                        "unlogged_us": round(warm_bare * 1e6, 1),
                        "entry_us": round((warm_logged - warm_bare) * 1e6, 1),
                        "note": "PK token cached: what checking the entry adds",
                    },
                )
            )
    return figures


_MONITORED = 64


class _MemoryLog:
    """A Rekor v1 log held in memory: what ``RekorV1Reader`` would read from a server."""

    def __init__(self, checkpoint: str, entries: list[ReadEntry]) -> None:
        self._checkpoint, self._entries = checkpoint, entries

    def checkpoint(self) -> SignedCheckpoint:
        return SignedCheckpoint.parse(self._checkpoint)

    def consistency(self, old_size: int, new_size: int) -> ConsistencyProof | None:
        return None

    def entries(self, start: int, end: int) -> Iterator[ReadEntry]:
        return iter(self._entries[start:end])


def _monitoring_figures() -> list[Figure]:
    """Entries checked per second by ``monitor_log``, PK token verification included."""
    from tests.helpers import MiniOP

    op = MiniOP(issuer="https://ci.bench.test")
    log_key = ec.generate_private_key(ec.SECP256R1())
    log = TrustedLog.rekor_v1("rekor.bench.test", 1, log_key.public_key())
    reads: list[ReadEntry] = []
    floors: list[Callable[[], None]] = []
    tree = CompactRange()
    for index in range(_MONITORED):
        pktoken, key = op.pktoken(CommitmentType.GQ_BOUND, sub=f"repo:bench/app:run:{index}")
        payload = b"payload of run %d" % index
        signature = key.sign_der(payload)
        request = EntryRequest.hashedrekord(payload, signature, pktoken_certificate(pktoken, key))
        body = json.dumps(request.rekor_v1(), sort_keys=True, separators=(",", ":")).encode()
        integrated = pktoken.claims["iat"] + 10
        set_payload = SignedEntryTimestamp(body, integrated, log.log_id, index, b"-").payload()
        sets = log_key.sign(set_payload, _ECDSA)
        reads.append(ReadEntry(index, body, integrated, sets))
        tree = tree.append(leaf_hash(body))
        floors.append(_entry_primitives(pktoken, op, request, signature, set_payload, sets, log))
    text = Checkpoint(log.origin, tree.size, tree.root()).text()
    line = base64.b64encode(log.key.key_id + log_key.sign(text.encode(), _ECDSA)).decode()
    reader = _MemoryLog(f"{text}\n— {log.key.name} {line}\n", reads)
    config = op.config(CommitmentType.GQ_BOUND)
    trust = Trust((TrustedIssuer(config, (PinnedKeys({op.issuer: op.keyset}),)),))
    watched = AllOf([Issuer(op.issuer), ClaimGlob("sub", "repo:bench/app:**")])

    def monitor() -> None:
        watch = Watch(policy_matcher([watched]), Verifier(trust))
        report = monitor_log(reader, log, None, watch)
        assert len(report.watched) == _MONITORED, report.spoofed[:1]

    def floor() -> None:
        for primitive in floors:
            primitive()

    ours, minimum = _paired(monitor, floor, number=1, rounds=5)
    per_entry, per_floor = ours / _MONITORED, minimum / _MONITORED
    return [
        Figure(
            "tlog_monitor_entries_checked_per_s",
            round(1 / per_entry),
            "entries/s",
            sides={
                "per_entry_us": round(per_entry * 1e6, 1),
                "op": "body, certificate and PK token parsed; GQ256 PK token, ES256 signature "
                "and SET verified; leaf hashed into the tree; distinct tokens (no cache hits)",
            },
        ),
        ratio_figure("tlog_monitor_entry_vs_primitives", per_entry, per_floor, target=1.5),
    ]


def _entry_primitives(
    pktoken: Any,
    op: Any,
    request: EntryRequest,
    signature: bytes,
    set_payload: bytes,
    set_signature: bytes,
    log: TrustedLog,
) -> Callable[[], None]:
    """The cryptography one monitored entry cannot skip: GQ256 and CIC verification, the
    entry's ECDSA signature and its SET, the leaf hash (pyca/cryptography, opkey's GQ)."""
    from cryptography.hazmat.primitives.asymmetric import utils

    from opkey import gq
    from opkey.keys import verify_signature

    op_jws = pktoken.op.jws(pktoken.payload_b64)
    cic = pktoken.cic_claims
    cic_jws = pktoken.cic.jws(pktoken.payload_b64)
    provider = op.public_jwk
    entry_key = request.certificate  # parsed below once, as the monitor must per entry
    from cryptography import x509

    public = x509.load_der_x509_certificate(entry_key).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    log_key = log.key.public_key
    assert isinstance(log_key, ec.EllipticCurvePublicKey)
    digest = request.digest
    prehashed = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    body = json.dumps(request.rekor_v1(), sort_keys=True, separators=(",", ":")).encode()

    def primitives() -> None:
        gq.verify_jwt(op_jws, provider)
        verify_signature(cic.alg, cic.upk, cic_jws.signing_input, pktoken.cic.signature)
        public.verify(signature, digest, prehashed)
        log_key.verify(set_signature, set_payload, _ECDSA)
        hashlib.sha256(b"\x00" + body).digest()

    return primitives


def run(context: dict[str, float] | None = None) -> list[Figure]:
    """Every transparency-log figure."""
    return (
        _entry_figures() + _monitor_figures() + _logged_signature_figures() + _monitoring_figures()
    )


if __name__ == "__main__":
    for figure in run():
        print(figure.to_dict())
    sys.exit(0)
