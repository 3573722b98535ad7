"""Attestation tests: tests marked ``both_registries`` run on distribution (no referrers API)
and on go-containerregistry's registry (referrers API), as in ``tests/registry/``."""

from __future__ import annotations

from tests.registry.conftest import ggcr_registry_server, pytest_generate_tests, registry_server

__all__ = ["ggcr_registry_server", "pytest_generate_tests", "registry_server"]
