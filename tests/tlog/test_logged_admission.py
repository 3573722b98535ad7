"""The admission gate and images logged in real Rekor logs (v1 and v2).

An image in the loopback registry is signed with a GQ256 PK token of :data:`LOG_OP` and logged
in the session's Rekor log (``sign_image`` with a logging signer). The gate is built as
``opkey admission serve --policy … --jwks … --tlog-key … --tlog-origin … --require-tlog``
builds it (:func:`opkey.admission.service.build_gate`, through ``make_gate``), and judges a
review of a Pod running the image: admitted under the log's pin, refused when the gate pins
another log key or the same key under another origin, and refused when the layer's entry is
genuine but records another image, or its checkpoint was forged.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from opkey import Digest, KeyOptions, Signer, sign_image
from opkey.admission.gate import Gate, Judgement, Source
from opkey.cosign import (
    COSIGN_SIGNATURE,
    OPKEY_OSM,
    OPKEY_PKTOKEN,
    OPKEY_TLOG,
    simple_signing_payload,
)
from opkey.policy.file import LogPin
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import attach_signature
from opkey.tlog import LogPublicKey
from opkey.tlog.rekor import transparency_log_entry
from tests.admission.gates import judge, make_gate
from tests.tlog.servers import RekorV1, RekorV2
from tests.tlog.signing import LOG_OP, fresh_signer

pytestmark = [pytest.mark.rekor, pytest.mark.registry]
__all__ = ["make_gate"]  # fixtures

Rekor = RekorV1 | RekorV2
SUBJECT = "user-1234"  # LOG_OP's ``sub``


@pytest.fixture(params=["v1", "v2"])
def rekor(request: pytest.FixtureRequest) -> Rekor:
    """The session's Rekor v1 log, then its Rekor v2 log."""
    log: Rekor = request.getfixturevalue(f"rekor_{request.param}")
    return log


def _pem(key: LogPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pin(rekor: Rekor, directory: Path, *, key: bytes | None = None, origin: str = "") -> LogPin:
    """``--tlog-key`` (the log's key unless ``key``) and ``--tlog-origin`` (its own unless
    ``origin``), as the gate is given them."""
    path = directory / f"log-{len(list(directory.glob('log-*.pem')))}.pem"
    path.write_bytes(key if key is not None else _pem(rekor.public_key))
    return LogPin(path, origin or rekor.trusted_log.origin)


def _policy(directory: Path) -> Path:
    """A ``--policy`` file trusting LOG_OP (GQ-bound tokens) and requiring its subject."""
    path = directory / "policy.toml"
    path.write_text(
        f"""version = 1

[[issuers]]
issuer = "{LOG_OP.issuer}"
commitment = "gq-bound"
require_gq = true
expiry = "never"

[[signers]]
name = "dev"
all_of = [{{ issuer = "{LOG_OP.issuer}" }}, {{ subject = "{SUBJECT}" }}]
"""
    )
    return path


def _keys(directory: Path, *pins: LogPin) -> KeyOptions:
    """LOG_OP's keys pinned (``--jwks``), the logs ``pins`` pinned, an entry required."""
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps(LOG_OP.keyset.to_dict()))
    return KeyOptions(jwks_file=jwks, tlogs=pins, require_tlog=True)


def _refused(result: Judgement) -> str:
    assert result.response is not None
    assert not result.response.allowed, "admitted"
    assert result.response.code == 403
    assert [j.source for j in result.images] == [Source.VERIFIED]
    return result.response.message or ""


def test_a_logged_image_is_admitted_under_its_log_and_refused_under_another(
    rekor: Rekor,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    tmp_path: Path,
    make_gate: Callable[..., Gate],
) -> None:
    """Admitted with the log pinned and an entry required; the same image is refused by a
    gate pinning another key, or the log's key under another origin, naming the log."""
    signed = sign_image(registry_client, registry_image, fresh_signer(rekor.url))
    policy = _policy(tmp_path)

    admitted = judge(make_gate(policy, keys=_keys(tmp_path, _pin(rekor, tmp_path))), str(signed))
    assert admitted.response is not None
    assert admitted.response.allowed, admitted.response.message
    ((judged),) = admitted.images
    assert (judged.source, judged.digest) == (Source.VERIFIED, signed.digest)

    # Another log's key: the entry is of a log the gate does not pin, and none other is there.
    impostor = _pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    other_key = _pin(rekor, tmp_path, key=impostor)
    message = _refused(judge(make_gate(policy, keys=_keys(tmp_path, other_key)), str(signed)))
    assert "no entry in a pinned transparency log, and one is required" in message, message
    assert f"from log {rekor.log_id.hex()[:16]}…, which is not pinned" in message, message

    # The log's own key under another origin. Rekor v1: the same log ID (from the key alone),
    # but the entry's checkpoint names the log's origin. Rekor v2: the log ID is derived from
    # the origin too, so the entry's log is not pinned.
    if isinstance(rekor, RekorV1):
        origin = f"rekor.other.example - {rekor.tree_id}"
        expected = f"is not the pinned log's {origin!r}"
    else:
        origin = "rekor.other.example"
        expected = f"from log {rekor.log_id.hex()[:16]}…, which is not pinned"
    other_origin = _pin(rekor, tmp_path, origin=origin)
    message = _refused(judge(make_gate(policy, keys=_keys(tmp_path, other_origin)), str(signed)))
    assert expected in message, message
    if not isinstance(rekor, RekorV1):
        # A wrong origin reads apart from a wrong key: the pinned origin is named.
        assert f"pinned: {origin!r} id " in message, message


#: A Sigstore ``TransparencyLogEntry`` (protobuf JSON), as the layer's ``dev.opkey/tlog``.
EntryJson = dict[str, Any]


def _attach_with_entry(
    client: RegistryClient,
    image: ImageReference,
    rekor: Rekor,
    entry_for: Callable[[Signer, bytes, bytes], EntryJson],
) -> None:
    """Sign ``image`` by hand as ``sign_image`` does (a logging signer of ``rekor``), and attach
    the layer with the entry ``entry_for(signer, payload, signature)`` gives."""
    signer = fresh_signer(rekor.url)
    payload = simple_signing_payload(image.cosign_name, image.require_digest())
    signature = signer.signing_key.sign_der(payload)
    header, _, osm = signer.sign(payload).split(".")
    annotations = {
        COSIGN_SIGNATURE: base64.b64encode(signature).decode(),
        OPKEY_PKTOKEN: signer.pktoken.to_compact(),
        OPKEY_OSM: f"{header}..{osm}",
        OPKEY_TLOG: json.dumps(entry_for(signer, payload, signature)),
    }
    attach_signature(client, image, payload, annotations)


def _entry(signer: Signer, payload: bytes, signature: bytes) -> EntryJson:
    """The genuine entry of ``signature`` over ``payload``, logged now."""
    return transparency_log_entry(signer.log_signature("hashedrekord", payload, signature))


def _entry_of_another_image(signer: Signer, payload: bytes, signature: bytes) -> EntryJson:
    """A genuine entry of the same log, by the same key and PK token, for another image."""
    other = ImageReference.parse(f"registry.example/other@{Digest.of_bytes(b'other image')}")
    elsewhere = simple_signing_payload(other.cosign_name, other.require_digest())
    return _entry(signer, elsewhere, signer.signing_key.sign_der(elsewhere))


def _entry_under_a_forged_checkpoint(signer: Signer, payload: bytes, signature: bytes) -> EntryJson:
    """The signature's own entry, its checkpoint (and the proof's root hash with it) naming
    another root hash under the log's signature: what a forger of a tree would show."""
    entry = _entry(signer, payload, signature)
    proof = dict(entry["inclusionProof"])
    root = bytearray(base64.b64decode(proof["rootHash"]))
    root[0] ^= 1
    forged = base64.b64encode(bytes(root)).decode()
    envelope: str = proof["checkpoint"]["envelope"]
    origin, size, real, rest = envelope.split("\n", 3)
    assert real == proof["rootHash"]
    proof["rootHash"] = forged
    proof["checkpoint"] = {"envelope": "\n".join([origin, size, forged, rest])}
    return {**entry, "inclusionProof": proof}


@pytest.mark.parametrize(
    ("entry_for", "reason"),
    [
        (_entry, None),
        (_entry_of_another_image, r"layer 0: the log entry is for other signed bytes"),
        (
            _entry_under_a_forged_checkpoint,
            r"layer 0: checkpoint: the signature by rekor-v[12]\.opkey\.test "
            r"\(key ID [0-9a-f]{8}\) does not verify",
        ),
    ],
    ids=["its own entry", "another image's entry", "a forged checkpoint"],
)
def test_the_gate_checks_the_entry_it_is_shown(
    entry_for: Callable[[Signer, bytes, bytes], EntryJson],
    reason: str | None,
    rekor: Rekor,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    tmp_path: Path,
    make_gate: Callable[..., Gate],
) -> None:
    """Not only that an entry is there: a genuine entry of the same log for another image, or
    the right entry under a forged checkpoint, is refused under the log's own pin (the layer
    built by hand is admitted with its own entry, so it is the entry that is refused)."""
    _attach_with_entry(registry_client, registry_image, rekor, entry_for)
    gate = make_gate(_policy(tmp_path), keys=_keys(tmp_path, _pin(rekor, tmp_path)))
    result = judge(gate, str(registry_image))
    if reason is None:
        assert result.response is not None
        assert result.response.allowed, result.response.message
        return
    message = _refused(result)
    assert re.search(reason, message), message
