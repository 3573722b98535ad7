"""The registry fixture skips without docker-registry locally, and fails under CI=true."""

from __future__ import annotations

import pytest

import tests.conftest as conftest


def test_missing_registry_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(conftest, "find_registry_binary", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install docker-registry"):
        conftest.require_registry_binary()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install docker-registry"):
        conftest.require_registry_binary()


def test_installed_registry_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "find_registry_binary", lambda: "/usr/bin/docker-registry")
    assert conftest.require_registry_binary() == "/usr/bin/docker-registry"
