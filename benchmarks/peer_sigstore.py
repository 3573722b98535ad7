"""Times sigstore-python's offline verification of one artifact, in-process.

Runs with the peer's interpreter (``benchmarks/.peer-venv/bin/python``), never with opkey's:
sigstore is not an opkey dependency. Prints one JSON object: seconds per verification (best
of several batches, from the bundle bytes to the verified result, as opkey's figures are) and
how many network operations were attempted (an audit hook counts socket connects and name
lookups; offline verification must make none).

``--cli ARGS…`` instead runs the ``sigstore`` command line with ARGS under the same audit hook
and prints the count on standard error (used once, untimed, to check the CLI's ``--offline``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

NETWORK_EVENTS = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request")
_seen: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in NETWORK_EVENTS:
        _seen.append(event)


def _in_process(directory: Path, identity: str, issuer: str) -> dict[str, Any]:
    from sigstore.models import Bundle  # type: ignore[import-not-found, unused-ignore]
    from sigstore.verify import Verifier  # type: ignore[import-not-found, unused-ignore]
    from sigstore.verify.policy import Identity  # type: ignore[import-not-found, unused-ignore]

    artifact = (directory / "bundle_v3.txt").read_bytes()
    raw_bundle = (directory / "bundle_v3.txt.sigstore").read_text()
    policy = Identity(identity=identity, issuer=issuer)
    started = time.perf_counter()
    verifier = Verifier.staging(offline=True)
    setup = time.perf_counter() - started

    def once() -> None:
        verifier.verify_artifact(artifact, Bundle.from_json(raw_bundle), policy)

    once()
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(50):
            once()
        best = min(best, (time.perf_counter() - start) / 50)
    import sigstore  # type: ignore[import-not-found, unused-ignore]

    return {
        "seconds_per_verification": best,
        "verifier_setup_seconds": setup,
        "network_events": len(_seen),
        "version": sigstore.__version__,
    }


def main(argv: list[str]) -> int:
    """See the module doc."""
    sys.addaudithook(_audit)
    if argv and argv[0] == "--cli":
        from sigstore._cli import main as cli_main  # type: ignore[import-not-found, unused-ignore]

        sys.argv = ["sigstore", *argv[1:]]
        code = 0
        try:
            cli_main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        print(json.dumps({"network_events": len(_seen), "exit": code}), file=sys.stderr)
        return code
    directory, identity, issuer = Path(argv[0]), argv[1], argv[2]
    print(json.dumps(_in_process(directory, identity, issuer)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
