"""Container images for ``opkey sign IMAGE`` and ``opkey verify IMAGE``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opkey.cli.registry_options import RegistryOptions
    from opkey.cli.verification import VerificationRequest
    from opkey.http import Deadline
    from opkey.policy import Policy
    from opkey.policyfile import PolicyFile
    from opkey.registry.reference import ImageReference
    from opkey.signer import Signer
    from opkey.verifier import VerifiedIdentity, Verifier

__all__ = ["sign_image", "verify_image"]


def sign_image(
    image: str, signer: Signer, registry: RegistryOptions, deadline: Deadline
) -> ImageReference:
    """Sign ``image`` (resolving a tag to its digest) and attach the signature."""
    from opkey import images

    return images.sign_image(registry.client(image, deadline), image, signer, deadline=deadline)


def verify_image(
    request: VerificationRequest,
    verifier: Verifier,
    policy: Policy | None,
    policy_file: PolicyFile | None,
    deadline: Deadline,
) -> tuple[str, list[VerifiedIdentity], dict[str, Any]]:
    """Verify every signature of the requested image; see :func:`opkey.images.verify_image`."""
    from opkey import images

    assert request.image is not None
    result = images.verify_image(
        request.registry.client(request.image, deadline),
        request.image,
        verifier,
        policy=policy,
        policy_file=policy_file,
        at=request.at,
        deadline=deadline,
    )
    extra: dict[str, Any] = {
        "image": str(result.image),
        "rejected_signatures": [
            {"index": s.index, "error": s.error, "kind": s.kind}
            for s in result.signatures
            if s.identity is None
        ],
    }
    return str(result.image), result.valid, extra
