"""Container images for ``opkey sign IMAGE`` and ``opkey verify IMAGE``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opkey.cli.verification import VerificationRequest
    from opkey.policy import Policy
    from opkey.policyfile import PolicyFile
    from opkey.registry.client import RegistryClient
    from opkey.registry.reference import ImageReference
    from opkey.signer import Signer
    from opkey.verifier import VerifiedIdentity, Verifier

__all__ = ["registry_client", "sign_image", "verify_image"]


def registry_client(insecure: Sequence[str] = ()) -> RegistryClient:
    """A registry client: TLS verified, plain http only for loopback and ``insecure`` hosts,
    credentials from docker's config.json."""
    from opkey.registry.client import RegistryClient

    return RegistryClient(insecure_registries=insecure)


def sign_image(image: str, signer: Signer, insecure: Sequence[str] = ()) -> ImageReference:
    """Sign ``image`` (resolving a tag to its digest) and attach the signature."""
    from opkey import images

    return images.sign_image(registry_client(insecure), image, signer)


def verify_image(
    request: VerificationRequest,
    verifier: Verifier,
    policy: Policy | None,
    policy_file: PolicyFile | None,
) -> tuple[str, list[VerifiedIdentity], dict[str, Any]]:
    """Verify every signature of the requested image; see :func:`opkey.images.verify_image`."""
    from opkey import images

    assert request.image is not None
    result = images.verify_image(
        registry_client(request.insecure_registries),
        request.image,
        verifier,
        policy=policy,
        policy_file=policy_file,
        at=request.at,
    )
    extra: dict[str, Any] = {
        "image": str(result.image),
        "rejected_signatures": [
            {"index": s.index, "error": s.error, "kind": s.kind} for s in result.rejected
        ],
        "ignored_signatures": [{"index": s.index, "note": s.ignored} for s in result.ignored],
    }
    return str(result.image), result.valid, extra
