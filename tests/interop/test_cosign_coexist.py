"""cosign's own key-signed signatures beside opkey's in one ``.sig`` manifest.

The real ``cosign sign --key`` (a key pair from ``cosign generate-key-pair``, no transparency
log, the classic tag layout) and opkey sign the same image, in both orders. Afterwards:

* ``opkey verify IMAGE`` verifies opkey's layers and reports cosign's as *ignored*, with a
  note, never as an error: the image verifies, with one policy and with a policy file;
* an image signed by cosign alone has no opkey signature: that is a rejection that says so;
* each tool still verifies its own signatures: neither write dropped the other's layer, and
  opkey's merge keeps cosign's layers byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opkey import issuers
from opkey.cli import main
from opkey.cosign import COSIGN_SIGNATURE, OPKEY_PKTOKEN
from opkey.errors import PolicyError, SignatureError
from opkey.images import sign_image, verify_image
from opkey.jwks.client import JwksClient
from opkey.jwks.sources import LiveKeys
from opkey.policy.file import parse_policy_file
from opkey.policy.signoff import Requirement
from opkey.policy.workloads import GitHubWorkflow
from opkey.providers import GitHubActionsProvider
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import list_signatures
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.registry import seed_image
from opkey.signer import Signer
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from tests.cosign import Cosign, cosign, session_tripwire
from tests.registries import RunningRegistry

__all__ = ["cosign", "session_tripwire"]

pytestmark = pytest.mark.registry

REPO_ID = "614000001"


def _signer(idp: DevIdP) -> Signer:
    return Signer.from_provider(
        GitHubActionsProvider.from_env(idp.env(), jwks=JwksClient([idp.issuer]))
    )


def _verifier(idp: DevIdP) -> Verifier:
    trusted = TrustedIssuer(
        issuers.github_actions(issuer=idp.issuer), [LiveKeys(JwksClient([idp.issuer]))]
    )
    return Verifier(Trust([trusted]))


def _image(registry: RunningRegistry, client: RegistryClient, name: str) -> ImageReference:
    return seed_image(client, ImageReference.parse(f"{registry.host}/coexist/{name}:v1"))


def _cosign_sign(cosign: Cosign, key: Path, image: ImageReference) -> None:
    cosign.check(cosign.sign_key_args(key, str(image)))


@pytest.fixture
def key_pair(cosign: Cosign, tmp_path: Path) -> tuple[Path, Path]:
    """A cosign key pair, encrypted with COSIGN_PASSWORD, made by ``cosign generate-key-pair``."""
    return cosign.generate_key_pair(tmp_path / "keys")


def test_cosign_signatures_are_ignored_by_opkey_verify(
    cosign: Cosign,
    key_pair: tuple[Path, Path],
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    tmp_path: Path,
) -> None:
    private_key, public_key = key_pair
    # A second key: cosign skips a signature its key already made ("dupe detector").
    second_private, second_public = cosign.generate_key_pair(tmp_path / "second")
    image = _image(registry_server, registry_client, f"both-orders-{cosign.module}")
    _cosign_sign(cosign, private_key, image)  # cosign first: opkey merges into its .sig
    (cosign_layer,) = list_signatures(registry_client, image)
    signer = _signer(dev_idp)
    sign_image(registry_client, image, signer)
    assert list_signatures(registry_client, image)[0].descriptor == cosign_layer.descriptor
    _cosign_sign(cosign, second_private, image)  # then cosign appends to opkey's .sig

    layers = list_signatures(registry_client, image)
    assert len(layers) == 3
    assert [OPKEY_PKTOKEN in layer.annotations for layer in layers] == [False, True, False]
    assert all(COSIGN_SIGNATURE in layer.annotations for layer in layers)

    policy = GitHubWorkflow(issuer=dev_idp.issuer, repository_id=REPO_ID)
    result = verify_image(registry_client, image, _verifier(dev_idp), Requirement.of(policy))
    assert [s.index for s in result.verdict.signatures if s.identity is not None] == [1]
    assert result.verdict.rejected == ()
    assert [s.index for s in result.verdict.ignored] == [0, 2]
    for ignored in result.verdict.ignored:
        assert ignored.identity is None
        assert ignored.reason is not None
        assert "not an opkey signature" in ignored.reason
        assert "cosign signature made with a key" in ignored.reason

    # Each tool still verifies what it signed.
    for key in (public_key, second_public):
        cosign_own = cosign.verify(key, str(image))
        assert cosign_own.returncode == 0, cosign_own.stderr
        assert len(json.loads(cosign_own.stdout)) == 1
    ephemeral = tmp_path / "ephemeral.pem"
    ephemeral.write_bytes(signer.pktoken.cic_claims.upk.to_pem())
    opkey_by_cosign = cosign.verify(ephemeral, str(image))
    assert opkey_by_cosign.returncode == 0, opkey_by_cosign.stderr
    assert len(json.loads(opkey_by_cosign.stdout)) == 1


def test_cli_reports_cosign_layers_as_ignored(
    cosign: Cosign,
    key_pair: tuple[Path, Path],
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = _image(registry_server, registry_client, f"cli-{cosign.module}")
    sign_image(registry_client, image, _signer(dev_idp))
    _cosign_sign(cosign, key_pair[0], image)
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-opkey-test")
    base = ["verify", str(image), "--issuer", dev_idp.issuer, "--github-repository-id", REPO_ID]
    assert main([*base, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True
    signatures = report["signatures"]
    assert [s["index"] for s in signatures if not s["verified"] and not s["ignored"]] == []
    (ignored,) = [s for s in signatures if not s["verified"] and s["ignored"]]
    assert ignored["index"] == 1
    assert "not an opkey signature" in ignored["error"]
    assert [s["index"] for s in signatures if s["verified"]] == [0]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "Verified:" in out
    assert "ignored: layer 1: not an opkey signature" in out
    # inspect lists both kinds and exports the only opkey key without --signature.
    assert main(["inspect", str(image)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [s["kind"] for s in listing["signatures"]] == ["opkey", "other"]
    assert main(["inspect", str(image), "--public-key", "--signature", "1"]) == 2
    assert "holds no readable PK token" in capsys.readouterr().err


def test_image_signed_only_by_cosign_has_no_opkey_signature(
    cosign: Cosign,
    key_pair: tuple[Path, Path],
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = _image(registry_server, registry_client, f"cosign-only-{cosign.module}")
    _cosign_sign(cosign, key_pair[0], image)
    policy = GitHubWorkflow(issuer=dev_idp.issuer, repository_id=REPO_ID)
    with pytest.raises(SignatureError, match="has no opkey signatures"):
        verify_image(registry_client, image, _verifier(dev_idp), Requirement.of(policy))
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-opkey-test")
    code = main(
        ["verify", str(image), "--issuer", dev_idp.issuer, "--github-repository-id", REPO_ID]
    )
    assert code == 1
    assert "has no opkey signatures" in capsys.readouterr().err
    assert main(["inspect", str(image), "--public-key"]) == 2
    assert "no opkey signature" in capsys.readouterr().err


def test_policy_mismatch_beside_cosign_layers_is_a_policy_error(
    cosign: Cosign,
    key_pair: tuple[Path, Path],
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
) -> None:
    """Ignored layers do not change what the rejection is: a wrong repository stays a
    PolicyError, and the message counts the ignored layers."""
    image = _image(registry_server, registry_client, f"policy-{cosign.module}")
    sign_image(registry_client, image, _signer(dev_idp))
    _cosign_sign(cosign, key_pair[0], image)
    policy = GitHubWorkflow(issuer=dev_idp.issuer, repository_id="614000002")
    with pytest.raises(PolicyError, match="1 other signature ignored"):
        verify_image(registry_client, image, _verifier(dev_idp), Requirement.of(policy))


def test_policy_file_sign_off_ignores_cosign_layers(
    cosign: Cosign,
    key_pair: tuple[Path, Path],
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
) -> None:
    image = _image(registry_server, registry_client, f"signoff-{cosign.module}")
    _cosign_sign(cosign, key_pair[0], image)
    sign_image(registry_client, image, _signer(dev_idp))
    policy_file = parse_policy_file(f"""
version = 1
[[issuers]]
issuer = "{dev_idp.issuer}"
commitment = "aud"
require_gq = true
algorithms = ["GQ256"]
[[signers]]
name = "release"
github.issuer = "{dev_idp.issuer}"
github.repository_id = "{REPO_ID}"
""")
    result = verify_image(registry_client, image, _verifier(dev_idp), policy_file.requirement)
    assert len(result.verdict.identities) == 1
    assert [s.index for s in result.verdict.ignored] == [0]


def test_cosign_own_ed25519_image_signatures_do_not_verify_with_its_verify_key(
    cosign: Cosign,
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    tmp_path: Path,
) -> None:
    """Why opkey signs Ed25519 images with pure Ed25519: cosign's ``sign --key`` uses
    Ed25519ph for an Ed25519 key (``GetDefaultLoadOptions``), while ``verify --key`` loads a
    pure Ed25519 verifier, so cosign rejects its own Ed25519 image signatures (v2.6.5 and
    v3.1.3). opkey's verify with the same key, pure Ed25519, succeeds (test_cosign_verify.py).
    The layer is also not a pure Ed25519 signature over the payload, and opkey ignores it."""
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    pem = tmp_path / "ed25519.pem"
    pem.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cosign.check(["import-key-pair", "--key", str(pem), "--output-key-prefix", "imported"])
    image = _image(registry_server, registry_client, f"ed25519-{cosign.module}")
    _cosign_sign(cosign, cosign.home / "imported.key", image)
    rejected = cosign.verify(cosign.home / "imported.pub", str(image))
    assert rejected.returncode != 0
    assert "failed to verify signature" in rejected.stderr
    (layer,) = list_signatures(registry_client, image)
    signature = base64.b64decode(layer.annotations[COSIGN_SIGNATURE])
    with pytest.raises(InvalidSignature):
        private.public_key().verify(signature, layer.payload)
    sign_image(registry_client, image, _signer(dev_idp))
    policy = GitHubWorkflow(issuer=dev_idp.issuer, repository_id=REPO_ID)
    result = verify_image(registry_client, image, _verifier(dev_idp), Requirement.of(policy))
    assert [s.index for s in result.verdict.ignored] == [0]
    assert len(result.verdict.identities) == 1
