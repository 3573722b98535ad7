"""``opkey sign``: sign a digest, a file or a container image with a fresh ephemeral key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from opkey.cli.providers import add_provider_arguments

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
    parser.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="allow plain http to this registry (loopback always may)",
    )
    add_provider_arguments(parser)
    parser.set_defaults(run=run)


def _signer(args: argparse.Namespace) -> Any:
    from opkey.signer import Signer

    if args.session:
        from opkey.cli.session import load_session

        return load_session(Path(args.session))
    from opkey.cli.providers import build_provider

    return Signer.from_provider(build_provider(args), alg=args.key_type)


def run(args: argparse.Namespace) -> int:
    """Sign and write the result."""
    from opkey.cli._common import write_new_file
    from opkey.digest import Digest

    signer = _signer(args)
    subject = signer.pktoken.claims.get("sub")
    if args.image is not None:
        from opkey.cli.images import registry_client
        from opkey.images import sign_image

        reference = sign_image(registry_client(args.insecure_registry), args.image, signer)
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
