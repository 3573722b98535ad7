"""The gate's policies, loaded once: a verifier and a requirement per policy file, fingerprinted.

At start-up the server reads every policy file the rules name (or the one ``--policy`` file)
with the same reader as ``opkey verify --policy`` (:func:`opkey.policy.file.parse_policy_file`),
and builds one :class:`~opkey.verification.trust.Trust` per file with
:meth:`~opkey.verification.trust.Trust.build` (issuers, key sources, time-stamping authorities,
transparency logs: the one trust-and-verdict layer) under the gate's
:class:`~opkey.verification.trust.KeyOptions` (``--jwks``, ``--jwks-archive``, ``--offline``,
``--timestamp-certs``, ``--tlog-key``…) and the file's ``[timestamps]`` and ``[tlog]`` tables.
Any error stops the start: a gate that cannot read its policy must not serve.

Each :class:`GatePolicy` carries a **fingerprint**: SHA-256 over the policy file's bytes, the
bytes of every pinned JWKS, time-stamping authority chain and transparency log key it is
verified with, the paths of the archives consulted, and the key options. The verdict cache
(:mod:`opkey.admission.cache`) keys on it, so a verdict reached under other trust material or
another requirement is never reused. Archives and live JWKS are named, not hashed: their content
grows as providers publish keys, and a verdict stays right while the key that verified it is
still trusted; the cache's TTL bounds how long a key the provider withdrew keeps an old verdict
alive.

The key sources are wrapped so that a verification can tell afterwards whether a key source
*failed* meanwhile (a JWKS fetch that did not answer, rather than a key that does not exist):
a rejection that may be due to an outage is then not cached (:func:`key_problems`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from opkey.admission.config import (
    AdmissionConfig,
    AdmissionRule,
    ImagePattern,
    Mode,
    NamespaceGlob,
    Unmatched,
)
from opkey.errors import ConfigError, KeyNotFoundError, OpkeyError
from opkey.files import read_regular_file
from opkey.jwks.client import JwksClient
from opkey.jwks.sources import MAX_JWKS_FILE_BYTES, KeySource, LiveKeys
from opkey.keys import PublicJWK
from opkey.policy.file import PolicyFile, parse_policy_file
from opkey.policy.signoff import Requirement
from opkey.tables import read_config_file
from opkey.verification.trust import KeyOptions, Trust, TrustedIssuer
from opkey.verification.verifier import Verifier

__all__ = [
    "GatePolicies",
    "GatePolicy",
    "KeyProblems",
    "key_problems",
    "load_gate_policies",
    "load_gate_policy",
    "single_policy_config",
]

#: Largest time-stamping authority chain and transparency log key hashed (as
#: :class:`~opkey.verification.trust.Trust` reads them).
_MAX_CHAIN_BYTES = 256 * 1024
_MAX_LOG_KEY_BYTES = 16 * 1024


class KeyProblems(threading.local):
    """Per thread: whether a key source failed (not merely lacked the key) since reset."""

    failed: bool = False


_problems = KeyProblems()


def key_problems() -> KeyProblems:
    """This thread's record of key-source failures (reset it before a verification)."""
    return _problems


@dataclass(frozen=True)
class _WatchedKeys:
    """A key source that notes its failures in :func:`key_problems` before passing them on."""

    inner: KeySource

    @property
    def name(self) -> str:
        """The wrapped source's name (``live``, ``pinned``, ``archive``)."""
        return self.inner.name

    def find(self, issuer: str, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
        """See :class:`~opkey.jwks.sources.KeySource`."""
        try:
            return self.inner.find(issuer, kid=kid, jkt=jkt)
        except KeyNotFoundError:
            raise
        except OpkeyError:
            _problems.failed = True
            raise


@dataclass(frozen=True)
class GatePolicy:
    """One policy file, ready to judge images: its verifier, requirement and fingerprint.

    ``jwks_clients`` are the live JWKS clients of its trust, which the server refreshes in the
    background (:class:`opkey.admission.gate.KeyRefresher`).
    """

    path: Path
    policy: PolicyFile = field(repr=False)
    verifier: Verifier = field(repr=False)
    requirement: Requirement = field(repr=False)
    fingerprint: str
    jwks_clients: tuple[JwksClient, ...] = field(default=(), repr=False)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fingerprint(
    data: bytes, policy: PolicyFile, options: KeyOptions, entries_pinned: Sequence[Path]
) -> str:
    chains = [*options.timestamp_certs]
    logs = [*options.tlogs]
    if options.policy_anchors:
        chains.extend(policy.timestamps.authorities)
        logs.extend(policy.tlog.logs)
    archives = sorted(
        {str(Path(p).expanduser().absolute()) for p in _archives(policy, options) if p}
    )
    material = {
        "policy": _sha256(data),
        "jwks_files": [
            [
                str(path),
                _sha256(
                    read_regular_file(
                        path, limit=MAX_JWKS_FILE_BYTES, what="JWKS file", error=ConfigError
                    )
                ),
            ]
            for path in entries_pinned
        ],
        "timestamp_chains": [
            [
                str(path),
                _sha256(
                    read_regular_file(
                        path,
                        limit=_MAX_CHAIN_BYTES,
                        what="time-stamping authority chain",
                        error=ConfigError,
                    )
                ),
            ]
            for path in chains
        ],
        "transparency_logs": [
            [
                str(pin.key_file),
                pin.origin,
                _sha256(
                    read_regular_file(
                        Path(pin.key_file).expanduser(),
                        limit=_MAX_LOG_KEY_BYTES,
                        what="transparency log key",
                        error=ConfigError,
                    )
                ),
            ]
            for pin in logs
        ],
        "archives": archives,
        "options": {
            "offline": options.offline,
            "policy_anchors": options.policy_anchors,
            "require_timestamp": options.require_timestamp,
            "require_tlog": options.require_tlog,
        },
    }
    return _sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode())


def _archives(policy: PolicyFile, options: KeyOptions) -> Iterator[Path | None]:
    for entry in policy.issuers:
        yield entry.archive or options.archive


def load_gate_policy(path: str | os.PathLike[str], options: KeyOptions) -> GatePolicy:
    """Read ``path`` as a policy file and build its verifier under ``options``."""
    file = Path(path)
    data = read_config_file(file, what="policy file")
    policy = parse_policy_file(data, base_dir=file.parent, source=str(file))
    if not policy.issuers:
        raise ConfigError(f"{file}: list the trusted issuers in [[issuers]]")
    trust = Trust.build(policy.issuers, options, timestamps=policy.timestamps, tlog=policy.tlog)
    clients: list[JwksClient] = []
    watched: list[TrustedIssuer] = []
    for trusted in trust.issuers:
        for source in trusted.keys:
            live = source.client if isinstance(source, LiveKeys) else None
            if isinstance(live, JwksClient) and live not in clients:
                clients.append(live)
        watched.append(TrustedIssuer(trusted.config, [_WatchedKeys(s) for s in trusted.keys]))
    # Only the key sources are wrapped: authorities, logs and what is required stay as built.
    trust = dataclasses.replace(trust, issuers=tuple(watched))
    pinned = [
        pin for entry in policy.issuers if (pin := entry.jwks_file or options.jwks_file) is not None
    ]
    return GatePolicy(
        path=file,
        policy=policy,
        verifier=Verifier(trust),
        requirement=policy.requirement,
        fingerprint=_fingerprint(data, policy, options, pinned),
        jwks_clients=tuple(clients),
    )


@dataclass(frozen=True)
class GatePolicies:
    """Every policy the gate's rules name, by path."""

    by_path: Mapping[Path, GatePolicy]

    def __getitem__(self, path: Path) -> GatePolicy:
        return self.by_path[path]

    def jwks_clients(self) -> tuple[JwksClient, ...]:
        """Every live JWKS client, once."""
        clients: list[JwksClient] = []
        for policy in self.by_path.values():
            clients.extend(c for c in policy.jwks_clients if c not in clients)
        return tuple(clients)


def load_gate_policies(config: AdmissionConfig, options: KeyOptions) -> GatePolicies:
    """Load every policy file ``config`` names; the first error stops (naming the rule)."""
    loaded: dict[Path, GatePolicy] = {}
    for path in config.policy_paths():
        try:
            loaded[path] = load_gate_policy(path, options)
        except ConfigError as exc:
            rules = ", ".join(r.name for r in config.rules if r.policy == path)
            raise ConfigError(
                f"policy file {path} (rule {rules}): {exc}", expected=exc.expected, found=exc.found
            ) from None
    return GatePolicies(loaded)


def single_policy_config(
    path: str | os.PathLike[str], *, mode: Mode = Mode.ENFORCE, require_digest: bool = True
) -> AdmissionConfig:
    """The configuration ``--policy FILE`` means: one rule, every namespace, every image."""
    rule = AdmissionRule(
        name="policy",
        namespaces=(NamespaceGlob("*"),),
        images=(ImagePattern("**"),),
        policy=Path(path),
        mode=mode,
        require_digest=require_digest,
    )
    return AdmissionConfig(rules=(rule,), unmatched=Unmatched.DENY)
