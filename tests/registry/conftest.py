"""Registry tests marked ``both_registries`` run on each registry implementation.

Such a test takes ``registry_server`` (directly, or through ``registry_client`` and
``registry_image``) as usual; here that fixture is parametrized over
:data:`tests.registries.REGISTRY_KINDS`, so the same test body runs against the CNCF
distribution registry and against go-containerregistry's. Unmarked tests get distribution
only: the tests that lean on distribution's own behaviour (restarts with storage kept,
authentication, checks on the blobs a manifest names) and the pure format checks, which say
nothing new on a second registry, stay single.
"""

from __future__ import annotations

import pytest

from opkey.sandbox.registry import LocalRegistry
from tests.registries import REGISTRY_KINDS, RunningRegistry, ggcr_registry_server

__all__ = ["ggcr_registry_server", "pytest_generate_tests", "registry_server"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``registry_server`` for tests marked ``both_registries``."""
    if metafunc.definition.get_closest_marker("both_registries") is None:
        return
    if "registry_server" in metafunc.fixturenames:
        metafunc.parametrize("registry_server", REGISTRY_KINDS, indirect=True)


@pytest.fixture
def registry_server(
    request: pytest.FixtureRequest, registry_server: LocalRegistry
) -> RunningRegistry:
    """The distribution registry, or for ``both_registries`` tests each kind in turn."""
    kind = getattr(request, "param", "distribution")
    if kind == "distribution":
        return registry_server
    from tests.registries import registry_of_kind

    return registry_of_kind(request, kind)
