"""Sign a file in a (simulated) GitHub Actions job and verify who signed it.

Runs anywhere: the embedded dev OpenID provider stands in for GitHub. In a real workflow,
drop the DevIdP and use ``auto_provider()``; verifiers trust ``issuers.github_actions()``.

    python examples/sign_and_verify.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from opkey import (
    Digest,
    GitHubActionsProvider,
    GitHubWorkflow,
    PolicyError,
    Signer,
    Trust,
    Verifier,
    issuers,
)
from opkey.sandbox.devidp import DevIdP


def main() -> int:
    """Sign, verify, and show a wrong-repository policy failing."""
    with DevIdP() as idp, tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "app.tar.gz"
        artifact.write_bytes(b"release contents")

        # -- in the CI job -------------------------------------------------------------
        provider = GitHubActionsProvider.from_env(idp.env())  # auto_provider() on GitHub
        bundle = Signer.from_provider(provider).sign_digest(Digest.of_file(artifact))

        # -- in the deploy gate ----------------------------------------------------------
        # Trust GitHub's settings (GQ256 required, aud commitment) at the dev IdP's URL; its
        # keys come from its live JWKS. Trust.build() does the same from a policy file.
        verifier = Verifier(Trust.of([issuers.github_actions(issuer=idp.issuer)]))
        policy = GitHubWorkflow(issuer=idp.issuer, repository_id="614000001", ref="refs/heads/main")
        identity = verifier.verify_bundle(bundle, Digest.of_file(artifact), policy=policy)
        print(f"verified: {artifact.name} signed by {identity.subject}")

        other = GitHubWorkflow(issuer=idp.issuer, repository_id="614000002")
        try:
            verifier.verify_bundle(bundle, Digest.of_file(artifact), policy=other)
        except PolicyError as exc:
            print(f"rejected for another repository: {exc}")
            return 0
    print("a wrong-repository policy was accepted", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
