"""opkey: keyless signing with OpenID Connect, wire-compatible with OpenPubkey.

The names below are the public API; they are loaded on first use, so ``import opkey`` (and
``opkey --version``) stays fast. Recipes::

    from opkey import Digest, GitHubWorkflow, Signer, Verifier, presets

    signer = Signer.from_provider(auto_provider())          # in CI
    bundle = signer.sign_digest(Digest.of_file("app.tar.gz"))

    identity = verifier.verify_bundle(bundle, Digest.of_file("app.tar.gz"),
                                      policy=GitHubWorkflow(repository_id="614000001"))

Lower-level modules (``opkey.pktoken``, ``opkey.cic``, ``opkey.gq``, ``opkey.verify``…) are
the protocol core: sharp tools, documented in ``spec/protocol.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from opkey._version import __version__

if TYPE_CHECKING:
    from opkey import presets
    from opkey.archive import JwksArchive
    from opkey.artifact import Digest
    from opkey.bundle import Bundle
    from opkey.errors import (
        CommitmentError,
        ConfigError,
        DeadlineError,
        ExpiredError,
        FormatError,
        KeyNotFoundError,
        NetworkError,
        OpkeyError,
        PolicyError,
        ProviderError,
        RegistryError,
        SignatureError,
        VerificationError,
    )
    from opkey.expiry import ExpiryPolicy
    from opkey.http import Deadline
    from opkey.jwks import JwksClient
    from opkey.keys import PublicJWK, SigningKey, generate_signing_key
    from opkey.keyset import KeySet
    from opkey.keysource import ArchiveKeys, LiveKeys, PinnedKeys
    from opkey.pktoken import PKToken
    from opkey.policy import (
        AllOf,
        AnyOf,
        ClaimContains,
        ClaimEquals,
        ClaimGlob,
        ClaimRegex,
        GitHubWorkflow,
        GitLabPipeline,
        Issuer,
        Policy,
        Subject,
        UnsafeNoPolicy,
    )
    from opkey.policyfile import PolicyFile, load_policy_file
    from opkey.providers import (
        BrowserProvider,
        DeviceFlowProvider,
        GitHubActionsProvider,
        GitLabCIProvider,
        Provider,
        StaticProvider,
        auto_provider,
    )
    from opkey.signer import Signer
    from opkey.signoff import SignerRequirement, evaluate_signers
    from opkey.verifier import TrustedIssuer, VerifiedIdentity, Verifier
    from opkey.verify import CommitmentType, IssuerConfig

__all__ = [
    "AllOf",
    "AnyOf",
    "ArchiveKeys",
    "BrowserProvider",
    "Bundle",
    "ClaimContains",
    "ClaimEquals",
    "ClaimGlob",
    "ClaimRegex",
    "CommitmentError",
    "CommitmentType",
    "ConfigError",
    "Deadline",
    "DeadlineError",
    "DeviceFlowProvider",
    "Digest",
    "ExpiredError",
    "ExpiryPolicy",
    "FormatError",
    "GitHubActionsProvider",
    "GitHubWorkflow",
    "GitLabCIProvider",
    "GitLabPipeline",
    "Issuer",
    "IssuerConfig",
    "JwksArchive",
    "JwksClient",
    "KeyNotFoundError",
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
    "SignatureError",
    "Signer",
    "SignerRequirement",
    "SigningKey",
    "StaticProvider",
    "Subject",
    "TrustedIssuer",
    "UnsafeNoPolicy",
    "VerificationError",
    "VerifiedIdentity",
    "Verifier",
    "__version__",
    "auto_provider",
    "evaluate_signers",
    "generate_signing_key",
    "load_policy_file",
    "presets",
]

#: Where each public name lives (imported on first attribute access).
_LOCATIONS = {
    "presets": "opkey.presets",
    "JwksArchive": "opkey.archive",
    "Digest": "opkey.artifact",
    "Bundle": "opkey.bundle",
    "ExpiryPolicy": "opkey.expiry",
    "Deadline": "opkey.http",
    "JwksClient": "opkey.jwks",
    "KeySet": "opkey.keyset",
    "PKToken": "opkey.pktoken",
    "PolicyFile": "opkey.policyfile",
    "load_policy_file": "opkey.policyfile",
    "Signer": "opkey.signer",
    "SignerRequirement": "opkey.signoff",
    "evaluate_signers": "opkey.signoff",
    "TrustedIssuer": "opkey.verifier",
    "VerifiedIdentity": "opkey.verifier",
    "Verifier": "opkey.verifier",
    "CommitmentType": "opkey.verify",
    "IssuerConfig": "opkey.verify",
    **dict.fromkeys(("ArchiveKeys", "LiveKeys", "PinnedKeys"), "opkey.keysource"),
    **dict.fromkeys(("PublicJWK", "SigningKey", "generate_signing_key"), "opkey.keys"),
    **dict.fromkeys(
        (
            "CommitmentError",
            "ConfigError",
            "DeadlineError",
            "ExpiredError",
            "FormatError",
            "KeyNotFoundError",
            "NetworkError",
            "OpkeyError",
            "PolicyError",
            "ProviderError",
            "RegistryError",
            "SignatureError",
            "VerificationError",
        ),
        "opkey.errors",
    ),
    **dict.fromkeys(
        (
            "AllOf",
            "AnyOf",
            "ClaimContains",
            "ClaimEquals",
            "ClaimGlob",
            "ClaimRegex",
            "GitHubWorkflow",
            "GitLabPipeline",
            "Issuer",
            "Policy",
            "Subject",
            "UnsafeNoPolicy",
        ),
        "opkey.policy",
    ),
    **dict.fromkeys(
        (
            "BrowserProvider",
            "DeviceFlowProvider",
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
