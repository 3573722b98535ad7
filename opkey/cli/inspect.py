"""``opkey inspect``: decode a bundle or a PK token for people (nothing is verified)."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``inspect`` subcommand."""
    parser = subparsers.add_parser(
        "inspect",
        help="decode a bundle or PK token (no verification)",
        description=(
            "Decode a bundle or a PK token (JSON or compact form) and print what it contains. "
            "Nothing is verified: use `opkey verify` for that."
        ),
    )
    parser.add_argument("file", help="bundle or PK token file (- for standard input)")
    parser.add_argument(
        "--pktoken",
        action="store_true",
        help="print only the PK token, as a JWS JSON general serialization (RFC 7515 §7.2.1)",
    )
    parser.set_defaults(run=run)


def _decoded(data: bytes) -> tuple[Any, str | None]:
    from opkey.bundle import Bundle
    from opkey.jose import parse_json
    from opkey.pktoken import PKToken

    text = data.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        document = parse_json(data, what="input")
        if isinstance(document, dict) and "mediaType" in document:
            bundle = Bundle.from_dict(document)
            return bundle.pktoken, bundle.signature
    return PKToken.parse(text), None


def run(args: argparse.Namespace) -> int:
    """Print the decoded input."""
    from opkey.cli._common import emit_json, read_input
    from opkey.jose import b64url_decode, parse_compact, thaw_json

    pktoken, signature = _decoded(read_input(args.file))
    if args.pktoken:
        print(json.dumps(json.loads(pktoken.to_json()), indent=2))
        return 0
    signatures = []
    for sig in pktoken.signatures():
        signatures.append(
            {
                "role": sig.role.value,
                "protected": thaw_json(sig.header),
                "signature_bytes": len(sig.signature),
            }
        )
    result: dict[str, Any] = {
        "verified": False,
        "pktoken": {
            "hash": pktoken.hash(),
            "claims": thaw_json(pktoken.claims),
            "signatures": signatures,
            "commitment": pktoken.cic_claims.commitment(),
            "ephemeral_key_thumbprint": pktoken.cic_claims.upk.thumbprint(),
        },
    }
    if signature is not None:
        jws = parse_compact(signature, what="bundle signature")
        payload = b64url_decode(jws.payload_b64)
        try:
            statement: Any = json.loads(payload)
        except ValueError:
            statement = payload.decode("utf-8", "replace")
        result["signature"] = {"protected": thaw_json(jws.header), "statement": statement}
    emit_json(result)
    return 0
