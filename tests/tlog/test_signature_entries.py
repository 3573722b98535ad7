"""The entry opkey logs, offline: the PK-token certificate's layout (spec/transparency-log.md
§8), the proposed entries for Rekor v1 and v2, reading bodies back, the check of an entry
against a signature, the bundle's ``tlogEntries``, cosign's bundle annotation, compact ranges
and log pins."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from opkey import (
    Bundle,
    CommitmentType,
    ConfigError,
    Digest,
    FormatError,
    PKToken,
    Signer,
    SigningKey,
    TransparencyLogError,
)
from opkey.policy.file import LogPin, TlogSettings, parse_policy_file
from opkey.tlog import TrustedLog, entry_from_rekor_v1, entry_from_transparency_log_entry
from opkey.tlog.certificate import (
    CERTIFICATE_NAME,
    FULCIO_ISSUER_V1,
    pktoken_certificate,
    read_certificate,
)
from opkey.tlog.merkle import CompactRange
from opkey.tlog.rekor import cosign_rekor_bundle, transparency_log_entry
from opkey.tlog.signature_entry import (
    EntryRequest,
    ExpectedSignature,
    check_entry_for,
    der_signature,
    dsse_pae,
    read_entry_body,
)
from tests.helpers import MiniOP
from tests.tlog.reference_tree import ReferenceTree
from tests.tlog.test_recorded_entries import V1, V2, v1_log

OP = MiniOP()
_BASE64_ISH = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n -_"


def _token(**claims: Any) -> tuple[PKToken, SigningKey]:
    return OP.pktoken(CommitmentType.GQ_BOUND, **claims)


def test_the_certificate_layout_is_the_specified_one() -> None:
    pktoken, key = _token(sub="repo:octo/app:ref:refs/heads/main")
    der = pktoken_certificate(pktoken, key)
    assert der == pktoken_certificate(pktoken, key)  # deterministic (RFC 6979)
    cert = x509.load_der_x509_certificate(der)
    assert cert.version is x509.Version.v3
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERTIFICATE_NAME)])
    assert cert.subject == name
    assert cert.issuer == name
    serial = int.from_bytes(hashlib.sha256(pktoken.to_json()).digest()[:16], "big") | 1
    assert cert.serial_number == serial
    assert int(cert.not_valid_before_utc.timestamp()) == pktoken.claims["iat"]
    assert int(cert.not_valid_after_utc.timestamp()) == pktoken.claims["exp"]
    assert cert.public_key() == key.private_key.public_key()
    assert [e.oid for e in cert.extensions] == [
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        FULCIO_ISSUER_V1,
    ]
    assert [e.critical for e in cert.extensions] == [True, True, False, False, False, False]
    assert cert.extensions[0].value.ca is False
    assert cert.extensions[1].value.digital_signature
    assert list(cert.extensions[2].value) == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert cert.extensions[3].value.digest == pktoken.to_json()
    assert cert.extensions[4].value.get_values_for_type(x509.DNSName) == [pktoken.claims["sub"]]
    assert cert.extensions[5].value.value == pktoken.issuer.encode()
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    read = read_certificate(der)
    assert read.pktoken is not None
    assert read.pktoken.to_json() == pktoken.to_json()
    assert read.claimed_issuer == pktoken.issuer
    assert read.key_is(pktoken.cic_claims.upk)


def test_only_gq256_es256_tokens_get_a_certificate() -> None:
    rs256, key = OP.pktoken()
    with pytest.raises(ConfigError, match="only GQ256"):
        pktoken_certificate(rs256, key)
    eddsa, ed_key = OP.pktoken(CommitmentType.GQ_BOUND, user_alg="EdDSA")
    with pytest.raises(ConfigError, match="ES256"):
        pktoken_certificate(eddsa, ed_key)
    _, other_key = _token()
    with pytest.raises(ConfigError, match="not the PK token's"):
        pktoken_certificate(_token()[0], other_key)


def test_requests_and_bodies_for_both_apis() -> None:
    pktoken, key = _token()
    cert = pktoken_certificate(pktoken, key)
    signed = b"header.payload"
    signature = key.sign_der(signed)
    request = EntryRequest.hashedrekord(signed, signature, cert)
    v1 = request.rekor_v1()
    assert v1["kind"] == "hashedrekord"
    assert v1["spec"]["data"]["hash"] == {
        "algorithm": "sha256",
        "value": hashlib.sha256(signed).hexdigest(),
    }
    pem = base64.b64decode(v1["spec"]["signature"]["publicKey"]["content"])
    assert x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER) == cert
    v2 = request.rekor_v2()["hashedRekordRequestV002"]
    assert base64.b64decode(v2["digest"]) == hashlib.sha256(signed).digest()
    assert v2["signature"]["verifier"]["keyDetails"] == "PKIX_ECDSA_P256_SHA_256"
    assert base64.b64decode(v2["signature"]["verifier"]["x509Certificate"]["rawBytes"]) == cert
    # What Rekor v1 stores is the proposed entry, canonicalized: it reads back the same.
    body = json.dumps(v1, separators=(",", ":"), sort_keys=True).encode()
    logged = read_entry_body(body)
    assert (logged.kind, logged.version) == ("hashedrekord", "0.0.1")
    assert logged.digest == hashlib.sha256(signed).digest()
    assert logged.signature == signature
    assert logged.certificate == cert
    expected = ExpectedSignature(signed, signature, pktoken)
    assert check_entry_for(body, expected).certificate == cert
    other, _ = OP.pktoken(CommitmentType.GQ_BOUND, signing_key=key, sub="another run")
    with pytest.raises(TransparencyLogError, match="another PK token"):
        check_entry_for(body, dataclasses.replace(expected, pktoken=other))
    with pytest.raises(TransparencyLogError, match="other signed bytes"):
        check_entry_for(body, dataclasses.replace(expected, signed=b"other"))
    with pytest.raises(TransparencyLogError, match="another signature"):
        check_entry_for(body, dataclasses.replace(expected, signature=key.sign_der(signed)))


def test_a_bare_key_entry_proves_no_identity() -> None:
    (value,) = V1["entry"].values()
    body = base64.b64decode(value["body"])
    logged = read_entry_body(body)
    assert logged.certificate is not None  # the recorded entry has a plain test certificate
    cert = read_certificate(logged.certificate)
    assert cert.pktoken is None
    pktoken, _ = _token()
    with pytest.raises(TransparencyLogError):
        check_entry_for(body, ExpectedSignature(b"x", logged.signature, pktoken))


def test_v2_bodies_are_read() -> None:
    body = base64.b64decode(V2["entry"]["canonicalizedBody"])
    logged = read_entry_body(body)
    assert (logged.kind, logged.version) == ("hashedrekord", "0.0.2")
    assert logged.certificate is not None


@pytest.mark.parametrize(
    "body",
    [
        b'{"apiVersion":"0.0.1","kind":"rekord","spec":{}}',
        b'{"apiVersion":"0.0.9","kind":"hashedrekord","spec":{}}',
        b'{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{}}}',
        b'{"apiVersion":"0.0.1","kind":"hashedrekord","kind":"dsse","spec":{}}',
        b"[]",
    ],
)
def test_unreadable_bodies_are_format_errors(body: bytes) -> None:
    with pytest.raises(FormatError):
        read_entry_body(body)


def test_dsse_requests() -> None:
    pktoken, key = _token()
    cert = pktoken_certificate(pktoken, key)
    payload = b'{"_type":"https://in-toto.io/Statement/v1"}'
    pae = dsse_pae("application/vnd.in-toto+json", payload)
    assert pae == b"DSSEv1 28 application/vnd.in-toto+json 43 " + payload
    signature = key.sign_der(pae)
    envelope = json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"sig": base64.b64encode(signature).decode()}],
        }
    ).encode()
    request = EntryRequest.dsse(envelope, "application/vnd.in-toto+json", payload, signature, cert)
    assert request.rekor_v1()["kind"] == "dsse"
    assert request.rekor_v1()["spec"]["proposedContent"]["envelope"] == envelope.decode()
    assert request.recorded_digest("dsse") == hashlib.sha256(payload).digest()
    assert request.recorded_digest("hashedrekord") == hashlib.sha256(pae).digest()
    # Rekor v2 has only hashedrekord: the envelope is logged as a signature over its PAE.
    v2 = request.rekor_v2()["hashedRekordRequestV002"]
    assert base64.b64decode(v2["digest"]) == hashlib.sha256(pae).digest()


def test_der_signatures_from_jws() -> None:
    _, key = _token()
    raw = key.sign(b"data")
    der = der_signature(raw)
    public = key.private_key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, b"data", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(FormatError):
        der_signature(raw[:63])


def test_transparency_log_entries_round_trip() -> None:
    v1 = entry_from_rekor_v1(V1["entry"])
    document = transparency_log_entry(v1)
    assert document["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert document["logIndex"] == str(v1.log_index)
    assert entry_from_transparency_log_entry(document) == v1
    assert entry_from_transparency_log_entry(json.loads(json.dumps(document))) == v1
    v2 = entry_from_transparency_log_entry(V2["entry"])
    again = transparency_log_entry(v2)
    assert "inclusionPromise" not in again
    assert (
        again["inclusionProof"]["checkpoint"]["envelope"]
        == (V2["entry"]["inclusionProof"]["checkpoint"]["envelope"])
    )
    assert again["canonicalizedBody"] == V2["entry"]["canonicalizedBody"]


def test_the_cosign_bundle_annotation_is_gos_marshalling() -> None:
    entry = entry_from_rekor_v1(V1["entry"])
    text = cosign_rekor_bundle(entry)
    pattern = (
        r'\{"SignedEntryTimestamp":"[A-Za-z0-9+/=]+","Payload":\{"body":"[A-Za-z0-9+/=]+",'
        r'"integratedTime":\d+,"logIndex":\d+,"logID":"[0-9a-f]{64}"\}\}'
    )
    assert re.fullmatch(pattern, text)
    document = json.loads(text)
    (value,) = V1["entry"].values()
    assert document["Payload"]["body"] == value["body"]
    assert document["SignedEntryTimestamp"] == value["verification"]["signedEntryTimestamp"]
    assert document["Payload"]["logID"] == value["logID"]
    v2 = entry_from_transparency_log_entry(V2["entry"])
    with pytest.raises(FormatError, match="signed entry timestamp"):
        cosign_rekor_bundle(v2)


def test_bundles_carry_log_entries_strictly() -> None:
    pktoken, key = _token()
    bundle = Signer(pktoken, key).sign_digest(Digest("sha256:" + "aa" * 32))
    entry = entry_from_rekor_v1(V1["entry"])
    logged = bundle.with_tlog_entries([entry])
    document = json.loads(logged.to_json())
    assert list(document) == ["mediaType", "pktoken", "signature", "tlogEntries"]
    assert Bundle.from_json(logged.to_json()).tlog_entries == (entry,)
    broken: Any
    for broken in (
        [],
        "x",
        [{}],
        [document["tlogEntries"][0]] * 5,
        [document["tlogEntries"][0]] * 2,
    ):
        with pytest.raises(FormatError, match=r"tlogEntries|log entries|repeats"):
            Bundle.from_dict({**document, "tlogEntries": broken})
    assert "tlogEntries" not in json.loads(bundle.to_json())


def test_compact_ranges_make_the_reference_roots() -> None:
    leaves = [os.urandom(16) for _ in range(300)]
    tree = ReferenceTree(leaves)
    compact = CompactRange()
    for size in range(301):
        assert compact.root() == tree.root(size)
        assert len(compact.hashes) == bin(size).count("1")
        if size < 300:
            compact = compact.append(tree.leaf_hash(size))
    half = CompactRange().extend(tree.leaf_hash(i) for i in range(150))
    assert half.extend(tree.leaf_hash(i) for i in range(150, 300)) == compact
    with pytest.raises(FormatError):
        CompactRange(3, (bytes(32),))
    with pytest.raises(FormatError):
        CompactRange(1, (bytes(31),))


def test_logs_are_pinned_by_origin_and_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    v1 = TrustedLog.pinned("rekor.example - 1234", key)
    assert v1 == TrustedLog.rekor_v1("rekor.example", 1234, key)
    assert v1.version == 1
    v2 = TrustedLog.pinned("log2026.rekor.example", key)
    assert v2 == TrustedLog.rekor_v2("log2026.rekor.example", key)
    assert v2.version == 2
    assert TrustedLog.pinned(v1_log().origin, v1_log().key.public_key) == v1_log()
    with pytest.raises(FormatError):
        TrustedLog.pinned("", key)


def test_policy_files_read_and_write_the_tlog_table() -> None:
    text = """version = 1
[[issuers]]
issuer = "https://token.actions.githubusercontent.com"
[[signers]]
name = "build"
github = { repository_id = "1" }
[tlog]
logs = [{ key = "rekor.pub", origin = "rekor.example - 12" }]
required = true
"""
    policy = parse_policy_file(text)
    pin = LogPin(Path("rekor.pub"), "rekor.example - 12")
    assert policy.tlog == TlogSettings((pin,), True)
    assert parse_policy_file(policy.to_toml()) == policy
    for broken, message in [
        ("[tlog]\n", "tlog: empty"),
        ('[tlog]\nlogs = [{ key = "k" }]\n', "origin: required"),
        ('[tlog]\nlogs = [{ key = "k", origin = "o", x = 1 }]\n', "unknown"),
        ("[tlog]\nrequired = 1\n", "tlog.required"),
        ("[tlog]\nwitnesses = []\n", "unknown"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_policy_file(text.split("[tlog]")[0] + broken)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=_BASE64_ISH, max_size=16))
def test_base64_is_read_in_its_one_canonical_spelling(text: str) -> None:
    """Whatever the decoding path (strict on 3.11+, round trip on 3.10), the text is accepted
    exactly when it is the canonical padded encoding of its bytes."""
    from opkey.tlog._encoding import b64std_decode

    try:
        canonical = binascii.b2a_base64(binascii.a2b_base64(text), newline=False).decode() == text
    except (binascii.Error, ValueError):
        canonical = False
    try:
        b64std_decode(text, what="x", max_length=64)
    except FormatError:
        assert not canonical
    else:
        assert canonical


def test_pem_certificates_are_read_in_the_form_logs_write() -> None:
    pktoken, key = _token()
    cert = pktoken_certificate(pktoken, key)
    request = EntryRequest.hashedrekord(b"s", key.sign_der(b"s"), cert)
    document = request.rekor_v1()
    pem = base64.b64decode(document["spec"]["signature"]["publicKey"]["content"])
    body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    assert read_entry_body(body).certificate == cert
    for broken in (
        pem.replace(b"\n", b"\r\n"),
        pem.replace(b"-----END CERTIFICATE-----", b"-----END CERTIFICATE----"),
        pem.replace(b"CERTIFICATE-----\n", b"CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n", 1),
        pem[:40] + pem[41:],
    ):
        document["spec"]["signature"]["publicKey"]["content"] = base64.b64encode(broken).decode()
        with pytest.raises(FormatError):
            read_entry_body(json.dumps(document, sort_keys=True).encode())


@pytest.mark.parametrize("name", ["invalid-version.json", "duplicate-extension.json"])
def test_malformed_certificates_found_by_the_fuzzer_are_format_errors(name: str) -> None:
    body = (Path(__file__).parents[1] / "data" / "tlog" / "findings" / name).read_bytes()

    def read() -> object:
        return read_entry_body(body).read_certificate()

    with pytest.raises(FormatError):
        read()
