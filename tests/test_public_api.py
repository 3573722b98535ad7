"""The public API: every exported name resolves, __all__ is complete and sorted, import is lazy."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import opkey
import opkey.errors


def test_all_is_sorted_and_resolves() -> None:
    assert opkey.__all__ == sorted(opkey.__all__)
    for name in opkey.__all__:
        assert getattr(opkey, name) is not None, name


def test_every_error_class_is_exported() -> None:
    errors = {
        name
        for name, value in vars(opkey.errors).items()
        if isinstance(value, type) and issubclass(value, opkey.errors.OpkeyError)
    }
    assert errors <= set(opkey.__all__)
    assert set(opkey.errors.__all__) == errors


def test_the_trust_and_verdict_layer_is_public() -> None:
    """The names every caller verifies with, exported from ``opkey`` itself."""
    from opkey.policy.signoff import Requirement
    from opkey.verification.trust import KeyOptions, Trust
    from opkey.verification.verdict import Verdict
    from opkey.verification.verifier import Verifier

    assert opkey.Trust is Trust
    assert opkey.KeyOptions is KeyOptions
    assert opkey.Requirement is Requirement
    assert opkey.Verdict is Verdict
    assert opkey.Verifier is Verifier
    for name in (
        "BundleEvidence",
        "ClaimedSignature",
        "CosignLayerEvidence",
        "IssuerEntry",
        "RequirementOutcome",
        "SignatureOutcome",
        "TrustedIssuer",
        "VerifiedMessage",
        "issuers",
        "verify_image",
    ):
        assert name in opkey.__all__, name
    assert callable(opkey.issuers.issuer_config)
    # Evidence only claims; the verifier is what checks every kind of it.
    assert callable(Verifier.check)
    assert callable(Verifier.open_signature)


def test_unknown_attribute() -> None:
    import pytest

    with pytest.raises(AttributeError):
        _ = opkey.NoSuchThing


def test_import_is_lazy() -> None:
    """``import opkey`` must not load cryptography, requests or the CLI's heavy parts."""
    code = (
        "import sys, opkey; "
        "heavy = [m for m in ('cryptography', 'requests', 'jwt', 'authlib', 'gmpy2') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_offline_verify_path_does_not_load_network_libraries() -> None:
    code = (
        "import sys; from opkey.cli import main; "
        "import opkey.verification.verifier, opkey.verification.trust, opkey.bundle, "
        "opkey.policy.file, opkey.jwks.sources, opkey.cli.verification; "
        "print(','.join(m for m in ('requests', 'authlib', 'jwt') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_offline_verify_of_one_gq_bundle_loads_no_network_library_and_no_gmpy2(
    tmp_path: pathlib.Path,
) -> None:
    """One signature is cheaper to check with Python integers than gmpy2 is to import."""
    from opkey.digest import Digest
    from opkey.issuers import CommitmentType
    from opkey.jwks.keyset import KeySet
    from opkey.signer import Signer
    from tests.helpers import NOW_TS, MiniOP

    op = MiniOP()
    pkt, key = op.pktoken(CommitmentType.AUD, gq_sign=True)
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release")
    bundle = Signer(pkt, key).sign_digest(Digest.of_file(artifact))
    (tmp_path / "app.tar.gz.opkey.json").write_bytes(bundle.to_json())
    (tmp_path / "jwks.json").write_text(json.dumps(KeySet((op.public_jwk,)).to_dict()))
    args = [
        "verify", "--file", str(artifact), "--issuer", op.issuer, "--commitment", "aud",
        "--subject", "user-1234", "--jwks", str(tmp_path / "jwks.json"), "--offline",
        "--at", str(NOW_TS),
    ]  # fmt: skip
    code = (
        "import sys; from opkey.cli import main; code = main(sys.argv[1:]); "
        "print(code, ','.join(m for m in ('requests', 'authlib', 'jwt', 'gmpy2') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "0", result.stderr
