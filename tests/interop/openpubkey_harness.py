"""Driving the OpenPubkey Go harness (``tests/interop/openpubkey``, binary ``opkgo``).

The harness is a small Go program of ours linked against ``github.com/openpubkey/openpubkey``
at the version pinned in its ``go.mod``. It reads one JSON request on standard input and writes
one JSON answer (see its ``main.go``). These helpers build the requests from opkey values and
return the answers as dicts; a missing Go toolchain skips the test (fails it under ``CI=true``)
through :func:`tests.toolchain.go_tool`.

Verifier styles are the settings Go's own providers give ``providers.NewProviderVerifier``:
``github`` (AUD_CLAIM, GQ only, no client id check; Forgejo's tokens have the same shape, and
v0.26.0 has no Forgejo provider),
``gitlab`` (GQ_BOUND, GQ only, no client id check), ``standard`` (NONCE_CLAIM with the client
id, as ``StandardOp``; ``gq_only`` when it GQ-signs) and ``keybound`` (KEY_BOUND with the
client id, as ``KeyBindingOp``). The provider's keys are always a pinned JWKS.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opkey.pktoken import PKToken
from tests.toolchain import go_tool

__all__ = ["go_inspect", "go_mint", "go_verify", "opkgo", "run"]

#: Longest a harness call may take (minting runs a loopback login; GQ signing is quick).
TIMEOUT = 120


def opkgo() -> Path:
    """The harness binary (skips, or fails under CI=true, when it is not built)."""
    return go_tool("openpubkey", "opkgo")


def run(command: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``opkgo COMMAND`` with ``request``; the decoded answer."""
    result = subprocess.run(
        [str(opkgo()), command],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"opkgo {command} failed ({result.returncode}): {result.stderr.decode()[-2000:]}"
        )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def _pktoken_field(pktoken: PKToken | str | bytes | Mapping[str, Any], form: str) -> Any:
    if isinstance(pktoken, PKToken):
        return json.loads(pktoken.to_json()) if form == "json" else pktoken.to_compact()
    if isinstance(pktoken, bytes):
        return json.loads(pktoken)
    return pktoken


def go_inspect(pktoken: PKToken | str | Mapping[str, Any], *, form: str = "json") -> dict[str, Any]:
    """What Go computes from the PK token: ``{"ok", "facts": {hash, commitment, compact, json,
    issuer, provider_alg, fresh_id_token}}`` or ``{"ok": False, "error"}``."""
    return run("inspect", {"pktoken": _pktoken_field(pktoken, form)})


def verifier_config(
    *,
    issuer: str,
    style: str,
    jwks: Mapping[str, Any],
    client_id: str | None = None,
    gq_only: bool = False,
    expiration: str = "never",
) -> dict[str, Any]:
    """The part of a ``verify``/``bench`` request that configures Go's verifier."""
    config: dict[str, Any] = {
        "issuer": issuer,
        "style": style,
        "jwks": dict(jwks),
        "gq_only": gq_only,
        "expiration": expiration,
    }
    if client_id is not None:
        config["client_id"] = client_id
    return config


def go_verify(
    pktoken: PKToken | str | Mapping[str, Any],
    *,
    form: str = "json",
    messages: Sequence[str | tuple[str, str]] = (),
    **config: Any,
) -> dict[str, Any]:
    """``VerifyPKToken`` then ``VerifySignedMessage`` for each message (an OSM, or ``(osm,
    typ)``): ``{"ok", "error", "messages": [{"ok", "error", "content"}]}``; ``content`` is
    decoded to bytes."""
    request = verifier_config(**config)
    request["pktoken"] = _pktoken_field(pktoken, form)
    request["messages"] = [
        {"osm": m} if isinstance(m, str) else {"osm": m[0], "typ": m[1]} for m in messages
    ]
    answer = run("verify", request)
    for result in answer.get("messages") or ():
        if result.get("content") is not None:
            result["content"] = base64.b64decode(result["content"])
    return answer


def go_mint(**request: Any) -> dict[str, Any]:
    """A PK token (and OSMs over ``messages``, given as bytes) made by OpenPubkey's client.

    The answer has ``pktoken_json`` (a dict), ``pktoken_compact``, ``facts``, ``jwks``,
    ``issuer``, ``client_id`` and ``osms``.
    """
    messages = request.pop("messages", ())
    request["messages"] = [base64.b64encode(m).decode() for m in messages]
    return run("mint", request)
