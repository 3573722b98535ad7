"""Shared pytest fixtures: real data copied from public sources (see tests/data/SOURCES.md)
a running dev OpenID provider and a real OCI registry."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opkey.jwks.client import JwksClient
from opkey.registry import DockerCredentialStore, ImageReference, RegistryClient
from opkey.registry.retry import RetryPolicy
from opkey.sandbox.devidp import DevIdP, DevIdPSettings
from opkey.sandbox.registry import LocalRegistry, find_registry_binary, seed_image
from tests.helpers import FakeClock

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Directory of the real fixtures (tokens, JWKS snapshots, vectors)."""
    return DATA


# -- the dev OpenID provider ----------------------------------------------------------------
# `dev_idp` is one provider shared by the session: use it for flows that do not change its
# state (no key rotation, default settings). `make_dev_idp(settings=..., clock=...)` starts a
# private one, stopped after the test. `fake_clock` is a settable clock for both.


@pytest.fixture
def fake_clock() -> FakeClock:
    """A :class:`FakeClock` starting in 2027."""
    return FakeClock()


@pytest.fixture(scope="session")
def dev_idp() -> Iterator[DevIdP]:
    """A running dev OpenID provider shared by the session (do not rotate its keys)."""
    with DevIdP(settings=DevIdPSettings(device_interval=1)) as idp:
        yield idp


@pytest.fixture
def make_dev_idp() -> Iterator[Callable[..., DevIdP]]:
    """Start private dev providers: ``make_dev_idp(settings=..., clock=...)``."""
    started: list[DevIdP] = []

    def make(
        settings: DevIdPSettings | None = None, clock: Callable[[], float] | None = None
    ) -> DevIdP:
        idp = DevIdP(settings=settings, clock=clock) if clock else DevIdP(settings=settings)
        started.append(idp.start())
        return idp

    yield make
    for idp in started:
        idp.stop()


@pytest.fixture
def dev_jwks(dev_idp: DevIdP) -> JwksClient:
    """A fresh JWKS client that trusts only the shared dev provider."""
    return JwksClient([dev_idp.issuer])


# --- OCI registry (the CNCF distribution registry, Debian package docker-registry) -----------
#
# ``registry_server`` is one registry process for the whole session (tests use distinct
# repositories, see ``registry_image``); ``registry_factory`` starts extra ones (own storage,
# authentication, restarts) that are stopped after the test. When docker-registry is missing
# the tests skip, except under CI=true, where they fail: CI must run them all.

#: Retries fast enough for tests, patient enough for a registry restart.
TEST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.5, deadline=20.0)


def require_registry_binary() -> str:
    """The docker-registry path; skips the test (fails it under CI=true) when missing."""
    binary = find_registry_binary()
    if binary is None:
        message = (
            "the CNCF distribution registry (docker-registry) is not installed; "
            "install it: apt-get install docker-registry"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def make_registry_client(**options: Any) -> RegistryClient:
    """A client that ignores the user's docker config and retries quickly."""
    options.setdefault("docker_config", DockerCredentialStore())
    options.setdefault("retry", TEST_RETRY)
    options.setdefault("timeout", 10.0)
    return RegistryClient(**options)


@pytest.fixture(scope="session")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A running distribution registry on 127.0.0.1 for the whole session."""
    binary = require_registry_binary()
    server = LocalRegistry(tmp_path_factory.mktemp("registry"), binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., LocalRegistry]]:
    """Start extra registries: ``registry_factory(htpasswd=…, token=…)``; all stopped after."""
    binary = require_registry_binary()
    started: list[LocalRegistry] = []

    def start(**options: Any) -> LocalRegistry:
        server = LocalRegistry(tmp_path / f"registry-{len(started)}", binary=binary, **options)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def registry_client_factory() -> Callable[..., RegistryClient]:
    """``factory(**options)``: RegistryClients that ignore the user's docker config and retry
    quickly (no registry needed: for stand-in servers too)."""
    return make_registry_client


@pytest.fixture
def registry_client(registry_server: LocalRegistry) -> RegistryClient:
    """A client for ``registry_server`` (no user credentials, fast retries)."""
    return make_registry_client()


@pytest.fixture
def registry_image(
    registry_server: LocalRegistry, registry_client: RegistryClient, request: pytest.FixtureRequest
) -> ImageReference:
    """A freshly pushed one-layer image in a repository of its own, referenced by digest."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60] or "image"
    repository = f"test/{name}-{uuid.uuid4().hex[:8]}"
    ref = ImageReference.parse(f"{registry_server.host}/{repository}:v1")
    return seed_image(registry_client, ref)
