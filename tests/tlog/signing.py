"""Signers and verifiers for the logged-signature tests: GQ256 PK tokens from a provider
reduced to its key (:class:`tests.helpers.MiniOP`), valid around the real clock (the logs
integrate entries at the machine's time), and a verifier that pins the provider's keys and
the test's log."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opkey import CommitmentType, Signer, Trust, Verifier
from opkey.jwks.sources import PinnedKeys
from opkey.tlog import TrustedLog
from opkey.tlog.client import RekorClient
from opkey.verification.trust import TrustedIssuer
from tests.helpers import MiniOP

__all__ = ["LOG_OP", "fresh_signer", "log_verifier"]

#: One provider for the whole module set: its key set is what verifiers pin.
LOG_OP = MiniOP()


def fresh_signer(
    url: str | None = None,
    *,
    op: MiniOP = LOG_OP,
    lifetime: int = 300,
    issued_ago: int = 30,
    gq: bool = True,
    log: TrustedLog | None = None,
    **claims: Any,
) -> Signer:
    """A signer with a fresh GQ256 PK token (valid ``lifetime`` seconds from ``issued_ago``
    seconds ago), logging to ``url`` when given."""
    now = int(time.time())
    pktoken, key = op.pktoken(
        CommitmentType.GQ_BOUND if gq else CommitmentType.NONCE,
        iat=now - issued_ago,
        nbf=now - issued_ago - 5,
        exp=now - issued_ago + lifetime,
        **claims,
    )
    signer = Signer(pktoken, key)
    if url is not None:
        signer = signer.with_tlog(RekorClient(url, log=log))
    return signer


def log_verifier(
    logs: Sequence[TrustedLog],
    *,
    op: MiniOP = LOG_OP,
    require_tlog: bool = False,
    require_signing_time: bool = False,
) -> Verifier:
    """A verifier trusting ``op`` (GQ-bound, pinned keys) and the transparency ``logs``."""
    trusted = TrustedIssuer(
        op.config(CommitmentType.GQ_BOUND), (PinnedKeys({op.issuer: op.keyset}),)
    )
    return Verifier(
        Trust(
            (trusted,),
            transparency_logs=tuple(logs),
            require_tlog=require_tlog,
            require_signing_time=require_signing_time,
        )
    )
