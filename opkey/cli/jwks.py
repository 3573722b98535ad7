"""Manage the JWKS archive of provider keys.

The JWKS archive keeps every provider key ever observed, so signatures stay verifiable after the
provider rotates its keys.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from opkey.cli._common import time_argument

__all__ = ["DEFAULT_ARCHIVE", "configure", "run"]

DEFAULT_ARCHIVE = "~/.local/share/opkey/jwks-archive.sqlite"


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``jwks`` options."""
    parser.add_argument(
        "--archive",
        metavar="PATH",
        default=DEFAULT_ARCHIVE,
        help="archive file (default: %(default)s)",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="import a JWKS snapshot for an issuer")
    imp.add_argument("issuer", help="issuer URL the keys belong to (exact)")
    imp.add_argument("file", help="JWKS file (- for standard input)")
    imp.add_argument(
        "--seen-at",
        type=time_argument,
        metavar="TIME",
        help="when the snapshot was taken (default: now)",
    )
    exp = actions.add_parser("export", help="print an issuer's archived keys as a JWKS")
    exp.add_argument("issuer", help="issuer URL whose keys to print (exact)")
    lst = actions.add_parser("list", help="list archived keys")
    lst.add_argument("issuer", nargs="?", help="only this issuer's keys (exact URL)")
    lst.add_argument("--json", action="store_true", help="print the keys as JSON")


def run(args: argparse.Namespace) -> int:
    """Carry out the action."""
    from opkey.cli._common import archive_path, columns, emit_json, read_input
    from opkey.jwks.archive import JwksArchive

    path = archive_path(args.archive)
    if args.action == "import":
        path.parent.mkdir(parents=True, exist_ok=True)
        archive = JwksArchive(path)
        seen = args.seen_at or datetime.now(timezone.utc)
        keys = archive.import_jwks(args.issuer, read_input(args.file), seen)
        print(f"opkey: imported {len(keys)} key(s) for {args.issuer} into {path}", file=sys.stderr)
        return 0
    archive = JwksArchive(path)
    if args.action == "export":
        sys.stdout.write(archive.export_jwks(args.issuer).decode())
        return 0
    entries = list(archive.entries(args.issuer))
    if args.json:
        emit_json(
            [
                {
                    "issuer": e.issuer,
                    "kid": e.kid,
                    "jkt": e.jkt,
                    "first_seen": e.first_seen.isoformat(),
                    "last_seen": e.last_seen.isoformat(),
                    "conflict": e.conflict,
                }
                for e in entries
            ]
        )
        return 0
    rows = [
        (
            e.issuer,
            f"kid={e.kid if e.kid is not None else '(none)'}",
            f"jkt={e.jkt}",
            f"seen {e.first_seen:%Y-%m-%d}..{e.last_seen:%Y-%m-%d}",
            "CONFLICT" if e.conflict else "",
        )
        for e in entries
    ]
    for line in columns(rows):
        print(line)
    if not entries:
        print(
            "opkey: the archive holds no keys" + (f" for {args.issuer}" if args.issuer else ""),
            file=sys.stderr,
        )
    return 0
