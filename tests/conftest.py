"""Shared pytest fixtures: real data copied from public sources (see tests/data/SOURCES.md)
and a running dev OpenID provider."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opkey.devidp import DevIdP, DevIdPSettings
from opkey.jwks import JwksClient
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
