"""The public API: every exported name resolves, __all__ is complete and sorted, import is lazy."""

from __future__ import annotations

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
        "import opkey.verifier, opkey.bundle, opkey.policy, opkey.keysource, opkey.policyfile; "
        "print(','.join(m for m in ('requests', 'authlib', 'jwt') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
