"""Sign files, digests or container images.

Generate an ephemeral key, obtain a PK token for it from the identity provider, and sign every
target with it: one ID token for all of them. Files get a bundle next to them
(PATH.opkey.json); a digest's bundle is printed unless --bundle names a file; images get a
signature in their registry. Every target is checked first (files read, digests and image
references parsed, bundle destinations writable), before the ID token is requested.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from opkey.cli.signing import SIGN, add_signing_arguments
from opkey.cli.targets import add_target_arguments

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``sign`` options."""
    add_target_arguments(parser, verb=SIGN.verb)
    add_signing_arguments(parser, SIGN)


def _stamped(count: int) -> str:
    return f", timestamped by {count} authorit{'y' if count == 1 else 'ies'}" if count else ""


def _logged(entries: Any) -> str:
    return "".join(f", logged at index {entry.log_index}" for entry in entries)


def run(args: argparse.Namespace) -> int:
    """Check every target, obtain one PK token, sign each target and write the results."""
    from opkey.cli.signing import signing_jobs, start_signing, write_bundle

    jobs = signing_jobs(args, SIGN)
    signing = start_signing(args, jobs, SIGN)
    signer = signing.signer
    for job in jobs:
        target = job.target
        if target.image is not None:
            from opkey.images import sign_image

            client = signing.registry_client(target)
            reference = sign_image(
                client, target.image, signer, deadline=signing.deadline, storage=args.storage
            )
            stamped = _stamped(len(signer.timestamp_clients))
            logged = f", logged in {signing.tlog.url}" if signing.tlog is not None else ""
            print(f"opkey: signed {reference} {signing.as_whom}{stamped}{logged}", file=sys.stderr)
            continue
        assert target.digest is not None
        signed = signer.sign_digest(target.digest)
        as_whom = signing.as_whom + _stamped(len(signed.timestamps)) + _logged(signed.tlog_entries)
        write_bundle(job, signed.to_json(), f"signed {target.described} {as_whom}")
    return 0
