"""Fixtures: two real RFC 3161 authorities on loopback, and their faulty variants.

* ``sigstore_tsa``: sigstore's timestamp-authority with its in-memory signer; its chain comes
  from its ``/api/v1/timestamp/certchain`` endpoint.
* ``openssl_tsa``: ``openssl ts -reply`` with a root → intermediate → TSA chain made here.
* ``tsa``: each of the two in turn (tests using it run once per authority).
* ``faulty_tsa(fault)``: the URL of ``tsa`` answering with a :class:`Fault`.
* ``tsa_down_url``: a loopback URL where nothing listens.
* ``rejecting_tsa``: the URL of ``tsa`` refusing every request (OpenSSL: a time-stamp response
  with status *rejection*, as its configuration accepts only SHA-512 imprints; sigstore's:
  HTTP 400 to a policy it does not accept).
* ``expired_tsa``: ``tsa``'s implementation signing with a TSA certificate that has expired.
* ``late_tsa``: a URL of ``tsa`` and the ``iat``/``exp`` of an ID token such that the stamped
  time lies after ``exp`` (OpenSSL under ``faketime`` two hours ahead; sigstore's authority,
  whose Go clock faketime cannot move, stamping now for an ID token that expired ten minutes
  ago).
* ``other_pki``: a TSA chain nobody configured; ``make_pki`` for more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from opkey import TimestampAuthority
from tests.timestamps.authorities import (
    Backend,
    Fault,
    OpenSslBackend,
    Pki,
    SigstoreServer,
    TsaFront,
    free_port_url,
    make_pki,
)
from tests.toolchain import go_tool, system_tool

KINDS = ("sigstore", "openssl")


@dataclass(frozen=True)
class RunningTsa:
    """One authority on loopback, as a verifier configures it."""

    kind: str
    url: str
    chain_pem: bytes
    backend: Backend
    work: Path

    @property
    def authority(self) -> TimestampAuthority:
        """The configured trust: the whole chain, TSA certificate pinned."""
        return TimestampAuthority.from_pem(self.chain_pem)


@dataclass(frozen=True)
class LateScenario:
    """A TSA whose stamps lie after ``expires_at`` of an ID token issued at ``issued_at``."""

    url: str
    authority: TimestampAuthority
    issued_at: datetime
    expires_at: datetime


@pytest.fixture(scope="session")
def openssl_bin() -> str:
    return system_tool("openssl", "openssl")


@pytest.fixture(scope="session")
def faketime_bin() -> str:
    return system_tool("faketime", "faketime")


@pytest.fixture(scope="session")
def sigstore_binary() -> Path:
    return go_tool("timestamp-authority", "timestamp-server")


@pytest.fixture(scope="session")
def unshare_bin() -> str:
    return system_tool("unshare", "util-linux")


@pytest.fixture(scope="session")
def sigstore_tsa(
    tmp_path_factory: pytest.TempPathFactory,
    sigstore_binary: Path,
    unshare_bin: str,
    openssl_bin: str,
) -> Iterator[RunningTsa]:
    """sigstore's timestamp-authority, in-memory signer, behind a loopback front."""
    work = tmp_path_factory.mktemp("sigstore-tsa")
    server = SigstoreServer(sigstore_binary, unshare_bin, work / "server")
    try:
        chain = server.chain_pem()
        front = TsaFront(
            server.backend,
            openssl=openssl_bin,
            work=work,
            pages={"/api/v1/timestamp/certchain": chain},
        )
        try:
            yield RunningTsa(
                "sigstore", front.url + "api/v1/timestamp", chain, server.backend, work
            )
        finally:
            front.close()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def openssl_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("openssl-pki"), name="opkey test OpenSSL TSA")


@pytest.fixture(scope="session")
def openssl_tsa(
    tmp_path_factory: pytest.TempPathFactory, openssl_bin: str, openssl_pki: Pki
) -> Iterator[RunningTsa]:
    """``openssl ts -reply`` behind a loopback HTTP handler."""
    work = tmp_path_factory.mktemp("openssl-tsa")
    backend = OpenSslBackend(openssl_bin, openssl_pki, work / "openssl")
    front = TsaFront(backend, openssl=openssl_bin, work=work)
    try:
        yield RunningTsa("openssl", front.url, openssl_pki.chain_pem, backend, work)
    finally:
        front.close()


@pytest.fixture(params=KINDS)
def tsa(request: pytest.FixtureRequest) -> RunningTsa:
    """Each authority in turn."""
    running: RunningTsa = request.getfixturevalue(f"{request.param}_tsa")
    return running


@pytest.fixture
def make_front(openssl_bin: str, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``make_front(backend, fault=None)``: the URL of a new front, closed after the test."""
    fronts: list[TsaFront] = []

    def make(backend: Backend, fault: Fault | None = None) -> str:
        front = TsaFront(backend, openssl=openssl_bin, work=tmp_path, fault=fault)
        fronts.append(front)
        return front.url

    yield make
    for front in fronts:
        front.close()


@pytest.fixture
def faulty_tsa(tsa: RunningTsa, make_front: Callable[..., str]) -> Callable[[Fault], str]:
    """``faulty_tsa(fault)``: the URL of ``tsa`` answering with ``fault``."""
    return lambda fault: make_front(tsa.backend, fault)


@pytest.fixture
def tsa_down_url() -> str:
    return free_port_url()


@pytest.fixture
def rejecting_tsa(
    tsa: RunningTsa,
    make_front: Callable[..., str],
    openssl_bin: str,
    openssl_pki: Pki,
    tmp_path: Path,
) -> str:
    if tsa.kind == "openssl":
        backend = OpenSslBackend(
            openssl_bin, openssl_pki, tmp_path / "sha512-only", digests="sha512"
        )
        return make_front(backend)
    return make_front(tsa.backend, Fault.UNACCEPTED_POLICY)


@pytest.fixture
def expired_tsa(
    tsa: RunningTsa,
    make_front: Callable[..., str],
    openssl_bin: str,
    sigstore_binary: Path,
    unshare_bin: str,
    tmp_path: Path,
) -> Iterator[tuple[str, TimestampAuthority]]:
    """The URL of an authority whose TSA certificate has expired, and its configured chain.

    OpenSSL signs with a certificate that expired yesterday. sigstore's authority checks its
    chain at start-up against its clock (which faketime cannot move: Go reads the time without
    libc), so it gets a certificate that expires a few seconds after it starts, and the test
    waits past that.
    """
    now = datetime.now(timezone.utc)
    if tsa.kind == "openssl":
        pki = make_pki(
            tmp_path / "expired",
            name="expired OpenSSL TSA",
            not_before=now - timedelta(days=30),
            not_after=now - timedelta(days=1),
        )
        yield (
            make_front(OpenSslBackend(openssl_bin, pki, tmp_path / "expired-openssl")),
            (pki.authority()),
        )
        return
    for lifetime in (4, 15, 60):  # seconds; longer only if the machine is too busy to start
        pki = make_pki(
            tmp_path / f"expiring-{lifetime}",
            name="expiring sigstore TSA",
            not_before=now - timedelta(days=1),
            not_after=datetime.now(timezone.utc) + timedelta(seconds=lifetime),
        )
        try:
            server = SigstoreServer(
                sigstore_binary, unshare_bin, tmp_path / f"server-{lifetime}", pki=pki
            )
        except RuntimeError:
            continue
        try:
            remaining = (pki.leaf.not_valid_after_utc - datetime.now(timezone.utc)).total_seconds()
            time.sleep(max(0.0, remaining) + 1.1)
            yield make_front(server.backend), pki.authority()
        finally:
            server.stop()
        return
    pytest.fail("sigstore's timestamp-server did not start with a short-lived certificate")


@pytest.fixture
def late_tsa(
    tsa: RunningTsa,
    make_front: Callable[..., str],
    openssl_bin: str,
    faketime_bin: str,
    openssl_pki: Pki,
    tmp_path: Path,
) -> LateScenario:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    if tsa.kind == "openssl":
        backend = OpenSslBackend(
            openssl_bin, openssl_pki, tmp_path / "late", faketime=(faketime_bin, "+2h")
        )
        return LateScenario(
            make_front(backend),
            tsa.authority,
            issued_at=now - timedelta(seconds=60),
            expires_at=now + timedelta(seconds=240),
        )
    return LateScenario(
        tsa.url,
        tsa.authority,
        issued_at=now - timedelta(seconds=900),
        expires_at=now - timedelta(seconds=600),
    )


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A chain no test authority uses."""
    return make_pki(tmp_path_factory.mktemp("other-pki"), name="unrelated TSA")
