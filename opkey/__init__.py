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

from opkey._version import __version__

if TYPE_CHECKING:
    from opkey import issuers
    from opkey.bundle import Bundle
    from opkey.digest import Digest
    from opkey.errors import (
        CommitmentError,
        ConfigError,
        ExpiredError,
        ForeignSignatureError,
        FormatError,
        KeyNotFoundError,
        NetworkError,
        OpkeyError,
        PolicyError,
        ProviderError,
        RegistryError,
        ResponseTooLargeError,
        SignatureError,
        TimestampAuthorityError,
        TimestampError,
        UntrustedTimestampError,
        VerificationError,
    )
    from opkey.expiry import ExpiryPolicy
    from opkey.images import ImageVerdict, sign_image, verify_image
    from opkey.issuers import CommitmentType, IssuerConfig
    from opkey.jwks.archive import JwksArchive
    from opkey.jwks.client import JwksClient
    from opkey.jwks.keyset import KeySet
    from opkey.jwks.sources import (
        ArchiveKeys,
        LiveKeys,
        PinnedKeys,
    )
    from opkey.keys import (
        PublicJWK,
        SigningKey,
        generate_signing_key,
    )
    from opkey.pktoken import PKToken
    from opkey.policy.claims import (
        AllOf,
        AnyOf,
        ClaimContains,
        ClaimEquals,
        ClaimGlob,
        ClaimRegex,
        Issuer,
        Policy,
        Subject,
        UnsafeNoPolicy,
    )
    from opkey.policy.file import (
        IssuerEntry,
        PolicyFile,
        load_policy_file,
    )
    from opkey.policy.signoff import (
        Requirement,
        SignerRequirement,
        evaluate_signers,
    )
    from opkey.policy.workloads import GitHubWorkflow, GitLabPipeline
    from opkey.providers import (
        BrowserProvider,
        DeviceFlowProvider,
        ForgejoActionsProvider,
        GitHubActionsProvider,
        GitLabCIProvider,
        Provider,
        StaticProvider,
        auto_provider,
    )
    from opkey.signer import Signer
    from opkey.timestamp import (
        TimestampAuthority,
        TimestampClient,
        TimestampToken,
        VerifiedTimestamp,
        check_signed_while_valid,
        verify_timestamp,
    )
    from opkey.verification.evidence import (
        BundleEvidence,
        CosignLayerEvidence,
        Evidence,
    )
    from opkey.verification.identity import VerifiedIdentity, VerifiedMessage
    from opkey.verification.signing_time import SigningTime
    from opkey.verification.trust import (
        KeyOptions,
        Trust,
        TrustedIssuer,
    )
    from opkey.verification.verdict import (
        RequirementOutcome,
        SignatureOutcome,
        Verdict,
    )
    from opkey.verification.verifier import Verifier

__all__ = [
    "AllOf",
    "AnyOf",
    "ArchiveKeys",
    "BrowserProvider",
    "Bundle",
    "BundleEvidence",
    "ClaimContains",
    "ClaimEquals",
    "ClaimGlob",
    "ClaimRegex",
    "CommitmentError",
    "CommitmentType",
    "ConfigError",
    "CosignLayerEvidence",
    "DeviceFlowProvider",
    "Digest",
    "Evidence",
    "ExpiredError",
    "ExpiryPolicy",
    "ForeignSignatureError",
    "ForgejoActionsProvider",
    "FormatError",
    "GitHubActionsProvider",
    "GitHubWorkflow",
    "GitLabCIProvider",
    "GitLabPipeline",
    "ImageVerdict",
    "Issuer",
    "IssuerConfig",
    "IssuerEntry",
    "JwksArchive",
    "JwksClient",
    "KeyNotFoundError",
    "KeyOptions",
    "KeySet",
    "LiveKeys",
    "NetworkError",
    "OpkeyError",
    "PKToken",
    "PinnedKeys",
    "Policy",
    "PolicyError",
    "PolicyFile",
    "Provider",
    "ProviderError",
    "PublicJWK",
    "RegistryError",
    "Requirement",
    "RequirementOutcome",
    "ResponseTooLargeError",
    "SignatureError",
    "SignatureOutcome",
    "Signer",
    "SignerRequirement",
    "SigningKey",
    "SigningTime",
    "StaticProvider",
    "Subject",
    "TimestampAuthority",
    "TimestampAuthorityError",
    "TimestampClient",
    "TimestampError",
    "TimestampToken",
    "Trust",
    "TrustedIssuer",
    "UnsafeNoPolicy",
    "UntrustedTimestampError",
    "Verdict",
    "VerificationError",
    "VerifiedIdentity",
    "VerifiedMessage",
    "VerifiedTimestamp",
    "Verifier",
    "__version__",
    "auto_provider",
    "check_signed_while_valid",
    "evaluate_signers",
    "generate_signing_key",
    "issuers",
    "load_policy_file",
    "sign_image",
    "verify_image",
    "verify_timestamp",
]

#: Where each public name lives (imported on first attribute access).
_LOCATIONS = {
    "issuers": "opkey.issuers",
    **dict.fromkeys(
        (
            "TimestampAuthority",
            "TimestampClient",
            "TimestampToken",
            "VerifiedTimestamp",
            "check_signed_while_valid",
            "verify_timestamp",
        ),
        "opkey.timestamp",
    ),
    **dict.fromkeys(
        (
            "CommitmentError",
            "ConfigError",
            "ExpiredError",
            "ForeignSignatureError",
            "FormatError",
            "KeyNotFoundError",
            "NetworkError",
            "OpkeyError",
            "PolicyError",
            "ProviderError",
            "RegistryError",
            "ResponseTooLargeError",
            "SignatureError",
            "TimestampAuthorityError",
            "TimestampError",
            "UntrustedTimestampError",
            "VerificationError",
        ),
        "opkey.errors",
    ),
    **dict.fromkeys(("Digest",), "opkey.digest"),
    **dict.fromkeys(("Bundle",), "opkey.bundle"),
    **dict.fromkeys(("ExpiryPolicy",), "opkey.expiry"),
    **dict.fromkeys(("CommitmentType", "IssuerConfig"), "opkey.issuers"),
    **dict.fromkeys(("PublicJWK", "SigningKey", "generate_signing_key"), "opkey.keys"),
    **dict.fromkeys(("PKToken",), "opkey.pktoken"),
    **dict.fromkeys(("KeySet",), "opkey.jwks.keyset"),
    **dict.fromkeys(("ArchiveKeys", "LiveKeys", "PinnedKeys"), "opkey.jwks.sources"),
    **dict.fromkeys(("JwksClient",), "opkey.jwks.client"),
    **dict.fromkeys(("JwksArchive",), "opkey.jwks.archive"),
    **dict.fromkeys(
        (
            "AllOf",
            "AnyOf",
            "ClaimContains",
            "ClaimEquals",
            "ClaimGlob",
            "ClaimRegex",
            "Issuer",
            "Policy",
            "Subject",
            "UnsafeNoPolicy",
        ),
        "opkey.policy.claims",
    ),
    **dict.fromkeys(("GitHubWorkflow", "GitLabPipeline"), "opkey.policy.workloads"),
    **dict.fromkeys(
        ("Requirement", "SignerRequirement", "evaluate_signers"), "opkey.policy.signoff"
    ),
    **dict.fromkeys(("IssuerEntry", "PolicyFile", "load_policy_file"), "opkey.policy.file"),
    **dict.fromkeys(("KeyOptions", "Trust", "TrustedIssuer"), "opkey.verification.trust"),
    **dict.fromkeys(("VerifiedIdentity", "VerifiedMessage"), "opkey.verification.identity"),
    **dict.fromkeys(("SigningTime",), "opkey.verification.signing_time"),
    **dict.fromkeys(("Verifier",), "opkey.verification.verifier"),
    **dict.fromkeys(
        ("BundleEvidence", "CosignLayerEvidence", "Evidence"), "opkey.verification.evidence"
    ),
    **dict.fromkeys(
        ("RequirementOutcome", "SignatureOutcome", "Verdict"), "opkey.verification.verdict"
    ),
    **dict.fromkeys(("ImageVerdict", "sign_image", "verify_image"), "opkey.images"),
    **dict.fromkeys(("Signer",), "opkey.signer"),
    **dict.fromkeys(
        (
            "BrowserProvider",
            "DeviceFlowProvider",
            "ForgejoActionsProvider",
            "GitHubActionsProvider",
            "GitLabCIProvider",
            "Provider",
            "StaticProvider",
            "auto_provider",
        ),
        "opkey.providers",
    ),
}


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
