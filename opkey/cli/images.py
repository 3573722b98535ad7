"""The registry client the command line uses for ``opkey sign IMAGE`` and ``opkey verify IMAGE``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opkey.registry.client import RegistryClient

__all__ = ["registry_client"]


def registry_client(insecure: Sequence[str] = ()) -> RegistryClient:
    """A registry client: TLS verified, plain http only for loopback and ``insecure`` hosts,
    credentials from docker's config.json."""
    from opkey.registry.client import RegistryClient

    return RegistryClient(insecure_registries=insecure)
