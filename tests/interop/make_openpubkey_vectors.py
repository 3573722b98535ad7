"""Regenerate ``tests/data/openpubkey-go/``: PK tokens and signed messages made by OpenPubkey Go.

Run from the checkout root with the harness built (``python tests/tools/build.py openpubkey``)::

    .venv/bin/python -m tests.interop.make_openpubkey_vectors [NAME ...]

Each vector is what the harness's ``mint`` answered (Go's own client, providers, hash and
serializations), plus the messages it signed and the settings opkey verifies it with. The
GitLab vector is made by Go's ``GitlabCiOp`` from an ID token of a dev IdP started here, the
GitHub one by Go's ``GithubOp`` against a dev IdP named by GitHub's issuer.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opkey.sandbox.devidp import DevIdP
from tests.interop.openpubkey_harness import go_mint

OUT = Path(__file__).resolve().parents[1] / "data" / "openpubkey-go"
MESSAGES = [b"signed by OpenPubkey Go", b'{"digest":"sha256:00","type":"x"}']

#: name: (mint request, how opkey verifies it)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "mock-nonce-rs256-es256": (
        {"provider": "mock", "commit_type": "nonce", "alg": "ES256"},
        {"commitment": "nonce", "algorithms": ["RS256"]},
    ),
    "mock-nonce-gq256-eddsa": (
        {"provider": "mock", "commit_type": "nonce", "gq_sign": True, "alg": "EdDSA"},
        {"commitment": "nonce", "algorithms": ["GQ256"]},
    ),
    "mock-aud-gq256-rs256": (
        {"provider": "mock", "commit_type": "aud", "gq_sign": True, "alg": "RS256"},
        {"commitment": "aud", "algorithms": ["GQ256"]},
    ),
    "mock-gq-bound-es256": (
        {"provider": "mock", "commit_type": "gq_bound", "alg": "ES256"},
        {"commitment": "gq-bound", "algorithms": ["GQ256"]},
    ),
    "mock-nonce-refreshed-es256": (
        {"provider": "mock", "commit_type": "nonce", "refresh": True},
        {"commitment": "nonce", "algorithms": ["RS256"]},
    ),
    "keybound-es256": (
        {"provider": "keybound", "alg": "ES256"},
        {"commitment": "key-bound", "algorithms": ["RS256"]},
    ),
    "gitlab-ci-dev-idp-eddsa": (
        {"provider": "gitlab", "alg": "EdDSA"},
        {"commitment": "gq-bound", "algorithms": ["GQ256"]},
    ),
    "github-actions-dev-idp-es256": (
        {"provider": "github", "alg": "ES256"},
        {"commitment": "aud", "algorithms": ["GQ256"]},
    ),
}
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def main(names: Sequence[str] = ()) -> None:
    """Write every vector, or only those ``names`` (the others are left as they are)."""
    OUT.mkdir(parents=True, exist_ok=True)
    with DevIdP() as idp, DevIdP(issuer=GITHUB_ISSUER) as github:
        for name, (request, verify) in CASES.items():
            if names and name not in names:
                continue
            call = dict(request)
            if call["provider"] == "gitlab":
                call.update(issuer=idp.issuer, id_token=idp.mint_gitlab_token())
            if call["provider"] == "github":
                # GithubOp has GitHub's issuer built in: the harness routes it to this dev IdP.
                call.update(
                    request_url=github.github_request_url,
                    request_token=github.request_token,
                    github_route=github.loopback_url,
                )
            minted = go_mint(messages=MESSAGES, **call)
            vector = {
                "request": request,
                "verify": verify,
                "issuer": minted["issuer"],
                "client_id": minted.get("client_id"),
                "facts": minted["facts"],
                "pktoken_json": minted["pktoken_json"],
                "pktoken_compact": minted["pktoken_compact"],
                "jwks": minted["jwks"],
                "messages": [base64.b64encode(m).decode() for m in MESSAGES],
                "osms": minted["osms"],
            }
            (OUT / f"{name}.json").write_text(json.dumps(vector, indent=2) + "\n")
            print(f"wrote {name}.json")


if __name__ == "__main__":
    main(sys.argv[1:])
