"""Attestations without a registry: DSSE, in-toto statements, attestation evidence, provenance,
predicate conditions and the policy-file keys, decided in the one verdict."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from opkey.attestation import SignedAttestation
from opkey.digest import Digest
from opkey.dsse import Envelope, EnvelopeSignature, pae
from opkey.errors import ConfigError, FormatError, PolicyError, SignatureError
from opkey.expiry import ExpiryPolicy
from opkey.intoto import INTOTO_PAYLOAD_TYPE, SLSA_PROVENANCE_V1, Statement, Subject
from opkey.jwks.sources import PinnedKeys
from opkey.keys import verify_cosign_signature
from opkey.policy.claims import Subject as SubjectPolicy
from opkey.policy.file import parse_policy_file
from opkey.policy.predicates import PredicateCondition, resolve_pointer
from opkey.policy.signoff import Requirement, SignerRequirement
from opkey.provenance import (
    GITHUB_BUILD_TYPE,
    check_provenance,
    github_provenance,
    gitlab_provenance,
)
from opkey.signer import Signer
from opkey.verification.evidence import AttestationEvidence, BundleEvidence
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from tests.helpers import NOW, MiniOP

DIGEST = Digest("sha256:" + "ab" * 32)
OTHER = Digest("sha256:" + "cd" * 32)
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
ANYONE = SubjectPolicy("user-1234")


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


def _verifier(op: MiniOP) -> Verifier:
    config = op.config(expiry=ExpiryPolicy.never())
    return Verifier(
        Trust([TrustedIssuer(config, [PinnedKeys({op.issuer: op.keyset})])]), clock=lambda: NOW
    )


def _signer(op: MiniOP, alg: str = "ES256", **claims: Any) -> Signer:
    pkt, key = op.pktoken(user_alg=alg, **claims)
    return Signer(pkt, key)


def _statement(predicate: dict[str, Any] | None = None, digest: Digest = DIGEST) -> Statement:
    return Statement.about(
        [Subject.of("app.tar.gz", digest)], "vuln", predicate or {"scanner": {"result": "PASSED"}}
    )


# -- DSSE -------------------------------------------------------------------------------------


def test_pae_is_dsse_v1() -> None:
    # The DSSE specification's own example (protocol.md of secure-systems-lab/dsse).
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9", "lengths count bytes"


def test_envelope_is_written_as_go_writes_it_and_read_back() -> None:
    envelope = Envelope(INTOTO_PAYLOAD_TYPE, b"{}", (EnvelopeSignature(b"\x01\x02"),))
    assert envelope.to_json() == (
        b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=",'
        b'"signatures":[{"keyid":"","sig":"AQI="}]}'
    )
    assert Envelope.from_json(envelope.to_json()) == envelope


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"payloadType": "t", "payload": "e30=", "signatures": []}, "no signatures"),
        ({"payloadType": "t", "payload": "e30", "signatures": [{"sig": "AQI="}]}, "base64"),
        ({"payloadType": "t", "payload": "e30=", "signatures": [{"sig": "AQJ="}]}, "canonical"),
        ({"payloadType": "t", "payload": "e30=", "signatures": [{"sig": "AQI=", "x": 1}]}, "sig"),
        ({"payloadType": "t", "payload": "e30=", "signatures": [], "extra": 1}, "exactly"),
        ({"payloadType": 5, "payload": "e30=", "signatures": [{"sig": "AQI="}]}, "string"),
    ],
)
def test_envelopes_are_read_strictly(document: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Envelope.from_json(json.dumps(document))


# -- in-toto statements -------------------------------------------------------------------------


def test_statement_bytes_and_strict_reading() -> None:
    statement = _statement({"b": 1, "a": {"z": True, "y": None}})
    data = statement.to_json()
    assert data.startswith(b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":')
    assert b'"predicateType":"https://cosign.sigstore.dev/attestation/vuln/v1"' in data
    assert data.endswith(b'"predicate":{"a":{"y":null,"z":true},"b":1}}')
    assert Statement.from_json(data) == statement
    assert statement.names(DIGEST)
    assert not statement.names(OTHER)
    document = json.loads(data)
    mutations: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda d: d.update(_type="https://in-toto.io/Statement/v0.1"), "Statement v1"),
        (lambda d: d.update(subject=[]), "non-empty"),
        (lambda d: d["subject"][0]["digest"].update(sha256="AB" * 32), "lowercase hex"),
        (lambda d: d.update(predicateType="not a uri"), "absolute URI"),
        # found by the fuzz target `attestation`: urlsplit's ValueError escaped
        (lambda d: d.update(predicateType="https://[x/"), "absolute URI"),
        (lambda d: d.update(predicate=[1]), "object"),
        (lambda d: d.update(extra=1), "members"),
    ]
    for mutate, message in mutations:
        changed = json.loads(data)
        mutate(changed)
        with pytest.raises(FormatError, match=message):
            Statement.from_json(json.dumps(changed).encode())
    assert document["subject"] == [{"name": "app.tar.gz", "digest": {"sha256": "ab" * 32}}]


def test_predicate_type_short_names_are_cosigns() -> None:
    assert Statement.about([Subject.of("x", DIGEST)], "slsaprovenance1", {}).predicate_type == (
        SLSA_PROVENANCE_V1
    )
    with pytest.raises(ConfigError, match="absolute URI"):
        Requirement.of(ANYONE, predicate_type="provenance")


# -- signing and verifying ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_an_attestation_verifies_and_carries_its_statement(op: MiniOP, alg: str) -> None:
    signer = _signer(op, alg)
    attestation = signer.attest(_statement())
    # The DSSE signature is cosign's encoding over the PAE (DER for ECDSA), under the key.
    verify_cosign_signature(
        signer.pktoken.cic_claims.upk, attestation.envelope.pae, attestation.signature
    )
    again = SignedAttestation.from_json(attestation.to_json())
    identity = _verifier(op).check(AttestationEvidence.from_bundle(again), DIGEST)
    assert identity.statement == _statement()
    assert identity.subject == "user-1234"


def _tampered(attestation: SignedAttestation, **changes: Any) -> AttestationEvidence:
    return AttestationEvidence.from_bundle(replace(attestation, **changes))


def test_tampered_envelopes_are_rejected(op: MiniOP) -> None:
    signer = _signer(op)
    good = signer.attest(_statement())
    verifier = _verifier(op)
    envelope = good.envelope
    cases: list[tuple[AttestationEvidence, type[Exception], str]] = [
        # another payload under the same signatures
        (
            _tampered(good, envelope=replace(envelope, payload=_statement({"x": 1}).to_json())),
            SignatureError,
            "does not verify",
        ),
        # another subject: an attestation of another artifact
        (
            AttestationEvidence.from_bundle(signer.attest(_statement(digest=OTHER))),
            SignatureError,
            "is about",
        ),
        # another payload type
        (
            _tampered(good, envelope=replace(envelope, payload_type="application/json")),
            FormatError,
            "payloadType",
        ),
        # another signature
        (
            _tampered(
                good,
                envelope=replace(
                    envelope, signatures=(EnvelopeSignature(good.signature[:-1] + b"\0"),)
                ),
            ),
            SignatureError,
            "envelope's signature",
        ),
        # the OSM of another attestation by the same key
        (
            _tampered(good, osm=signer.attest(_statement({"y": 2})).osm),
            SignatureError,
            "does not verify",
        ),
    ]
    for evidence, error, message in cases:
        with pytest.raises(error, match=message):
            verifier.check(evidence, DIGEST)
    # another PK token for the same key: the OSM names the original one
    other, _ = op.pktoken(signing_key=signer.signing_key, sub="someone-else")
    with pytest.raises(SignatureError, match="another PK token"):
        verifier.check(_tampered(good, pktoken=other), DIGEST)


def test_layers_name_the_predicate_type_they_sign(op: MiniOP) -> None:
    attestation = _signer(op).attest(_statement())
    annotations = attestation.layer_annotations(VULN)
    assert annotations["predicateType"] == VULN
    assert annotations["dev.cosignproject.cosign/signature"] == ""
    envelope = attestation.envelope_bytes()
    verifier = _verifier(op)
    identity = verifier.check(AttestationEvidence.from_layer(envelope, annotations), DIGEST)
    assert identity.statement is not None
    lying = {**annotations, "predicateType": SLSA_PROVENANCE_V1}
    with pytest.raises(FormatError, match="the layer says predicate type"):
        verifier.check(AttestationEvidence.from_layer(envelope, lying), DIGEST)
    verdict = verifier.verdict(
        Requirement.of(ANYONE, predicate_type=VULN),
        DIGEST,
        [AttestationEvidence.from_layer(envelope, {"predicateType": VULN})],
    )
    assert verdict.signatures[0].ignored, "cosign's own attestations are ignored, not judged"


# -- one verdict over signatures and attestations ----------------------------------------------


def test_requirements_are_met_by_their_own_kind(op: MiniOP) -> None:
    signer = _signer(op)
    verifier = _verifier(op)
    signature = BundleEvidence(signer.sign_digest(DIGEST), label="signature")
    scan = AttestationEvidence.from_bundle(signer.attest(_statement()), label="scan")
    requirement = Requirement.sign_off(
        [
            SignerRequirement("signed", ANYONE),
            SignerRequirement(
                "scanned",
                ANYONE,
                predicate_type=VULN,
                predicate=(PredicateCondition("/scanner/result", "equals", "PASSED"),),
            ),
        ],
        distinct=False,
    )
    verdict = verifier.verdict(requirement, DIGEST, [signature, scan])
    assert verdict.accepted
    assert [r.signature for r in verdict.requirements] == [0, 1]
    # an attestation is no signature, and a signature no attestation
    only_scan = verifier.verdict(requirement, DIGEST, [scan])
    assert [r.met for r in only_scan.requirements] == [False, True]
    assert "a signature is required" in (only_scan.requirements[0].reason or "")
    only_signature = verifier.verdict(requirement, DIGEST, [signature])
    assert "an attestation of type" in (only_signature.requirements[1].reason or "")
    failing = AttestationEvidence.from_bundle(
        signer.attest(_statement({"scanner": {"result": "FAILED"}}))
    )
    verdict = verifier.verdict(requirement, DIGEST, [signature, failing])
    assert not verdict.accepted
    with pytest.raises(PolicyError, match=r"predicate field '/scanner/result'.*FAILED"):
        verdict.raise_if_rejected()


def test_predicate_conditions() -> None:
    predicate = {"a": {"b/c": ["x", {"~d": "v1.2"}]}, "n": 3, "t": True}
    assert resolve_pointer(predicate, "/a/b~1c/1/~0d") == "v1.2"
    PredicateCondition("/a/b~1c/1/~0d", "regex", r"v[0-9]+\.[0-9]+").check(predicate)
    PredicateCondition("/a/b~1c/0", "glob", "?").check(predicate)
    PredicateCondition("/n", "equals", 3).check(predicate)
    for condition in [
        PredicateCondition("/n", "equals", "3"),  # typed
        PredicateCondition("/t", "equals", 1),
        PredicateCondition("/a/b~1c/1/~0d", "regex", "v1"),  # anchored
        PredicateCondition("/missing", "glob", "*"),
        PredicateCondition("/a/b~1c/01", "equals", "x"),  # no leading zeros
    ]:
        with pytest.raises(PolicyError, match="predicate field"):
            condition.check(predicate)
    for pointer in ["a", "/a~2"]:
        with pytest.raises(ConfigError, match="pointer"):
            PredicateCondition(pointer, "equals", "x")
    with pytest.raises(ConfigError, match="invalid regular expression"):
        PredicateCondition("/a", "regex", "(")


POLICY = """
version = 1

[[issuers]]
issuer = "https://token.actions.githubusercontent.com"

[[signers]]
name = "build"
github = { repository_id = "1" }
predicate_type = "slsaprovenance1"

[[signers]]
name = "scan"
github = { repository_id = "2" }
predicate_type = "https://cosign.sigstore.dev/attestation/vuln/v1"
predicate = [
    { pointer = "/scanner/result", equals = "PASSED" },
    { pointer = "/scanner/uri", glob = "https://scanner.example/**" },
]

[[signers]]
name = "staging"
github = { repository_id = "3", environment = "staging" }
"""


def test_policy_files_name_predicate_types_and_conditions() -> None:
    policy = parse_policy_file(POLICY)
    build, scan, staging = policy.signers
    assert build.predicate_type == SLSA_PROVENANCE_V1
    assert scan.predicate_type == VULN
    assert len(scan.predicate) == 2
    assert staging.predicate_type is None
    assert parse_policy_file(policy.to_toml()) == policy
    for text, message in [
        (POLICY.replace('predicate_type = "slsaprovenance1"', ""), None),
        (POLICY.replace('predicate_type = "https://cosign', 'x = "https://cosign'), "unknown key"),
        (POLICY.replace("equals = ", "is = "), "exactly one of equals"),
        (POLICY.replace('pointer = "/scanner/result"', 'pointer = "scanner"'), "pointer"),
        (
            POLICY.replace(
                'predicate_type = "https://cosign.sigstore.dev/attestation/vuln/v1"\n', ""
            ),
            "need a predicate_type",
        ),
        (POLICY.replace('"slsaprovenance1"', '"provenance"'), r"signers\[0\]\.predicate_type"),
    ]:
        if message is None:
            parse_policy_file(text)
            continue
        with pytest.raises(ConfigError, match=message):
            parse_policy_file(text)


# -- SLSA provenance ----------------------------------------------------------------------------

GITHUB_CLAIMS = {
    "iss": "https://token.actions.githubusercontent.com",
    "sub": "repo:octo-org/octo-repo:ref:refs/tags/v1.0.0",
    "repository": "octo-org/octo-repo",
    "repository_id": "614000001",
    "repository_owner_id": "9919",
    "workflow_ref": "octo-org/octo-repo/.github/workflows/release.yml@refs/tags/v1.0.0",
    "job_workflow_ref": "octo-org/octo-repo/.github/workflows/release.yml@refs/tags/v1.0.0",
    "ref": "refs/tags/v1.0.0",
    "sha": "5b2b9e41e1b6b4c6e7f1b1ad3cbb0e7b1e2b3c4d",
    "run_id": "9000000001",
    "run_attempt": "2",
    "event_name": "push",
    "runner_environment": "github-hosted",
}


def test_github_provenance_is_githubs_shape() -> None:
    predicate = github_provenance(GITHUB_CLAIMS, server_url="https://github.com")
    assert predicate == {
        "buildDefinition": {
            "buildType": GITHUB_BUILD_TYPE,
            "externalParameters": {
                "workflow": {
                    "ref": "refs/tags/v1.0.0",
                    "repository": "https://github.com/octo-org/octo-repo",
                    "path": ".github/workflows/release.yml",
                }
            },
            "internalParameters": {
                "github": {
                    "event_name": "push",
                    "repository_id": "614000001",
                    "repository_owner_id": "9919",
                    "runner_environment": "github-hosted",
                }
            },
            "resolvedDependencies": [
                {
                    "uri": "git+https://github.com/octo-org/octo-repo@refs/tags/v1.0.0",
                    "digest": {"gitCommit": GITHUB_CLAIMS["sha"]},
                }
            ],
        },
        "runDetails": {
            "builder": {
                "id": "https://github.com/octo-org/octo-repo/.github/workflows/release.yml"
                "@refs/tags/v1.0.0"
            },
            "metadata": {
                "invocationId": "https://github.com/octo-org/octo-repo/actions/runs/9000000001/attempts/2"
            },
        },
    }
    check_provenance(predicate, GITHUB_CLAIMS)


def _lie(predicate: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed: dict[str, Any] = json.loads(json.dumps(predicate))
    node: Any = changed
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[keys[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "runDetails.builder.id",
            "https://github.com/evil/x/.github/workflows/a.yml@main",
            "builder.id",
        ),
        (
            "buildDefinition.externalParameters.workflow.repository",
            "https://github.com/evil/repo",
            "repository",
        ),
        (
            "buildDefinition.externalParameters.workflow.repository",
            "https://evil.example/octo-org/octo-repo",
            "server",
        ),
        ("buildDefinition.internalParameters.github.repository_id", "1", "repository_id"),
        (
            "buildDefinition.resolvedDependencies.0.digest",
            {"gitCommit": "0" * 40},
            "resolvedDependencies",
        ),
        (
            "runDetails.metadata.invocationId",
            "https://github.com/octo-org/octo-repo/actions/runs/1/attempts/1",
            "invocationId",
        ),
        ("buildDefinition.buildType", "https://slsa.dev/other", "buildType"),
    ],
)
def test_provenance_must_agree_with_the_signers_token(path: str, value: Any, message: str) -> None:
    predicate = github_provenance(GITHUB_CLAIMS, server_url="https://github.com")
    with pytest.raises(PolicyError, match=message):
        check_provenance(_lie(predicate, path, value), GITHUB_CLAIMS)
    with pytest.raises(PolicyError, match="neither"):
        check_provenance(predicate, {"iss": "https://accounts.google.com", "sub": "alice"})


def test_gitlab_provenance_from_gitlab_claims() -> None:
    claims = {
        "iss": "https://gitlab.com",
        "project_path": "my-group/my-project",
        "project_id": "20",
        "namespace_id": "72",
        "ref_path": "refs/heads/main",
        "sha": "5b2b9e41e1b6b4c6e7f1b1ad3cbb0e7b1e2b3c4d",
        "ci_config_ref_uri": "gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main",
        "job_id": "302",
        "pipeline_id": "574",
        "pipeline_source": "push",
    }
    predicate = gitlab_provenance(claims)
    assert predicate["runDetails"]["builder"]["id"] == (
        "https://gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main"
    )
    assert predicate["runDetails"]["metadata"]["invocationId"] == (
        "https://gitlab.com/my-group/my-project/-/jobs/302"
    )
    check_provenance(predicate, claims)
    with pytest.raises(PolicyError, match="project_id"):
        check_provenance(predicate, {**claims, "project_id": "21"})


def test_attestation_bundles_keep_their_timestamps_strictly(op: MiniOP) -> None:
    attestation = _signer(op).attest(_statement())
    document = attestation.to_dict()
    assert set(document) == {"mediaType", "pktoken", "dsseEnvelope", "signature"}
    assert document["mediaType"] == "application/vnd.opkey.attestation.v1+json"
    assert (
        base64.b64decode(document["dsseEnvelope"]["signatures"][0]["sig"]) == attestation.signature
    )
    changes: list[tuple[dict[str, Any], str]] = [
        ({"timestamps": []}, "non-empty"),
        ({"extra": 1}, "unexpected"),
        ({"signature": attestation.attached_osm}, "detached"),
        # found by the fuzz target `attestation`: a list here was a ValueError
        ({"dsseEnvelope": [["payloadType", "x"]]}, "must be a DSSE envelope object"),
    ]
    for change, message in changes:
        with pytest.raises(FormatError, match=message):
            SignedAttestation.from_dict({**document, **change})
