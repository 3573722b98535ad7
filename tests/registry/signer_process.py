"""A separate signer process for the concurrency tests.

Usage: ``python signer_process.py IMAGE_BY_DIGEST FIRST COUNT START_AT``: waits until the wall
clock reaches ``START_AT`` (so all processes start together), then attaches ``COUNT``
signatures from as many threads, numbered from ``FIRST``, and prints the identities of the
layers it attached as JSON.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from opkey.registry import (
    COSIGN_SIGNATURE_ANNOTATION,
    DockerCredentialStore,
    ImageReference,
    RegistryClient,
    RetryPolicy,
    attach_signature,
    simple_signing_payload,
)
from opkey.registry.signatures import layer_identity


def main(argv: list[str]) -> int:
    image = ImageReference.parse(argv[1])
    first, count, start_at = int(argv[2]), int(argv[3]), float(argv[4])
    payload = simple_signing_payload(image.cosign_name, image.require_digest())
    identities: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def sign(number: int) -> None:
        client = RegistryClient(
            docker_config=DockerCredentialStore(),
            retry=RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.5, deadline=30),
        )
        annotations = {COSIGN_SIGNATURE_ANNOTATION: f"process-signature-{number}"}
        try:
            result = attach_signature(client, image, payload, annotations)
        except Exception as exc:  # reported to the test, which fails on any
            with lock:
                errors.append(f"{number}: {exc}")
            return
        with lock:
            identities.append(layer_identity(result.layer))

    threads = [threading.Thread(target=sign, args=(first + i,)) for i in range(count)]
    time.sleep(max(0.0, start_at - time.time()))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"identities": identities, "errors": errors}))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
