"""Signing through failures of the real registry: injected 5xx/429, a registry restarted in
the middle of a run, a signer stopped between its steps. Clear errors or successful retries,
and no signature lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping

import pytest

from opkey.cosign import simple_signing_payload
from opkey.errors import NetworkError, OpkeyError, RegistryError
from opkey.http import HttpResponse, RequestsTransport
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.retry import RetryPolicy
from opkey.registry.signatures import (
    COSIGN_SIGNATURE_ANNOTATION,
    attach_signature,
    layer_identity,
    list_signatures,
    signature_tag,
)
from opkey.sandbox.registry import LocalRegistry, seed_image
from tests.registry.faultproxy import FaultProxy

pytestmark = pytest.mark.registry


def sign(client: RegistryClient, image: ImageReference, n: int) -> str:
    payload = simple_signing_payload(image.cosign_name, image.require_digest())
    result = attach_signature(client, image, payload, {COSIGN_SIGNATURE_ANNOTATION: f"sig-{n}"})
    return layer_identity(result.layer)


def stored(client: RegistryClient, image: ImageReference) -> set[str]:
    return {layer_identity(s.descriptor) for s in list_signatures(client, image)}


@pytest.fixture
def proxy_factory(registry_server: LocalRegistry) -> Iterator[Callable[..., FaultProxy]]:
    proxies: list[FaultProxy] = []

    def start(decide: Callable[[str, str, int], int | None]) -> FaultProxy:
        proxy = FaultProxy(registry_server.port, decide).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


def test_injected_5xx_and_429_during_concurrent_signing_lose_nothing(
    registry_client: RegistryClient,
    registry_image: ImageReference,
    registry_client_factory: Callable[..., RegistryClient],
    proxy_factory: Callable[..., FaultProxy],
) -> None:
    statuses = (503, 500, 429, 502)

    def decide(method: str, path: str, n: int) -> int | None:
        return statuses[n % 4] if n % 3 == 0 else None  # every third request fails

    proxy = proxy_factory(decide)
    via_proxy = ImageReference(proxy.host, registry_image.repository, None, registry_image.digest)
    identities: list[str] = []
    errors: list[BaseException] = []

    def signer(n: int) -> None:
        client = registry_client_factory(
            retry=RetryPolicy(max_attempts=10, base_delay=0.01, max_delay=0.2, deadline=20)
        )
        try:
            identities.append(sign(client, via_proxy, n))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=signer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(proxy.injected) >= 10
    assert {status for _, _, status in proxy.injected} == set(statuses)
    assert stored(registry_client, registry_image) == set(identities)
    assert len(identities) == 8


class CountingTransport(RequestsTransport):
    """Counts transport failures, to show the restart really hit requests in flight."""

    failures = 0

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        timeout: float = 10.0,
        max_bytes: int = 1 << 20,
    ) -> HttpResponse:
        try:
            return super().request(
                method, url, headers=headers, data=data, timeout=timeout, max_bytes=max_bytes
            )
        except NetworkError:
            CountingTransport.failures += 1
            raise


def test_registry_restarted_mid_run_loses_no_signature(
    registry_factory: Callable[..., LocalRegistry],
    registry_client_factory: Callable[..., RegistryClient],
) -> None:
    server = registry_factory()
    client = registry_client_factory(
        transport=CountingTransport(),
        retry=RetryPolicy(max_attempts=40, base_delay=0.02, max_delay=0.25, deadline=20),
    )
    image = seed_image(client, ImageReference.parse(f"{server.host}/restart/app:v1"))
    done: list[str] = []
    failed: list[tuple[int, OpkeyError]] = []
    progress, stopped = threading.Event(), threading.Event()

    def run() -> None:
        for n in range(12):
            try:
                done.append(sign(client, image, n))
            except OpkeyError as exc:  # a clear, typed error is acceptable; a lost one is not
                failed.append((n, exc))
            if n == 2:
                progress.set()
                stopped.wait(30)  # the next attach starts while the registry is down

    CountingTransport.failures = 0
    worker = threading.Thread(target=run)
    worker.start()
    assert progress.wait(30)
    for _ in range(2):
        server.stop()
        stopped.set()
        time.sleep(0.4)  # attaches in flight meet a closed port
        server.start()
        time.sleep(0.15)
    worker.join(60)
    assert not worker.is_alive()
    assert CountingTransport.failures > 0  # the restarts did interrupt requests
    for n, error in failed:
        assert isinstance(error, (NetworkError, RegistryError)), error
        done.append(sign(client, image, n))  # attaching again is safe and completes
    assert len(done) == 12
    assert stored(client, image) == set(done)


def test_registry_down_is_a_clear_error_and_nothing_is_lost(
    registry_factory: Callable[..., LocalRegistry],
    registry_client_factory: Callable[..., RegistryClient],
) -> None:
    server = registry_factory()
    client = registry_client_factory(
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, deadline=5)
    )
    image = seed_image(client, ImageReference.parse(f"{server.host}/down/app:v1"))
    first = sign(client, image, 1)
    server.stop()
    with pytest.raises(NetworkError, match=r"connection refused.*gave up after 3 attempts"):
        sign(client, image, 2)
    server.start()
    second = sign(client, image, 2)
    assert stored(client, image) == {first, second}


def test_signer_stopped_between_journal_and_sig_write_loses_nothing(
    registry_client: RegistryClient,
    registry_image: ImageReference,
    registry_client_factory: Callable[..., RegistryClient],
    proxy_factory: Callable[..., FaultProxy],
) -> None:
    """The .sig write is refused for good (as if the signer died right before it): the
    signature is already recorded in its journal entry, and the next signer merges it."""
    sig_path = f"/manifests/{signature_tag(registry_image.require_digest())}"

    def decide(method: str, path: str, n: int) -> int | None:
        return 400 if method == "PUT" and path.endswith(sig_path) else None

    proxy = proxy_factory(decide)
    via_proxy = ImageReference(proxy.host, registry_image.repository, None, registry_image.digest)
    doomed = registry_client_factory()
    with pytest.raises(RegistryError, match="HTTP 400"):
        sign(doomed, via_proxy, 1)
    assert stored(registry_client, registry_image) == set()
    survivor = sign(registry_client, registry_image, 2)
    signers = {
        s.annotations[COSIGN_SIGNATURE_ANNOTATION]
        for s in list_signatures(registry_client, registry_image)
    }
    assert signers == {"sig-1", "sig-2"}
    assert survivor in stored(registry_client, registry_image)
