"""List an image's signatures and attestations (tag layout and referrers).

List every signature and attestation of an image: cosign's .sig and .att tags and the OCI 1.1
referrers (from the registry's referrers API, else the referrers tag), with the predicate type
of each attestation. Signers are shown as their PK tokens claim them: nothing is verified here
(opkey verify and opkey verify-attestation decide who signed).
"""

from __future__ import annotations

import argparse

from opkey.cli.registry_options import add_registry_arguments
from opkey.cli.timeout_options import add_timeout_argument

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``tree`` options."""
    parser.add_argument("image", metavar="IMAGE_REF", help="the image (a tag is resolved)")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    add_timeout_argument(parser, default=120.0)
    add_registry_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Read the image's signatures and attestations and print them."""
    from opkey.cli._common import emit_json
    from opkey.cli.registry_options import RegistryOptions
    from opkey.cli.targets import image_reference
    from opkey.http import Deadline
    from opkey.images import image_tree
    from opkey.remote_text import printable

    reference = image_reference(args.image, command="list")
    deadline = Deadline.after(args.timeout)
    client = RegistryOptions.from_args(args).client(str(reference), deadline)
    tree = image_tree(client, reference, deadline=deadline)
    if args.json:
        emit_json(
            {
                "image": str(tree.image),
                "referrers": tree.referrers_source,
                "entries": [
                    {
                        "layout": e.layout,
                        "kind": e.kind,
                        "where": e.where,
                        "digest": str(e.digest),
                        "artifact_type": e.artifact_type,
                        "predicate_type": e.predicate_type,
                        "claimed_signer": e.signer,
                    }
                    for e in tree.entries
                ],
            }
        )
        return 0
    print(str(tree.image))
    if not tree.entries:
        print("  no signatures or attestations")
    for layout in (".sig", ".att", "referrer"):
        entries = [e for e in tree.entries if e.layout == layout]
        if not entries:
            continue
        if layout == "referrer":
            source = "referrers API" if tree.referrers_source == "api" else "referrers tag"
            print(f"  referrers (from the {source}):")
        else:
            print(f"  {layout} tag:")
        for entry in entries:
            what = entry.kind if entry.predicate_type is None else printable(entry.predicate_type)
            if entry.kind == "other":
                what = f"other ({printable(entry.artifact_type or 'no artifact type')})"
            signer = f"  by {printable(entry.signer)} (claimed)" if entry.signer else ""
            print(f"    {entry.where}: {what}{signer}")
    return 0
