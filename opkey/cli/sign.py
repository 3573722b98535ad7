"""``opkey sign``: sign a digest, a file or a container image with a fresh ephemeral key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from opkey.cli.providers import add_provider_arguments
from opkey.cli.registry_options import add_registry_arguments, add_timeout_argument

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``sign`` subcommand."""
    parser = subparsers.add_parser(
        "sign",
        help="sign a digest, file or container image",
        description=(
            "Generate an ephemeral key, obtain a PK token for it from the identity provider, "
            "and sign. Files get a bundle next to them (PATH.opkey.json); digests print the "
            "bundle unless --bundle names a file; images get a signature in their registry."
        ),
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--digest", metavar="sha256:HEX", help="sign a digest")
    target.add_argument("--file", metavar="PATH", help="sign a file (its SHA-256 digest)")
    target.add_argument("image", nargs="?", metavar="IMAGE_REF", help="sign a container image")
    parser.add_argument("--bundle", metavar="OUT", help="where to write the bundle")
    parser.add_argument(
        "--session",
        metavar="FILE",
        help="sign with a key and PK token saved by `opkey login --save` instead of a provider",
    )
    parser.add_argument(
        "--key-type",
        choices=["ES256", "EdDSA", "RS256"],
        default="ES256",
        help="ephemeral key algorithm (default: %(default)s)",
    )
    add_timeout_argument(parser, default=300.0)  # opkey.images.DEFAULT_SIGN_TIMEOUT
    add_registry_arguments(parser)
    add_provider_arguments(parser)
    parser.set_defaults(run=run)


def _signer(args: argparse.Namespace, deadline: Any) -> Any:
    from opkey.signer import Signer

    if args.session:
        from opkey.cli.session import load_session

        return load_session(Path(args.session))
    from opkey.cli.providers import build_provider
    from opkey.http import RequestsTransport

    provider = build_provider(args, transport=deadline.bound(RequestsTransport()))
    return Signer.from_provider(provider, alg=args.key_type)


def run(args: argparse.Namespace) -> int:
    """Sign and write the result."""
    from opkey.artifact import Digest
    from opkey.cli._common import write_new_file
    from opkey.cli.registry_options import RegistryOptions
    from opkey.http import Deadline

    deadline = Deadline.after(args.timeout)
    registry = RegistryOptions.from_args(args)
    signer = _signer(args, deadline)
    subject = signer.pktoken.claims.get("sub")
    if args.image is not None:
        from opkey.cli.images import sign_image

        reference = sign_image(args.image, signer, registry, deadline)
        print(f"opkey: signed {reference} as {subject}", file=sys.stderr)
        return 0
    digest = Digest.of_file(args.file) if args.file else Digest(args.digest)
    bundle = signer.sign_digest(digest).to_json()
    out = args.bundle or (f"{args.file}.opkey.json" if args.file else None)
    if out is None or out == "-":
        sys.stdout.write(bundle.decode())
    else:
        write_new_file(Path(out), bundle)
    where = f" -> {out}" if out not in (None, "-") else ""
    print(
        f"opkey: signed {digest} as {subject} (issuer {signer.pktoken.issuer}){where}",
        file=sys.stderr,
    )
    return 0
