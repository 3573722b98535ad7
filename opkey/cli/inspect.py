"""Decode a bundle, PK token or image signatures (no verification).

Decode a bundle or a PK token (JSON or compact form), or list the signatures of a container
image, and print what they contain. Nothing is verified: use `opkey verify` for that.
--public-key writes the ephemeral public key as PEM, the form `cosign verify --key` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opkey.pktoken import PKToken
    from opkey.registry.reference import ImageReference
    from opkey.registry.signatures import SignatureLayer

from opkey.cli.registry_options import add_registry_arguments
from opkey.cli.timeout_options import add_timeout_argument

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``inspect`` options."""
    parser.add_argument(
        "target",
        metavar="FILE|IMAGE",
        help="bundle or PK token file (- for standard input), or an image reference with its "
        "registry (ghcr.io/org/app:1.0)",
    )
    parser.add_argument(
        "--pktoken",
        action="store_true",
        help="print only the PK token, as a JWS JSON general serialization (RFC 7515 §7.2.1)",
    )
    parser.add_argument(
        "--public-key",
        nargs="?",
        const="-",
        metavar="OUT",
        help="write the ephemeral public key (PEM SubjectPublicKeyInfo) to OUT (default: "
        "standard output) instead of the report",
    )
    parser.add_argument(
        "--signature",
        type=int,
        metavar="INDEX",
        help="for an image: which signature layer of its .sig manifest (see the report); "
        "needed when it has more than one opkey signature",
    )
    parser.add_argument(
        "--attestation",
        type=int,
        metavar="INDEX",
        help="for an image: with --public-key or --pktoken, use this layer of its .att "
        "manifest (an attestation, listed by `opkey tree IMAGE`) instead of a signature",
    )
    add_timeout_argument(parser, default=120.0)  # opkey.images.DEFAULT_VERIFY_TIMEOUT
    add_registry_arguments(parser)


def _image_reference(target: str) -> ImageReference | None:
    """The image ``target`` names, or ``None`` for a file: a target is an image only when it
    is no file, names its registry and parses, so that a mistyped file name never turns into a
    request to Docker Hub (and still gets "cannot read FILE")."""
    if target == "-" or os.path.exists(target):
        return None
    first, slash, _ = target.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        return None
    from opkey.errors import ConfigError
    from opkey.registry.reference import ImageReference

    try:
        return ImageReference.parse(target)
    except ConfigError:
        return None


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


def _write_public_key(pktoken: PKToken, out: str) -> int:
    pem = pktoken.cic_claims.upk.to_pem()
    if out == "-":
        sys.stdout.write(pem.decode("ascii"))
        return 0
    from opkey.cli._common import write_new_file

    write_new_file(Path(out), pem)
    print(
        f"opkey: wrote the ephemeral public key ({pktoken.cic_claims.upk.alg}, "
        f"thumbprint {pktoken.cic_claims.upk.thumbprint()}) to {out}; it is not verified: "
        "check who holds it with `opkey verify`",
        file=sys.stderr,
    )
    return 0


def _pktoken_report(pktoken: PKToken) -> dict[str, Any]:
    from opkey.jose import thaw_json

    return {
        "hash": pktoken.hash(),
        "claims": thaw_json(pktoken.claims),
        "signatures": [
            {
                "role": sig.role.value,
                "protected": thaw_json(sig.header),
                "signature_bytes": len(sig.signature),
            }
            for sig in pktoken.signatures()
        ],
        "commitment": pktoken.cic_claims.commitment(),
        "ephemeral_key_thumbprint": pktoken.cic_claims.upk.thumbprint(),
    }


def _layer_report(index: int, layer: SignatureLayer) -> tuple[dict[str, Any], PKToken | None]:
    """What one ``.sig`` layer holds, and its PK token when it is a readable opkey one."""
    from opkey.cosign import OPKEY_PKTOKEN, parse_simple_signing_payload
    from opkey.errors import OpkeyError
    from opkey.pktoken import PKToken
    from opkey.verification.evidence import foreign_signature_note

    report: dict[str, Any] = {"index": index, "layer_digest": str(layer.digest)}
    note = foreign_signature_note(layer.annotations)
    if note is not None:
        return {**report, "kind": "other", "note": note}, None
    report["kind"] = "opkey"
    try:
        payload = parse_simple_signing_payload(layer.payload)
        report["docker_reference"] = payload.docker_reference
        report["docker_manifest_digest"] = str(payload.manifest_digest)
        pktoken = PKToken.from_compact(layer.annotations.get(OPKEY_PKTOKEN, ""))
    except OpkeyError as exc:
        return {**report, "error": str(exc)}, None
    upk = pktoken.cic_claims.upk
    report.update(
        issuer=pktoken.issuer,
        subject=pktoken.claims.get("sub"),
        signature_algorithm=upk.alg,
        ephemeral_key_thumbprint=upk.thumbprint(),
        pktoken_hash=pktoken.hash(),
    )
    return report, pktoken


def _select(reports: list[dict[str, Any]], tokens: dict[int, PKToken], index: int | None) -> int:
    from opkey.errors import ConfigError

    if index is not None:
        if not 0 <= index < len(reports):
            raise ConfigError(
                f"no signature {index}: the image has {len(reports)} signature layer(s)"
                + (f", indexes 0 to {len(reports) - 1}" if reports else "")
            )
        if index not in tokens:
            reason = reports[index].get("note") or reports[index].get("error")
            raise ConfigError(f"signature {index} holds no readable PK token ({reason})")
        return index
    if len(tokens) == 1:
        return next(iter(tokens))
    if not tokens:
        raise ConfigError("the image has no opkey signature, so no ephemeral public key")
    raise ConfigError(
        f"the image has {len(tokens)} opkey signatures ({', '.join(map(str, sorted(tokens)))}); "
        "choose one with --signature INDEX (listed by `opkey inspect IMAGE`)"
    )


def _attestation_pktoken(client: Any, image: ImageReference, index: int) -> PKToken:
    """The PK token of layer ``index`` of the image's ``.att`` manifest (unverified)."""
    from opkey.cosign import OPKEY_PKTOKEN
    from opkey.errors import ConfigError
    from opkey.pktoken import PKToken
    from opkey.registry.attestations import attestation_layers

    layers = attestation_layers(client, image).descriptors
    if not 0 <= index < len(layers):
        raise ConfigError(
            f"the image's .att manifest has {len(layers)} layers; --attestation {index} is not "
            "one of them (see `opkey tree IMAGE`)"
        )
    compact = layers[index].annotations.get(OPKEY_PKTOKEN)
    if compact is None:
        raise ConfigError(f"attestation layer {index} carries no PK token (not opkey's)")
    return PKToken.from_compact(compact)


def _inspect_image(args: argparse.Namespace, reference: ImageReference) -> int:
    from opkey.cli._common import emit_json
    from opkey.cli.registry_options import RegistryOptions
    from opkey.http import Deadline
    from opkey.registry.signatures import signature_layers, signature_tag

    args.image = [str(reference)]  # for the registry options: credentials are the image's
    client = RegistryOptions.from_args(args).client(str(reference), Deadline.after(args.timeout))
    image = client.resolve(reference)
    if args.attestation is not None:
        chosen = _attestation_pktoken(client, image, args.attestation)
        if args.public_key is not None:
            return _write_public_key(chosen, args.public_key)
        print(json.dumps(json.loads(chosen.to_json()), indent=2))
        return 0
    reports: list[dict[str, Any]] = []
    tokens: dict[int, PKToken] = {}
    for index, layer in enumerate(signature_layers(client, image)):
        report, pktoken = _layer_report(index, layer)
        reports.append(report)
        if pktoken is not None:
            tokens[index] = pktoken
    if args.public_key is not None or args.pktoken:
        chosen = tokens[_select(reports, tokens, args.signature)]
        if args.public_key is not None:
            return _write_public_key(chosen, args.public_key)
        print(json.dumps(json.loads(chosen.to_json()), indent=2))
        return 0
    emit_json(
        {
            "verified": False,
            "image": str(image),
            "signature_tag": signature_tag(image.require_digest()),
            "signatures": reports,
        }
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the decoded input (or write its public key)."""
    from opkey.cli._common import emit_json, read_input
    from opkey.errors import ConfigError
    from opkey.jose import b64url_decode, parse_compact, thaw_json

    reference = _image_reference(args.target)
    if reference is not None:
        return _inspect_image(args, reference)
    if args.signature is not None or args.attestation is not None:
        raise ConfigError("--signature and --attestation pick a layer of an image, not of a file")
    pktoken, signature = _decoded(read_input(args.target))
    if args.public_key is not None:
        return _write_public_key(pktoken, args.public_key)
    if args.pktoken:
        print(json.dumps(json.loads(pktoken.to_json()), indent=2))
        return 0
    result: dict[str, Any] = {"verified": False, "pktoken": _pktoken_report(pktoken)}
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
