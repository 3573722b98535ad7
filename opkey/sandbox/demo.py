"""``opkey demo``: the whole keyless flow, end to end, on this machine only.

1. start the embedded dev OpenID provider on a free loopback port;
2. run a simulated GitHub Actions job: an ephemeral key, an ID token requested with
   ``audience=<commitment>``, its GQ256 form, a PK token;
3. sign a container image digest and a file;
4. verify both with a GitHub workflow policy pinned to stable repository and owner IDs;
5. show a tampered digest and a wrong-repository policy being rejected.

Nothing leaves loopback, nothing is written outside a temporary directory, and the run prints a
step-by-step account. It returns 0 only when every acceptance *and* every rejection happened as
expected, so it doubles as a smoke test.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = ["DemoError", "run_demo"]

SAMPLE_IMAGE = "registry.example.test/octo-org/octo-repo/app:1.4.2"
SAMPLE_IMAGE_DIGEST = "sha256:" + "3f" * 4 + "a9c1e7b2" * 7


class DemoError(Exception):
    """A step of the demo did not behave as it must (a bug, not bad input)."""


@dataclass
class _Narrator:
    out: TextIO
    step: int = 0

    def title(self, text: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {text}", file=self.out)

    def say(self, text: str) -> None:
        print(f"    {text}", file=self.out)


def _expect_rejection(narrate: _Narrator, what: str, action: Callable[[], object]) -> str:
    from opkey.errors import VerificationError

    try:
        action()
    except VerificationError as exc:
        narrate.say(f"rejected, as it must be: {type(exc).__name__}: {exc}")
        return type(exc).__name__
    raise DemoError(f"{what} was accepted; it must be rejected")


def run_demo(out: TextIO) -> int:
    """Run the demo, narrating to ``out``; return 0 on success."""
    from opkey import issuers
    from opkey.digest import Digest
    from opkey.policy.workloads import GitHubWorkflow
    from opkey.providers import GitHubActionsProvider
    from opkey.sandbox.devidp import DevIdP
    from opkey.signer import Signer
    from opkey.verification.trust import Trust
    from opkey.verification.verifier import Verifier

    narrate = _Narrator(out)
    print("opkey demo: keyless signing with OpenID Connect, all on loopback", file=out)
    with DevIdP() as idp, tempfile.TemporaryDirectory(prefix="opkey-demo-") as tmp:
        workload = idp.provider.settings.github
        narrate.title("Start the embedded dev OpenID provider")
        narrate.say(f"issuer    {idp.issuer}")
        narrate.say(f"discovery {idp.issuer}/.well-known/openid-configuration")
        narrate.say(f"signing key kid={idp.active_kid} (RS256, published in its JWKS)")

        narrate.title("Simulated GitHub Actions job obtains a PK token")
        env = idp.env()
        narrate.say(
            f"job: {workload.repository} (id {workload.repository_id}), "
            f"workflow {workload.workflow_ref}"
        )
        narrate.say(
            "env: GITHUB_ACTIONS=true, ACTIONS_ID_TOKEN_REQUEST_URL, "
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN (as with `permissions: id-token: write`)"
        )
        provider = GitHubActionsProvider.from_env(env, issuer=idp.issuer)
        signer = Signer.from_provider(provider)
        pktoken = signer.pktoken
        narrate.say(f"ephemeral key: ES256, thumbprint {pktoken.cic_claims.upk.thumbprint()}")
        narrate.say(f"commitment (sent as audience): {pktoken.cic_claims.commitment()}")
        narrate.say(f"ID token: sub={pktoken.claims['sub']}")
        narrate.say(
            f"provider signature replaced by a GQ256 proof ({pktoken.op.alg}); "
            "the PK token cannot be replayed as a bearer token"
        )
        narrate.say(f"PK token hash {pktoken.hash()}")

        narrate.title("Sign a container image digest and a file")
        image_digest = Digest(SAMPLE_IMAGE_DIGEST)
        image_bundle = signer.sign_digest(image_digest)
        narrate.say(f"image {SAMPLE_IMAGE}@{image_digest}: signed")
        artifact = Path(tmp) / "octo-repo-1.4.2.tar.gz"
        artifact.write_bytes(b"release artifact of octo-org/octo-repo 1.4.2\n" * 64)
        file_digest = Digest.of_file(artifact)
        file_bundle = signer.sign_digest(file_digest)
        bundle_path = Path(f"{artifact}.opkey.json")
        bundle_path.write_bytes(file_bundle.to_json())
        narrate.say(f"file {artifact.name} ({file_digest}): bundle {bundle_path.name}")

        narrate.title("Verify both with a GitHub workflow policy")
        verifier = Verifier(Trust.of([issuers.github_actions(issuer=idp.issuer)]))
        policy = GitHubWorkflow(
            issuer=idp.issuer,
            repository_id=workload.repository_id,
            repository_owner_id=workload.repository_owner_id,
            workflow_ref=workload.workflow_ref,
            ref=workload.ref,
        )
        narrate.say(f"policy: {policy.describe()}")
        from opkey.bundle import Bundle

        for name, bundle, digest in (
            ("image digest", image_bundle, image_digest),
            ("file", Bundle.from_json(bundle_path.read_bytes()), Digest.of_file(artifact)),
        ):
            identity = verifier.verify_bundle(bundle, digest, policy=policy)
            narrate.say(
                f"{name}: verified, signed by {identity.subject} "
                f"(repository_id {identity.claims['repository_id']}, "
                f"key from {identity.key_source} JWKS)"
            )

        narrate.title("A tampered digest is rejected")
        tampered = Digest(image_digest.value[:-1] + ("0" if image_digest.value[-1] != "0" else "1"))
        narrate.say(f"verifying the image bundle against {tampered}")
        _expect_rejection(
            narrate,
            "a tampered digest",
            lambda: verifier.verify_bundle(image_bundle, tampered, policy=policy),
        )
        artifact.write_bytes(artifact.read_bytes() + b"backdoor\n")
        narrate.say(f"appending a line to {artifact.name} and verifying it again")
        _expect_rejection(
            narrate,
            "a modified file",
            lambda: verifier.verify_bundle(file_bundle, Digest.of_file(artifact), policy=policy),
        )

        narrate.title("A policy for another repository rejects the signature")
        other = GitHubWorkflow(
            issuer=idp.issuer,
            repository="octo-org/other-repo",
            repository_id="614000999",
        )
        narrate.say(f"policy: {other.describe()}")
        _expect_rejection(
            narrate,
            "a wrong-repository policy",
            lambda: verifier.verify_bundle(image_bundle, image_digest, policy=other),
        )

    print(
        "\nDemo complete: 2 signatures verified, 3 forgeries rejected. "
        "Nothing was sent beyond loopback.",
        file=out,
    )
    return 0
