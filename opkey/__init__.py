"""opkey: keyless signing with OpenID Connect, wire-compatible with OpenPubkey.

The names below are the public API; they are loaded on first use, so ``import opkey`` (and
``opkey --version``) stays fast. Recipes::

    from opkey import Digest, GitHubWorkflow, Signer, Trust, Verifier, auto_provider, issuers

    signer = Signer.from_provider(auto_provider())          # in CI
    bundle = signer.sign_digest(Digest.of_file("app.tar.gz"))

    verifier = Verifier(Trust.of([issuers.github_actions()]))
    identity = verifier.verify_bundle(bundle, Digest.of_file("app.tar.gz"),
                                      policy=GitHubWorkflow(repository_id="614000001"))

Whom to trust is a :class:`Trust`, who must have signed a :class:`Requirement` (one policy or
a multi-signer sign-off), and :meth:`Verifier.verdict` decides one over any evidence (bundles,
image signature layers), returning a :class:`Verdict`. ``spec/architecture.md`` maps the
packages. Lower-level modules (``opkey.pktoken``, ``opkey.cic``, ``opkey.gq``,
``opkey.verify``…) are the protocol core: sharp tools, documented in ``spec/protocol.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from opkey._version import __version__ as __version__

if TYPE_CHECKING:
    from opkey import issuers as issuers
    from opkey.attestation import SignedAttestation as SignedAttestation
    from opkey.bundle import Bundle as Bundle
    from opkey.digest import Digest as Digest
    from opkey.errors import AdmissionReviewError as AdmissionReviewError
    from opkey.errors import CommitmentError as CommitmentError
    from opkey.errors import ConfigError as ConfigError
    from opkey.errors import DeadlineError as DeadlineError
    from opkey.errors import ExpiredError as ExpiredError
    from opkey.errors import ForeignSignatureError as ForeignSignatureError
    from opkey.errors import FormatError as FormatError
    from opkey.errors import KeyNotFoundError as KeyNotFoundError
    from opkey.errors import LogServiceError as LogServiceError
    from opkey.errors import NetworkError as NetworkError
    from opkey.errors import OpkeyError as OpkeyError
    from opkey.errors import PolicyError as PolicyError
    from opkey.errors import ProviderError as ProviderError
    from opkey.errors import RegistryError as RegistryError
    from opkey.errors import ResponseTooLargeError as ResponseTooLargeError
    from opkey.errors import SignatureError as SignatureError
    from opkey.errors import TimestampAuthorityError as TimestampAuthorityError
    from opkey.errors import TimestampError as TimestampError
    from opkey.errors import TransparencyLogError as TransparencyLogError
    from opkey.errors import UntrustedTimestampError as UntrustedTimestampError
    from opkey.errors import VerificationError as VerificationError
    from opkey.expiry import ExpiryPolicy as ExpiryPolicy
    from opkey.http import Deadline as Deadline
    from opkey.images import ImageTree as ImageTree
    from opkey.images import ImageVerdict as ImageVerdict
    from opkey.images import attest_image as attest_image
    from opkey.images import image_tree as image_tree
    from opkey.images import sign_image as sign_image
    from opkey.images import verify_image as verify_image
    from opkey.intoto import Statement as Statement
    from opkey.issuers import CommitmentType as CommitmentType
    from opkey.issuers import IssuerConfig as IssuerConfig
    from opkey.jwks.archive import JwksArchive as JwksArchive
    from opkey.jwks.client import JwksClient as JwksClient
    from opkey.jwks.keyset import KeySet as KeySet
    from opkey.jwks.sources import ArchiveKeys as ArchiveKeys
    from opkey.jwks.sources import LiveKeys as LiveKeys
    from opkey.jwks.sources import PinnedKeys as PinnedKeys
    from opkey.keys import PublicJWK as PublicJWK
    from opkey.keys import SigningKey as SigningKey
    from opkey.keys import generate_signing_key as generate_signing_key
    from opkey.pktoken import PKToken as PKToken
    from opkey.policy.claims import AllOf as AllOf
    from opkey.policy.claims import AnyOf as AnyOf
    from opkey.policy.claims import ClaimContains as ClaimContains
    from opkey.policy.claims import ClaimEquals as ClaimEquals
    from opkey.policy.claims import ClaimGlob as ClaimGlob
    from opkey.policy.claims import ClaimRegex as ClaimRegex
    from opkey.policy.claims import Issuer as Issuer
    from opkey.policy.claims import Policy as Policy
    from opkey.policy.claims import Subject as Subject
    from opkey.policy.claims import UnsafeNoPolicy as UnsafeNoPolicy
    from opkey.policy.file import IssuerEntry as IssuerEntry
    from opkey.policy.file import PolicyFile as PolicyFile
    from opkey.policy.file import load_policy_file as load_policy_file
    from opkey.policy.predicates import PredicateCondition as PredicateCondition
    from opkey.policy.signoff import Requirement as Requirement
    from opkey.policy.signoff import SignerRequirement as SignerRequirement
    from opkey.policy.signoff import evaluate_signers as evaluate_signers
    from opkey.policy.workloads import GitHubWorkflow as GitHubWorkflow
    from opkey.policy.workloads import GitLabPipeline as GitLabPipeline
    from opkey.providers import BrowserProvider as BrowserProvider
    from opkey.providers import DeviceFlowProvider as DeviceFlowProvider
    from opkey.providers import ForgejoActionsProvider as ForgejoActionsProvider
    from opkey.providers import GitHubActionsProvider as GitHubActionsProvider
    from opkey.providers import GitLabCIProvider as GitLabCIProvider
    from opkey.providers import Provider as Provider
    from opkey.providers import StaticProvider as StaticProvider
    from opkey.providers import auto_provider as auto_provider
    from opkey.signer import Signer as Signer
    from opkey.timestamp import TimestampAuthority as TimestampAuthority
    from opkey.timestamp import TimestampClient as TimestampClient
    from opkey.timestamp import TimestampToken as TimestampToken
    from opkey.timestamp import VerifiedTimestamp as VerifiedTimestamp
    from opkey.timestamp import check_signed_while_valid as check_signed_while_valid
    from opkey.timestamp import verify_timestamp as verify_timestamp
    from opkey.verification.evidence import AttestationEvidence as AttestationEvidence
    from opkey.verification.evidence import BundleEvidence as BundleEvidence
    from opkey.verification.evidence import ClaimedSignature as ClaimedSignature
    from opkey.verification.evidence import CosignLayerEvidence as CosignLayerEvidence
    from opkey.verification.evidence import Evidence as Evidence
    from opkey.verification.identity import VerifiedIdentity as VerifiedIdentity
    from opkey.verification.identity import VerifiedMessage as VerifiedMessage
    from opkey.verification.signing_time import SigningTime as SigningTime
    from opkey.verification.trust import KeyOptions as KeyOptions
    from opkey.verification.trust import Trust as Trust
    from opkey.verification.trust import TrustedIssuer as TrustedIssuer
    from opkey.verification.verdict import RequirementOutcome as RequirementOutcome
    from opkey.verification.verdict import SignatureOutcome as SignatureOutcome
    from opkey.verification.verdict import Verdict as Verdict
    from opkey.verification.verifier import Verifier as Verifier

#: Where each public name lives, module by module (imported on first attribute access).
_EXPORTS = {
    "opkey.attestation": "SignedAttestation",
    "opkey.bundle": "Bundle",
    "opkey.digest": "Digest",
    "opkey.errors": (
        "AdmissionReviewError CommitmentError ConfigError DeadlineError ExpiredError "
        "ForeignSignatureError FormatError KeyNotFoundError LogServiceError NetworkError "
        "OpkeyError "
        "PolicyError ProviderError RegistryError ResponseTooLargeError SignatureError "
        "TimestampAuthorityError TimestampError TransparencyLogError "
        "UntrustedTimestampError VerificationError"
    ),
    "opkey.expiry": "ExpiryPolicy",
    "opkey.http": "Deadline",
    "opkey.images": "ImageTree ImageVerdict attest_image image_tree sign_image verify_image",
    "opkey.intoto": "Statement",
    "opkey.issuers": "CommitmentType IssuerConfig issuers",
    "opkey.jwks.archive": "JwksArchive",
    "opkey.jwks.client": "JwksClient",
    "opkey.jwks.keyset": "KeySet",
    "opkey.jwks.sources": "ArchiveKeys LiveKeys PinnedKeys",
    "opkey.keys": "PublicJWK SigningKey generate_signing_key",
    "opkey.pktoken": "PKToken",
    "opkey.policy.claims": (
        "AllOf AnyOf ClaimContains ClaimEquals ClaimGlob ClaimRegex Issuer Policy Subject "
        "UnsafeNoPolicy"
    ),
    "opkey.policy.file": "IssuerEntry PolicyFile load_policy_file",
    "opkey.policy.predicates": "PredicateCondition",
    "opkey.policy.signoff": "Requirement SignerRequirement evaluate_signers",
    "opkey.policy.workloads": "GitHubWorkflow GitLabPipeline",
    "opkey.providers": (
        "BrowserProvider DeviceFlowProvider ForgejoActionsProvider GitHubActionsProvider "
        "GitLabCIProvider Provider StaticProvider auto_provider"
    ),
    "opkey.signer": "Signer",
    "opkey.timestamp": (
        "TimestampAuthority TimestampClient TimestampToken VerifiedTimestamp "
        "check_signed_while_valid verify_timestamp"
    ),
    "opkey.verification.evidence": (
        "AttestationEvidence BundleEvidence ClaimedSignature CosignLayerEvidence Evidence"
    ),
    "opkey.verification.identity": "VerifiedIdentity VerifiedMessage",
    "opkey.verification.signing_time": "SigningTime",
    "opkey.verification.trust": "KeyOptions Trust TrustedIssuer",
    "opkey.verification.verdict": "RequirementOutcome SignatureOutcome Verdict",
    "opkey.verification.verifier": "Verifier",
}
_LOCATIONS = {name: module for module, names in _EXPORTS.items() for name in names.split()}

__all__ = sorted([*_LOCATIONS, "__version__"])


def __getattr__(name: str) -> Any:
    module_name = _LOCATIONS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'opkey' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name == f"opkey.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
