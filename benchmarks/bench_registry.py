"""Registry throughput: signatures attached per second and signature listings per second.

Runs standalone (``python benchmarks/bench_registry.py``): starts its own CNCF distribution
registry on loopback (Debian package ``docker-registry``) with storage in a temporary
directory, pushes small images, then measures

* sequential attaches (one signer, one image, the ``.sig`` manifest growing as it goes);
* concurrent attaches (16 signer threads, each with its own client, on one image);
* ``list_signatures`` (manifest + payload fetch, digest-checked) on an image with 1 and with
  all the concurrent signatures;
* for contrast, cosign's plain read-modify-write with 16 concurrent writers, counting the
  signatures it loses (opkey's attaches must lose none; that is asserted);
* ``opkey.images.verify_image`` of an image signed by GQ256 PK tokens, per second (resolve the
  tag, list and fetch the signatures, verify every layer, apply the policy).

``benchmarks/run.py --registry`` includes these figures in its table (:func:`run`).

Numbers depend on the machine and on the registry's filesystem; they are for comparing
changes on one machine, not across machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import fixtures
from benchmarks.harness import Figure
from opkey.digest import Digest
from opkey.images import sign_image, verify_image
from opkey.policy.signoff import Requirement
from opkey.registry import (
    COSIGN_SIGNATURE_ANNOTATION,
    DockerCredentialStore,
    ImageReference,
    RegistryClient,
    attach_signature,
    list_signatures,
    simple_signing_payload,
)
from opkey.registry.manifest import Descriptor, ImageManifest
from opkey.registry.mediatypes import COSIGN_SIMPLESIGNING, OCI_CONFIG, OCI_MANIFEST
from opkey.registry.retry import RetryPolicy
from opkey.registry.signatures import cosign_config, signature_tag
from opkey.sandbox.registry import LocalRegistry, find_registry_binary, seed_image

RETRY = RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.5, deadline=60)


def new_client() -> RegistryClient:
    return RegistryClient(docker_config=DockerCredentialStore(), retry=RETRY)


def signer_annotations(n: int) -> dict[str, str]:
    # About the size of a real signature annotation (base64 DER ECDSA) plus an opkey marker.
    return {COSIGN_SIGNATURE_ANNOTATION: f"MEUCIQD{n:060d}==", "dev.opkey/signer": str(n)}


def concurrently(workers: int, job: Callable[[int], None]) -> float:
    """Run ``job(0..workers-1)`` in threads started together; return the wall time."""
    barrier = threading.Barrier(workers + 1)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        barrier.wait()
        try:
            job(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def naive_append(client: RegistryClient, image: ImageReference, payload: bytes, n: int) -> None:
    """cosign's way: read .sig, append one layer, write it back. No merge, no check."""
    sig = image.with_tag(signature_tag(image.require_digest()))
    current = client.find_manifest(sig)
    layers = list(ImageManifest.from_manifest(current).layers) if current else []
    layers.append(
        Descriptor(
            COSIGN_SIMPLESIGNING, Digest.of_bytes(payload), len(payload), signer_annotations(n)
        )
    )
    config = cosign_config(layers)
    client.push_blob(image, config)
    manifest = ImageManifest.build(
        OCI_MANIFEST, Descriptor(OCI_CONFIG, Digest.of_bytes(config), len(config)), layers
    )
    client.put_manifest(sig, manifest.encode(), OCI_MANIFEST, blobs_pushed=True)


def _image_verifications(
    client: RegistryClient, image: ImageReference, signers: int, rounds: int
) -> Figure:
    """Sign ``image`` with ``signers`` GQ256 PK tokens, then time ``verify_image``."""
    from opkey import gq

    provider = fixtures.Provider.create()
    for identity in range(signers):
        signer = fixtures.make_signer(provider.jwk, provider.mint, use_gq=True, identity=identity)
        sign_image(client, image, signer)
    verifier = fixtures.verifier(provider, use_gq=True)
    policy = fixtures.policy()
    gq.set_backend("auto")
    verify_image(client, image, verifier, Requirement.of(policy))  # warm: verified PK tokens cached
    started = time.perf_counter()
    for _ in range(rounds):
        result = verify_image(client, image, verifier, Requirement.of(policy))
        assert len(result.verdict.identities) == signers
    elapsed = time.perf_counter() - started
    return Figure(
        "registry_verify_image_per_s",
        round(rounds / elapsed, 1),
        "images/s",
        sides={"signatures_per_image": signers, "ms_per_image": round(elapsed / rounds * 1e3, 2)},
    )


def run(context: dict[str, float] | None = None) -> list[Figure]:
    """The registry figures for ``benchmarks/run.py --registry`` (default sizes)."""
    del context
    figures: list[Figure] = []
    if main([], figures=figures) == 2:
        return [
            Figure(
                "registry",
                0.0,
                "skipped",
                sides={"note": "skipped: install with `apt-get install docker-registry`"},
            )
        ]
    return figures


def main(argv: list[str] | None = None, *, figures: list[Figure] | None = None) -> int:
    """Run the registry benchmark, print its lines; collect figures into ``figures``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=40, help="sequential attaches")
    parser.add_argument("--signers", type=int, default=16, help="concurrent signer threads")
    parser.add_argument("--per-signer", type=int, default=4, help="attaches per signer thread")
    parser.add_argument("--lists", type=int, default=50, help="list_signatures calls per case")
    parser.add_argument("--verifications", type=int, default=30, help="verify_image calls")
    args = parser.parse_args(argv)
    figures = figures if figures is not None else []
    if find_registry_binary() is None:
        print("docker-registry is not installed; install it: apt-get install docker-registry")
        return 2

    with tempfile.TemporaryDirectory() as directory, LocalRegistry(Path(directory)) as server:
        client = new_client()

        def image(name: str) -> ImageReference:
            return seed_image(client, ImageReference.parse(f"{server.host}/bench/{name}:v1"))

        print(f"registry: {server.binary} on {server.host}, storage in a temporary directory")

        # Sequential: one signer, one image.
        target = image("sequential")
        payload = simple_signing_payload(target.cosign_name, target.require_digest())
        durations = []
        for n in range(args.sequential):
            started = time.perf_counter()
            attach_signature(client, target, payload, signer_annotations(n))
            durations.append(time.perf_counter() - started)
        total = sum(durations)
        assert len(list_signatures(client, target)) == args.sequential
        figures.append(
            Figure(
                "registry_attach_sequential_per_s",
                round(args.sequential / total, 1),
                "signatures/s",
            )
        )
        print(
            f"attach, sequential:            {args.sequential / total:7.1f} signatures/s "
            f"(median {statistics.median(durations) * 1000:.1f} ms, "
            f"first {durations[0] * 1000:.1f} ms, last {durations[-1] * 1000:.1f} ms)"
        )

        # Concurrent: 16 signers, each with its own client, on one image.
        target = image("concurrent")
        payload = simple_signing_payload(target.cosign_name, target.require_digest())
        writes: list[int] = []

        def signer(n: int) -> None:
            own = new_client()
            for k in range(args.per_signer):
                result = attach_signature(own, target, payload, signer_annotations(n * 1000 + k))
                writes.append(result.writes)

        elapsed = concurrently(args.signers, signer)
        count = args.signers * args.per_signer
        stored = list_signatures(client, target)
        assert len(stored) == count, f"lost signatures: {count - len(stored)}"
        figures.append(
            Figure(
                f"registry_attach_{args.signers}_concurrent_per_s",
                round(count / elapsed, 1),
                "signatures/s",
                sides={"attached": count, "present": len(stored), "sig_writes": sum(writes)},
            )
        )
        print(
            f"attach, {args.signers} concurrent signers: {count / elapsed:7.1f} signatures/s "
            f"({count} attached, {len(stored)} present, {sum(writes)} .sig writes)"
        )

        # Listing: fetch and check every signature.
        for label, ref in (("1 signature", image("list-one")), (f"{count} signatures", target)):
            if label == "1 signature":
                one = simple_signing_payload(ref.cosign_name, ref.require_digest())
                attach_signature(client, ref, one, signer_annotations(0))
            started = time.perf_counter()
            for _ in range(args.lists):
                list_signatures(client, ref)
            elapsed = time.perf_counter() - started
            print(f"list_signatures, {label + ':':16s} {args.lists / elapsed:7.1f} listings/s")
            figures.append(
                Figure(
                    f"registry_list_signatures_{label.split()[0]}_per_s",
                    round(args.lists / elapsed, 1),
                    "listings/s",
                )
            )

        # Contrast: cosign-style read-modify-write with the same concurrency.
        target = image("naive")
        payload = simple_signing_payload(target.cosign_name, target.require_digest())
        client.push_blob(target, payload)
        elapsed = concurrently(
            args.signers, lambda n: naive_append(new_client(), target, payload, n)
        )
        kept = len(list_signatures(client, target))
        figures.append(
            Figure(
                "registry_read_modify_write_lost_signatures",
                args.signers - kept,
                "signatures",
                sides={"writers": args.signers, "note": "cosign's way, for contrast"},
            )
        )
        print(
            f"contrast, read-modify-write:   {args.signers} concurrent writers kept {kept} of "
            f"{args.signers} signatures ({args.signers - kept} lost) in {elapsed * 1000:.0f} ms"
        )

        figure = _image_verifications(client, image("verify"), 4, args.verifications)
        figures.append(figure)
        print(f"verify_image, 4 signatures:    {figure.value:7.1f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
