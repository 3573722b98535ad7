"""Attacks on *who* signed and *what* was signed (catalog §8, §9, §11, policy files).

Signatures can be perfectly valid and still come from the wrong signer: another repository
with a look-alike name, another issuer, a token of another type, a token past its time, or a
signature over another digest or another kind of statement. These tests run the whole verifier
(pinned keys, real policies) so that every rejection is the one a deployment would see.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from opkey import issuers
from opkey.artifact import ARTIFACT_STATEMENT_TYPE, artifact_statement
from opkey.bundle import Bundle
from opkey.cic import ClientInstanceClaims
from opkey.cosign import COSIGN_SIGNATURE, OPKEY_OSM, OPKEY_PKTOKEN
from opkey.digest import Digest
from opkey.errors import (
    CommitmentError,
    ConfigError,
    ExpiredError,
    FormatError,
    KeyNotFoundError,
    PolicyError,
    SignatureError,
)
from opkey.expiry import ExpiryPolicy
from opkey.images import sign_image, verify_image
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jose import b64url_decode, b64url_encode, go_json
from opkey.jwks.keyset import KeySet
from opkey.keys import generate_signing_key
from opkey.message import sign_message, verify_message
from opkey.pktoken import PKToken
from opkey.policy.claims import (
    AllOf,
    AnyOf,
    ClaimEquals,
    ClaimGlob,
    ClaimRegex,
    Issuer,
    Policy,
    Subject,
    UnsafeNoPolicy,
    accepts_any_signer,
)
from opkey.policy.file import parse_policy_file
from opkey.policy.signoff import Requirement
from opkey.policy.workloads import GitHubWorkflow
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import attach_signature, list_signatures
from opkey.signer import Signer
from opkey.verification.verifier import Verifier
from opkey.verify import verify_pktoken
from tests.helpers import NOW, NOW_TS, MiniOP, rsa_key
from tests.security.sec_common import (
    GH_2022,
    GITHUB,
    GITLAB,
    GOOGLE,
    doc,
    forge,
    gh_at,
    gh_pktoken,
    jwks,
    mint_pktoken,
    parse,
    pinned_verifier,
    rsa_signer,
)

DIGEST = Digest("sha256:" + "a1" * 32)
#: GitHub Actions as an RS256 issuer played by a test key (real GitHub tokens cannot carry a
#: commitment, and these tests need tokens that verify up to the policy step).
GH_LIKE = IssuerConfig(
    issuer=GITHUB,
    commitment=CommitmentType.AUD,
    algorithms=frozenset({"RS256"}),
    expiry=ExpiryPolicy.never(),
)
VICTIM: dict[str, Any] = {
    "repository": "octo-org/app",
    "repository_id": "433903792",
    "repository_owner": "octo-org",
    "repository_owner_id": "25015917",
    "ref": "refs/heads/main",
    "sub": "repo:octo-org/app:ref:refs/heads/main",
    "job_workflow_ref": "octo-org/app/.github/workflows/release.yml@refs/heads/main",
}
VICTIM_POLICY = GitHubWorkflow(repository_id="433903792", repository_owner_id="25015917")


@pytest.fixture(scope="module")
def github() -> MiniOP:
    return MiniOP(issuer=GITHUB, kid="gh-like", private_key=rsa_key(fresh=True))


def _bundle(
    op: MiniOP, *, commitment: CommitmentType = CommitmentType.AUD, **claims: Any
) -> Bundle:
    made = mint_pktoken(op, commitment=commitment, **claims)
    return Signer(made.pktoken, made.key).sign_digest(DIGEST)


def _verify(op: MiniOP, bundle: Bundle, policy: Policy, config: IssuerConfig = GH_LIKE) -> None:
    pinned_verifier((config, op.keyset)).verify_bundle(bundle, DIGEST, policy=policy)


def test_the_victims_own_signature_is_accepted(github: MiniOP) -> None:
    """Control for this file: the genuine workload passes every policy below."""
    bundle = _bundle(github, **VICTIM)
    for policy in (
        VICTIM_POLICY,
        GitHubWorkflow(repository="octo-org/app"),
        AllOf([Issuer(GITHUB), ClaimGlob("repository", "octo-org/*")]),
        AllOf([Issuer(GITHUB), ClaimRegex("repository", r"octo-org/[a-z]+")]),
        AllOf([Issuer(GITHUB), ClaimEquals("repository", "octo-org/app")]),
    ):
        _verify(github, bundle, policy)


# -- confusable Unicode ---------------------------------------------------------------------------

CONFUSABLES = {
    "cyrillic-a": "octo-org/\u0430pp",
    "cyrillic-o": "\u043ecto-org/app",
    "fullwidth-solidus": "octo-org\uff0fapp",
    "zero-width-space": "octo-org/app\u200b",
    "rtl-override": "octo-org/\u202eppa",
    "nbsp": "octo-org/app\u00a0",
    "combining-dot": "octo-org/a\u0307pp",
}


@pytest.mark.parametrize("name", sorted(CONFUSABLES))
@pytest.mark.parametrize(
    "policy",
    [
        GitHubWorkflow(repository="octo-org/app"),
        AllOf([Issuer(GITHUB), ClaimGlob("repository", "octo-org/*")]),
        AllOf([Issuer(GITHUB), ClaimGlob("repository", "**")]),
        AllOf([Issuer(GITHUB), ClaimRegex("repository", r"\S+/\w+")]),
        AllOf([Issuer(GITHUB), ClaimRegex("repository", r"octo-org/.+")]),
        AllOf([Issuer(GITHUB), ClaimEquals("repository", "octo-org/app")]),
    ],
    ids=["workflow", "glob", "glob-any", "regex-classes", "regex-dot", "equals"],
)
def test_confusable_repository_names_are_rejected(
    github: MiniOP, name: str, policy: Policy
) -> None:
    """A look-alike repository (genuinely signed by GitHub for *its* workload) never matches."""
    claims = {**VICTIM, "repository": CONFUSABLES[name], "repository_id": "999999"}
    with pytest.raises(PolicyError, match="claim 'repository'"):
        _verify(github, _bundle(github, **claims), policy)


def test_the_policy_error_names_the_confusable_character(github: MiniOP) -> None:
    claims = {**VICTIM, "repository": CONFUSABLES["cyrillic-a"]}
    policy = AllOf([Issuer(GITHUB), ClaimGlob("repository", "octo-org/*")])
    with pytest.raises(PolicyError, match="U\\+0430 CYRILLIC SMALL LETTER A at index 9"):
        _verify(github, _bundle(github, **claims), policy)


def test_normalisation_forms_are_distinct(github: MiniOP) -> None:
    """NFD ``é`` is not NFC ``é``: no normalisation before comparing."""
    bundle = _bundle(github, **VICTIM, actor="ren\u0065\u0301")
    with pytest.raises(PolicyError, match="claim 'actor'"):
        _verify(github, bundle, AllOf([Issuer(GITHUB), ClaimEquals("actor", "ren\u00e9")]))


def test_policies_refuse_confusable_patterns_when_written() -> None:
    with pytest.raises(ConfigError, match="not printable ASCII"):
        GitHubWorkflow(repository="octo-org/\u0430pp")
    with pytest.raises(ConfigError, match="non-ASCII or control characters"):
        ClaimGlob("repository", "octo-org/\u0430*")
    with pytest.raises(ConfigError, match="non-ASCII"):
        ClaimRegex("repository", "octo-org/\u0430pp")


# -- time ------------------------------------------------------------------------------------------


def _oidc_verifier(op: MiniOP, at_offset: timedelta, **expiry: Any) -> Verifier:
    config = op.config(expiry=ExpiryPolicy.oidc(**expiry))
    return pinned_verifier((config, op.keyset), at=NOW + at_offset)


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


def test_expired_token_is_rejected_under_the_oidc_policy(op: MiniOP) -> None:
    bundle = _bundle(op, commitment=CommitmentType.NONCE)  # exp = NOW + 240
    _oidc_verifier(op, timedelta(seconds=300)).verify_bundle(
        bundle, DIGEST, policy=UnsafeNoPolicy()
    )
    with pytest.raises(ExpiredError, match="ID token expired at"):
        _oidc_verifier(op, timedelta(seconds=301)).verify_bundle(
            bundle, DIGEST, policy=UnsafeNoPolicy()
        )


def test_not_yet_valid_and_future_tokens_are_rejected_whatever_the_policy(op: MiniOP) -> None:
    never = pinned_verifier((op.config(expiry=ExpiryPolicy.never()), op.keyset))
    with pytest.raises(ExpiredError, match="not valid before"):
        never.verify_bundle(
            _bundle(op, commitment=CommitmentType.NONCE, nbf=NOW_TS + 61),
            DIGEST,
            policy=UnsafeNoPolicy(),
        )
    with pytest.raises(ExpiredError, match="issued in the future"):
        never.verify_bundle(
            _bundle(op, commitment=CommitmentType.NONCE, iat=NOW_TS + 61, exp=NOW_TS + 600),
            DIGEST,
            policy=UnsafeNoPolicy(),
        )
    with pytest.raises(ExpiredError, match="exp < iat"):
        never.verify_bundle(
            _bundle(op, commitment=CommitmentType.NONCE, exp=NOW_TS - 3600),
            DIGEST,
            policy=UnsafeNoPolicy(),
        )


def test_max_age_bounds_the_pktoken_age(op: MiniOP) -> None:
    bundle = _bundle(op, commitment=CommitmentType.NONCE)  # iat = NOW - 60
    config = op.config(expiry=ExpiryPolicy.parse("12h"))
    late = pinned_verifier((config, op.keyset), at=NOW + timedelta(hours=12, seconds=1))
    with pytest.raises(ExpiredError, match="older than 12h"):
        late.verify_bundle(bundle, DIGEST, policy=UnsafeNoPolicy())


def test_the_verified_token_cache_never_extends_validity(op: MiniOP) -> None:
    bundle = _bundle(op, commitment=CommitmentType.NONCE)
    verifier = _oidc_verifier(op, timedelta(0))
    verifier.verify_bundle(bundle, DIGEST, policy=UnsafeNoPolicy())
    with pytest.raises(ExpiredError, match="ID token expired"):
        verifier.verify_bundle(
            bundle, DIGEST, policy=UnsafeNoPolicy(), at=NOW + timedelta(minutes=10)
        )


# -- issuer and audience confusion -----------------------------------------------------------------

ISSUER_VARIANTS = {
    "trailing-slash": GITHUB + "/",
    "http": GITHUB.replace("https://", "http://"),
    "no-scheme": GITHUB.removeprefix("https://"),
    "upper-host": GITHUB.replace("token.actions", "TOKEN.actions"),
    "suffix-domain": GITHUB + ".evil.example",
    "prefix": GITHUB[:-1],
    "enterprise-path": GITHUB + "/acme",
    "leading-space": " " + GITHUB,
    "zero-width": GITHUB + "\u200b",
    "cyrillic-o": GITHUB.replace("token", "t\u043eken"),
    "port": GITHUB + ":443",
}


@pytest.mark.parametrize("name", sorted(ISSUER_VARIANTS))
def test_issuer_variants_are_other_issuers(github: MiniOP, name: str) -> None:
    """Exact ``iss`` match (PyJWT CVE-2024-53861 was a substring match); checked first."""
    bundle = _bundle(github, **{**VICTIM, "iss": ISSUER_VARIANTS[name]})
    with pytest.raises(KeyNotFoundError, match="is not trusted by this verifier"):
        _verify(github, bundle, UnsafeNoPolicy())


def test_enterprise_issuer_config_rejects_the_public_issuer(github: MiniOP) -> None:
    enterprise = IssuerConfig(GITHUB + "/acme", CommitmentType.AUD, algorithms=frozenset({"RS256"}))
    pkt = mint_pktoken(github, commitment=CommitmentType.AUD, **VICTIM).pktoken
    with pytest.raises(KeyNotFoundError, match="is not the trusted issuer"):
        verify_pktoken(pkt, enterprise, github.keyset, now=NOW)


AUDIENCES: dict[str, Any] = {
    "superstring": "opkey-tests-evil",
    "substring": "opkey-test",
    "upper": "OPKEY-TESTS",
    "trailing-space": "opkey-tests ",
    "trailing-slash": "opkey-tests/",
    "url-form": "https://opkey-tests",
    "array-superstring": ["opkey-tests-evil"],
    "array-substring": ["x", "opkey-test"],
}


@pytest.mark.parametrize("name", sorted(AUDIENCES))
def test_audience_variants_do_not_name_the_client(op: MiniOP, name: str) -> None:
    pkt, _ = op.pktoken(aud=AUDIENCES[name])
    with pytest.raises(CommitmentError, match="does not include client id 'opkey-tests'"):
        verify_pktoken(pkt, op.config(), op.keyset, now=NOW)
    # control: membership is exact (several audiences need azp naming the client)
    pkt, _ = op.pktoken(aud=["someone-else", "opkey-tests"], azp="opkey-tests")
    verify_pktoken(pkt, op.config(), op.keyset, now=NOW)


# -- cross-issuer substitution ---------------------------------------------------------------------


def _merged(*names: str) -> KeySet:
    return KeySet(tuple(key for name in names for key in jwks(name)))


def test_real_github_token_under_gitlab_and_google_configs_with_merged_jwks() -> None:
    """Even when the operator merged GitHub's keys into GitLab's and Google's key sets."""
    pkt = gh_pktoken(GH_2022).pktoken
    gitlab_keys = _merged("gitlab-jwks_openpubkey-docs.json", "github-jwks_2022_step-security.json")
    google_keys = _merged("google-jwks_openpubkey-docs.json", "github-jwks_2022_step-security.json")
    verifier = pinned_verifier(
        (issuers.gitlab_ci(), gitlab_keys), (issuers.google(), google_keys), at=gh_at(GH_2022)
    )
    with pytest.raises(KeyNotFoundError, match="is not trusted by this verifier"):
        verifier.identify(pkt)
    for config, keys in ((issuers.gitlab_ci(), gitlab_keys), (issuers.google(), google_keys)):
        with pytest.raises(KeyNotFoundError, match="is not the trusted issuer"):
            verify_pktoken(pkt, config, keys, now=gh_at(GH_2022))


@pytest.mark.parametrize("issuer", [GITLAB, GOOGLE])
def test_real_github_token_relabelled_with_another_issuer_fails_its_signature(
    issuer: str,
) -> None:
    """Rewriting ``iss`` to the configured issuer finds GitHub's key (merged in), and then the
    GQ proof no longer matches the payload."""
    d = doc(gh_pktoken(GH_2022).pktoken)
    payload = json.loads(b64url_decode(d["payload"]))
    payload["iss"] = issuer
    d["payload"] = b64url_encode(json.dumps(payload).encode())
    config = issuers.gitlab_ci() if issuer == GITLAB else issuers.google()
    keys = _merged(
        "gitlab-jwks_openpubkey-docs.json"
        if issuer == GITLAB
        else "google-jwks_openpubkey-docs.json",
        "github-jwks_2022_step-security.json",
    )
    with pytest.raises(SignatureError, match="GQ256 signature does not verify"):
        verify_pktoken(parse(d), config, keys, now=gh_at(GH_2022))


# -- stable identities and token types -------------------------------------------------------------


def test_custom_sub_template_fools_a_sub_policy_but_not_the_github_preset(github: MiniOP) -> None:
    """Another repository whose (customised) ``sub`` reads like the victim's."""
    impostor = {
        **VICTIM,
        "repository": "evil-org/app",
        "repository_id": "666666666",
        "repository_owner": "evil-org",
        "repository_owner_id": "777777777",
    }
    bundle = _bundle(github, **impostor)
    _verify(github, bundle, AllOf([Issuer(GITHUB), Subject(VICTIM["sub"])]))  # the trap
    with pytest.raises(PolicyError, match="claim 'repository_id': expected string \"433903792\""):
        _verify(github, bundle, VICTIM_POLICY)


def test_re_registered_repository_name_is_caught_by_ids(github: MiniOP) -> None:
    """The victim's repository was deleted and its name registered again by someone else."""
    renamed = {**VICTIM, "repository_id": "900000001", "repository_owner_id": "900000002"}
    bundle = _bundle(github, **renamed)
    _verify(github, bundle, GitHubWorkflow(repository="octo-org/app"))  # names alone: fooled
    with pytest.raises(PolicyError, match="claim 'repository_id'"):
        _verify(github, bundle, VICTIM_POLICY)


def test_github_runner_credential_is_not_an_id_token(github: MiniOP) -> None:
    """Same issuer, same key, no ``aud``/``sub``: a runner OAuth credential shape."""
    claims = {
        "iss": GITHUB,
        "orch_id": "a1b2c3",
        "runner_id": "42",
        "iat": NOW_TS - 60,
        "nbf": NOW_TS - 60,
        "exp": NOW_TS + 3600,
    }
    forged = forge(
        github, {"alg": "RS256", "kid": github.kid, "typ": "JWT"},
        rsa_signer(github.private_key), payload=json.dumps(claims).encode(),
    )  # fmt: skip
    with pytest.raises(FormatError, match="claim 'sub' must be a non-empty string"):
        parse(forged.document)


def test_github_request_token_is_not_a_pktoken_id_token(github: MiniOP) -> None:
    """``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` shape: ``aud: vso:…``, no commitment anywhere."""
    pkt = mint_pktoken(
        github, commitment=CommitmentType.AUD, aud="vso:4c9a0a2e-0000-0000-0000-000000000000",
        IdentityTypeClaim="System:ServiceIdentity", ac='[{"Scope":"refs/heads/main"}]',
    ).pktoken  # fmt: skip
    with pytest.raises(CommitmentError, match="aud does not commit"):
        verify_pktoken(pkt, GH_LIKE, github.keyset, now=NOW)


@pytest.mark.parametrize("aud", [["COMMITMENT"], ["COMMITMENT", "other"], ["other", "COMMITMENT"]])
def test_array_aud_never_carries_an_aud_commitment(github: MiniOP, aud: list[str]) -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    values = [cic.commitment() if a == "COMMITMENT" else a for a in aud]
    pkt = mint_pktoken(github, commitment=CommitmentType.AUD, key=key, aud=values).pktoken
    with pytest.raises(CommitmentError, match="aud does not commit"):
        verify_pktoken(pkt, GH_LIKE, github.keyset, now=NOW)


@pytest.mark.parametrize(
    ("aud", "message"),
    [
        ("other", "must start with 'OPENPUBKEY-PKTOKEN:'"),
        ("openpubkey-pktoken:x", "must start with 'OPENPUBKEY-PKTOKEN:'"),
        ("OPENPUBKEY-PKTOKEN", "must start with 'OPENPUBKEY-PKTOKEN:'"),
        ("x:OPENPUBKEY-PKTOKEN:y", "must start with 'OPENPUBKEY-PKTOKEN:'"),
        # A list, even one whose every member has the prefix (OpenPubkey requires a string).
        (["x", "OPENPUBKEY-PKTOKEN:y"], "must be a single string"),
        (["OPENPUBKEY-PKTOKEN:y"], "must be a single string"),
        (["other"], "must be a single string"),
    ],
)
def test_gq_bound_audience_needs_the_exact_prefix(op: MiniOP, aud: object, message: str) -> None:
    """OpenPubkey PR #373: array ``aud`` panicked its GQ-bound check. Here: typed errors."""
    config = op.config(CommitmentType.GQ_BOUND)
    good = mint_pktoken(op, commitment=CommitmentType.GQ_BOUND, aud="OPENPUBKEY-PKTOKEN:y")
    verify_pktoken(good.pktoken, config, op.keyset, now=NOW)
    pkt = mint_pktoken(op, commitment=CommitmentType.GQ_BOUND, aud=aud).pktoken
    with pytest.raises(CommitmentError, match=message):
        verify_pktoken(pkt, config, op.keyset, now=NOW)


@pytest.mark.parametrize("aud", [[], ["OPENPUBKEY-PKTOKEN:x", 1], [["OPENPUBKEY-PKTOKEN:x"]], {}])
def test_gq_bound_audience_of_the_wrong_type_is_a_format_error(op: MiniOP, aud: object) -> None:
    with pytest.raises(FormatError, match="claim 'aud' must be a string or a list of strings"):
        mint_pktoken(op, commitment=CommitmentType.GQ_BOUND, aud=aud)


# -- what was signed -------------------------------------------------------------------------------


def test_bundle_for_another_digest_is_rejected(op: MiniOP) -> None:
    bundle = _bundle(op, commitment=CommitmentType.NONCE)
    other = Digest("sha256:" + "a1" * 31 + "a2")
    verifier = pinned_verifier((op.config(expiry=ExpiryPolicy.never()), op.keyset))
    with pytest.raises(SignatureError, match=f"the bundle signs {DIGEST}, not {other}"):
        verifier.verify_bundle(bundle, other, policy=UnsafeNoPolicy())


@pytest.mark.parametrize(
    "value",
    ["SHA256:" + "ab" * 32, "sha256:" + "AB" * 32, "sha256:" + "ab" * 31, " sha256:" + "ab" * 32,
     "sha512:" + "ab" * 64, "sha256:" + "ab" * 32 + "\n", "sha256:" + "ab" * 31 + "a\u0431"],
)  # fmt: skip
def test_digests_are_canonical(value: str) -> None:
    with pytest.raises(FormatError, match="invalid digest"):
        Digest(value)


STATEMENTS: dict[str, tuple[bytes, str]] = {
    "raw-digest": (DIGEST.value.encode(), "artifact statement: invalid JSON"),
    "spaced": (
        json.dumps({"digest": DIGEST.value, "type": ARTIFACT_STATEMENT_TYPE}).encode(),
        "not in canonical form",
    ),
    "reordered": (
        b'{"type":"' + ARTIFACT_STATEMENT_TYPE.encode() + b'","digest":"'
        + DIGEST.value.encode() + b'"}',
        "not in canonical form",
    ),
    "extra-member": (
        go_json({"digest": DIGEST.value, "type": ARTIFACT_STATEMENT_TYPE, "note": "x"}),
        "unexpected members",
    ),
    "upper-hex": (
        go_json({"digest": DIGEST.value.upper(), "type": ARTIFACT_STATEMENT_TYPE}),
        "invalid digest",
    ),
    "other-type": (
        go_json({"digest": DIGEST.value, "type": "opkey artifact signature v2"}),
        "not an artifact signature",
    ),
    "escaped": (
        artifact_statement(DIGEST).replace(b"sha256", b"\\u0073ha256"),
        "not in canonical form",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_only_the_canonical_artifact_statement_is_accepted(op: MiniOP, name: str) -> None:
    pkt, key = op.pktoken()
    statement, message = STATEMENTS[name]
    bundle = Bundle(pkt, sign_message(statement, pkt, key))
    verifier = pinned_verifier((op.config(expiry=ExpiryPolicy.never()), op.keyset))
    with pytest.raises(FormatError, match=message):
        verifier.verify_bundle(bundle, DIGEST, policy=UnsafeNoPolicy())


def _simple_signing(digest: Digest) -> bytes:
    return go_json(
        {
            "critical": {
                "identity": {"docker-reference": "registry.example/app"},
                "image": {"docker-manifest-digest": digest.value},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )


def test_image_signature_payload_replayed_as_an_artifact_signature(op: MiniOP) -> None:
    """The key signed a cosign payload for an image; it is presented as a file signature."""
    pkt, key = op.pktoken()
    bundle = Bundle(pkt, sign_message(_simple_signing(DIGEST), pkt, key))
    verifier = pinned_verifier((op.config(expiry=ExpiryPolicy.never()), op.keyset))
    with pytest.raises(FormatError, match="not an artifact signature"):
        verifier.verify_bundle(bundle, DIGEST, policy=UnsafeNoPolicy())


@pytest.mark.registry
def test_artifact_signature_replayed_as_an_image_signature(
    op: MiniOP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    """A genuine artifact bundle's statement and OSM pushed as a signature layer of an image
    (in a real registry) is not an image signature: its payload is no cosign payload."""
    pkt, key = op.pktoken()
    image_digest = registry_image.require_digest()
    bundle = Signer(pkt, key).sign_digest(image_digest)
    head, payload_b64, signature = bundle.signature.split(".")
    annotations = {
        OPKEY_PKTOKEN: pkt.to_compact(),
        OPKEY_OSM: f"{head}..{signature}",
        COSIGN_SIGNATURE: base64.b64encode(key.sign_der(b64url_decode(payload_b64))).decode(),
    }
    attach_signature(registry_client, registry_image, b64url_decode(payload_b64), annotations)
    verifier = pinned_verifier((op.config(expiry=ExpiryPolicy.never()), op.keyset))
    with pytest.raises(SignatureError, match="simple-signing payload"):
        verify_image(registry_client, registry_image, verifier, Requirement.of(UnsafeNoPolicy()))


@pytest.mark.registry
def test_image_signature_replayed_as_an_artifact_bundle(
    op: MiniOP, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    """The OSM of a real image signature, re-attached to its payload, does not verify as a
    signature of the same digest as a file."""
    pkt, key = op.pktoken()
    sign_image(registry_client, registry_image, Signer(pkt, key))
    verifier = pinned_verifier((op.config(expiry=ExpiryPolicy.never()), op.keyset))
    verify_image(
        registry_client, registry_image, verifier, Requirement.of(UnsafeNoPolicy())
    )  # control
    (layer,) = list_signatures(registry_client, registry_image)
    head, _, signature = layer.annotations[OPKEY_OSM].split(".")
    osm = f"{head}.{b64url_encode(layer.payload)}.{signature}"
    bundle = Bundle(PKToken.from_compact(layer.annotations[OPKEY_PKTOKEN]), osm)
    digest = registry_image.require_digest()
    with pytest.raises(FormatError, match="not an artifact signature"):
        verifier.verify_bundle(bundle, digest, policy=UnsafeNoPolicy())


@pytest.mark.parametrize("typ", ["OSM", "jwt", "osm ", "CIC", "JWT"])
def test_signed_message_type_is_exact(op: MiniOP, typ: str) -> None:
    pkt, key = op.pktoken()
    osm = sign_message(artifact_statement(DIGEST), pkt, key, typ=typ)
    with pytest.raises(FormatError, match="signed message typ must be 'osm'"):
        verify_message(osm, pkt)


# -- policy files ----------------------------------------------------------------------------------

ISSUER_BLOCK = """
[[issuers]]
issuer = "https://token.actions.githubusercontent.com"
commitment = "aud"
require_gq = true
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[signers]]\nname = "s"\nclaim = "sub"\nequals = "repo:octo-org/app:ref:x"\n',
            "does not pin an issuer",
        ),
        ('[[signers]]\nname = "s"\nall_of = []\n', "all_of: empty"),
        ('[[signers]]\nname = "s"\nany_of = []\n', "any_of: empty"),
        (
            '[[signers]]\nname = "s"\nany_of = [{ issuer = "https://gitlab.com" }, '
            '{ subject = "x" }]\n',
            "does not pin an issuer",
        ),
        ('[[signers]]\nname = "s"\nunsafe_no_policy = false\n', "must be true"),
        ('[[signers]]\nname = "s"\nissuer = "https://gitlab.com"\n', "not in \\[\\[issuers\\]\\]"),
        (
            '[[signers]]\nname = "s"\nall_of = [{ issuer = "https://gitlab.com" }, '
            f'{{ issuer = "{GITHUB}" }}]\n',
            "conflicting issuers",
        ),
        ('[[signers]]\nname = "s"\ngithub = { repository_id = 433903792 }\n', "expected a string"),
        ('[[signers]]\nname = "s"\ngithub = { repository = "octo-org/\u0430pp" }\n', "ASCII"),
        ('[[signers]]\nname = "s"\ngithub = {}\n', "empty"),
        ('[[signers]]\nname = "s"\ngithub = { sub = "repo:x" }\n', "unknown key"),
        ('[[signers]]\nname = "s"\nclaim = "ref"\nglob = "refs/\u0430*"\n', "non-ASCII"),
    ],
    ids=[
        "unpinned-claim", "empty-all-of", "empty-any-of", "any-of-one-unpinned",
        "unsafe-false", "issuer-not-listed", "conflicting-issuers", "integer-id",
        "confusable-preset", "empty-preset", "sub-in-preset", "confusable-glob",
    ],
)  # fmt: skip
def test_policy_file_signer_attacks(body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_policy_file(f"version = 1\n{ISSUER_BLOCK}\n{body}")


@pytest.mark.parametrize(
    ("issuer_entry", "message"),
    [
        ('algorithms = ["HS256"]', "unsupported algorithms"),
        ('algorithms = ["none"]', "unsupported algorithms"),
        ('algorithms = ["RS256", "GQ256"]', "require_gq allows only GQ256"),
        ("leeway = 86400", "leeway must be between 0 and 600"),
        ("leeway = -1", "leeway must be between 0 and 600"),
        ('expiry = "forever"', "expected one of oidc"),
        ('commitment = "gq-bound"\nrequire_gq = false', "GQ-bound commitments need require_gq"),
        ('issuer = "https://token.actions.githubusercontent.com "', "whitespace"),
    ],
)
def test_policy_file_issuer_downgrades(issuer_entry: str, message: str) -> None:
    lines = {"issuer": f'"{GITHUB}"', "commitment": '"aud"', "require_gq": "true"}
    for line in issuer_entry.splitlines():
        key, _, value = line.partition(" = ")
        lines[key] = value
    block = "\n".join(f"{k} = {v}" for k, v in lines.items())
    text = f'version = 1\n[[issuers]]\n{block}\n[[signers]]\nname = "s"\nunsafe_no_policy = true\n'
    with pytest.raises(ConfigError, match=message):
        parse_policy_file(text)


def test_policy_file_nonce_issuer_needs_a_client_id() -> None:
    text = (
        f'version = 1\n[[issuers]]\nissuer = "{GOOGLE}"\ncommitment = "nonce"\n'
        '[[signers]]\nname = "s"\nunsafe_no_policy = true\n'
    )
    with pytest.raises(ConfigError, match="nonce commitments need a client_id"):
        parse_policy_file(text)


def test_policy_file_duplicate_keys_and_issuers_are_refused() -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_policy_file(
            f'version = 1\n[[signers]]\nname = "s"\nissuer = "{GITHUB}"\nissuer = "{GITLAB}"\n'
        )
    with pytest.raises(ConfigError, match="already listed"):
        parse_policy_file(f"version = 1\n{ISSUER_BLOCK}{ISSUER_BLOCK}\n[[signers]]\nname = \"s\"\n"
                          "unsafe_no_policy = true\n")  # fmt: skip


def test_policy_file_signer_pinned_to_one_issuer_ignores_another_trusted_issuer() -> None:
    """A GitLab token whose ``sub`` equals the GitHub signer's expected ``sub`` does not sign."""
    text = f"""version = 1
[[signers]]
name = "build"
all_of = [{{ issuer = "{GITHUB}" }}, {{ subject = "repo:octo-org/app:ref:refs/heads/main" }}]
"""
    policy_file = parse_policy_file(text)
    gitlab_claims = {"iss": GITLAB, "sub": "repo:octo-org/app:ref:refs/heads/main"}
    with pytest.raises(PolicyError, match="build"):
        policy_file.requirement.evaluate([gitlab_claims]).raise_for_unmet()
    policy_file.requirement.evaluate([{**gitlab_claims, "iss": GITHUB}]).raise_for_unmet()


def test_policy_file_size_and_depth_limits() -> None:
    with pytest.raises(ConfigError, match="larger than"):
        parse_policy_file("# " + "x" * (1024 * 1024) + "\nversion = 1\n")
    nested = "{ all_of = [" * 20 + f'{{ issuer = "{GITHUB}" }}' + "] }" * 20
    with pytest.raises(ConfigError, match="nested deeper than 16"):
        parse_policy_file(f'version = 1\n[[signers]]\nname = "s"\nall_of = [{nested}]\n')


def test_a_policy_is_always_required_and_unsafe_is_visible(op: MiniOP) -> None:
    bundle = _bundle(op, commitment=CommitmentType.NONCE)
    verifier = pinned_verifier((op.config(expiry=ExpiryPolicy.never()), op.keyset))
    with pytest.raises(ConfigError, match="a policy is required"):
        verifier.verify_bundle(bundle, DIGEST, policy=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="AllOf\\(\\[\\]\\) is empty"):
        AllOf([])
    assert accepts_any_signer(AnyOf([Subject("x"), UnsafeNoPolicy()]))
    assert not accepts_any_signer(AllOf([Subject("x"), UnsafeNoPolicy()]))
