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
    Digest,
    OpkeyError,
    PinnedKeys,
    TrustedIssuer,
    UnsafeNoPolicy,
    Verifier,
    load_policy_file,
)


def main(argv: list[str]) -> int:
    """Verify ``FILE`` against the bundles with the policy file and a pinned JWKS."""
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    file, policy_path, jwks = Path(argv[0]), Path(argv[1]), Path(argv[2])
    policy = load_policy_file(policy_path)
    verifier = Verifier(
        [
            TrustedIssuer(entry.config, [PinnedKeys.from_file(entry.issuer, jwks)])
            for entry in policy.issuers
        ]
    )
    digest = Digest.of_file(file)
    try:
        identities = [
            # identity checks happen in the sign-off below, across all signatures
            verifier.verify_bundle(
                Bundle.from_json(Path(b).read_bytes()), digest, policy=UnsafeNoPolicy()
            )
            for b in argv[3:]
        ]
        result = policy.evaluate([i.claims for i in identities])
        result.raise_for_unmet()
    except OpkeyError as exc:
        print(f"rejected: {exc}", file=sys.stderr)
        return 1
    for name, index in result.assignments.items():
        print(
            f"{name}: signed by {identities[index].subject} "
            f"({identities[index].claims.get('workflow_ref')})"
        )
    print(f"verified offline: {file.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
