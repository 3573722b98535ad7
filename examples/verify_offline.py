"""Verify signatures with no network access: a pinned JWKS file and a policy file.

    python examples/verify_offline.py FILE POLICY.toml JWKS.json BUNDLE [BUNDLE ...]

Every bundle is verified cryptographically; the policy file's sign-off then decides whether
the required signers (e.g. build and scan workflows) all signed FILE. Exit status 0 when they
did, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path

from opkey import (
    Bundle,
    BundleEvidence,
    Digest,
    KeyOptions,
    OpkeyError,
    Trust,
    Verifier,
    load_policy_file,
)


def main(argv: list[str]) -> int:
    """Verify ``FILE`` against the bundles with the policy file and a pinned JWKS."""
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    file, policy_path, jwks = Path(argv[0]), Path(argv[1]), Path(argv[2])
    try:
        policy = load_policy_file(policy_path)
        # Offline: the keys come only from the pinned JWKS, nothing is fetched.
        trust = Trust.build(policy.issuers, KeyOptions(jwks_file=jwks, offline=True))
        evidence = [BundleEvidence(Bundle.from_json(Path(b).read_bytes()), b) for b in argv[3:]]
        verdict = Verifier(trust).verdict(policy.requirement, Digest.of_file(file), evidence)
        verdict.raise_if_rejected()
    except OpkeyError as exc:
        print(f"rejected: {exc}", file=sys.stderr)
        return 1
    for requirement in verdict.requirements:
        signer = verdict.signer(requirement.name)
        assert signer is not None
        print(
            f"{requirement.name}: signed by {signer.subject} ({signer.claims.get('workflow_ref')})"
        )
    print(f"verified offline: {file.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
