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
    stamps = parser.add_argument_group("signing time (RFC 3161)")
    stamps.add_argument(
        "--timestamp-url",
        action="append",
        default=[],
        metavar="URL",
        help="ask this time-stamping authority for a token over the signature (repeatable "
        "for bundles; https, or http on loopback); signing fails if it cannot be had",
    )
    stamps.add_argument(
        "--timestamp-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time allowed for each authority to answer (default: %(default)s)",
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


def _timestamp_clients(args: argparse.Namespace) -> list[Any]:
    """One client per ``--timestamp-url``, checked before any key or token is made."""
    from opkey.errors import ConfigError

    if not args.timestamp_url:
        return []
    if not 0 < args.timestamp_timeout <= 300:
        raise ConfigError("--timestamp-timeout must be more than 0 and at most 300 seconds")
    from opkey.timestamp import TimestampClient

    return [TimestampClient(url, timeout=args.timestamp_timeout) for url in args.timestamp_url]


def _signer(args: argparse.Namespace) -> Any:
    from opkey.signer import Signer

    clients = _timestamp_clients(args)
    if args.session:
        from opkey.cli.session import load_session

        return load_session(Path(args.session)).with_timestamps(clients)
    from opkey.cli.providers import build_provider

    return Signer.from_provider(build_provider(args), alg=args.key_type, timestamp_clients=clients)


def _stamped(count: int) -> str:
    return f", timestamped by {count} authorit{'y' if count == 1 else 'ies'}" if count else ""


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
        stamped = _stamped(len(signer.timestamp_clients))
        print(f"opkey: signed {reference} as {subject}{stamped}", file=sys.stderr)
        return 0
    digest = Digest.of_file(args.file) if args.file else Digest(args.digest)
    signed = signer.sign_digest(digest)
    bundle = signed.to_json()
    out = args.bundle or (f"{args.file}.opkey.json" if args.file else None)
    if out is None or out == "-":
        sys.stdout.write(bundle.decode())
    else:
        write_new_file(Path(out), bundle)
    where = f" -> {out}" if out not in (None, "-") else ""
    print(
        f"opkey: signed {digest} as {subject} (issuer {signer.pktoken.issuer})"
        f"{_stamped(len(signed.timestamps))}{where}",
        file=sys.stderr,
    )
    return 0
