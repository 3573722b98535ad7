"""Assembling the gate from its settings: what ``opkey admission serve`` runs.

:class:`ServeOptions` holds every setting of the command as library values;
:func:`build_server` reads the rule file (or makes the one-rule configuration of ``--policy``),
loads every policy file into a verifier (:mod:`opkey.admission.policies`), and wires the
registry client, verdict cache, metrics, key refresher and HTTPS server together. Every error in
the configuration is raised here, before anything listens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opkey.admission.cache import (
    DEFAULT_CACHE_ENTRIES,
    DEFAULT_CACHE_TTL,
    DEFAULT_NEGATIVE_TTL,
    VerdictCache,
)
from opkey.admission.config import AdmissionConfig, Mode, load_admission_config
from opkey.admission.gate import DEFAULT_DEADLINE, DEFAULT_WORKERS, Gate
from opkey.admission.metrics import AdmissionMetrics
from opkey.admission.policies import load_gate_policies, single_policy_config
from opkey.admission.refresh import DEFAULT_REFRESH_INTERVAL, KeyRefresher
from opkey.admission.review import MAX_REVIEW_BYTES
from opkey.admission.server import AdmissionServer, ServerSettings
from opkey.errors import ConfigError
from opkey.verification.trust import KeyOptions

if TYPE_CHECKING:
    from opkey.registry.client import RegistryClient

__all__ = ["ServeOptions", "build_gate", "build_server", "parse_listen"]


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::]:8443`` for IPv6) as a host and a port."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"--listen {text!r}: expected HOST:PORT, e.g. 0.0.0.0:8443", found=text)
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"--listen {text!r}: port {port} is out of range", found=text)
    return host.strip("[]"), port


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``opkey admission serve`` was given (see its ``--help``)."""

    listen: str
    tls_cert: Path
    tls_key: Path
    config: Path | None = None
    policy: Path | None = None
    mode: Mode | None = None
    allow_tags: bool = False
    deadline: float = DEFAULT_DEADLINE
    workers: int = DEFAULT_WORKERS
    cache_entries: int = DEFAULT_CACHE_ENTRIES
    cache_ttl: float = DEFAULT_CACHE_TTL
    negative_cache_ttl: float = DEFAULT_NEGATIVE_TTL
    max_request_bytes: int = MAX_REVIEW_BYTES
    keys: KeyOptions = field(default_factory=KeyOptions)
    refresh_interval: float = DEFAULT_REFRESH_INTERVAL
    insecure_registries: Sequence[str] = ()
    registry_ca_file: str | None = None
    registry_private: bool = False

    def admission_config(self) -> AdmissionConfig:
        """The rules: the ``--config`` file, or the one rule ``--policy`` means."""
        if (self.config is None) == (self.policy is None):
            raise ConfigError("give exactly one of --config FILE and --policy FILE")
        if self.config is not None:
            if self.allow_tags:
                raise ConfigError(
                    "--allow-tags applies to --policy; in a --config file, set "
                    "require_digest = false on the rules that may resolve tags"
                )
            return load_admission_config(self.config)
        assert self.policy is not None
        return single_policy_config(
            self.policy, mode=self.mode or Mode.ENFORCE, require_digest=not self.allow_tags
        )


def _registry(options: ServeOptions) -> RegistryClient:
    from opkey.http import RequestsTransport
    from opkey.registry.client import RegistryClient
    from opkey.registry.retry import RetryPolicy

    return RegistryClient(
        transport=RequestsTransport(
            user_agent="opkey-admission", verify_tls=options.registry_ca_file
        ),
        insecure_registries=tuple(options.insecure_registries),
        # Retries within the admission's deadline: a blip is ridden out, an outage is not waited on.
        retry=RetryPolicy(
            max_attempts=3, base_delay=0.05, max_delay=0.5, deadline=options.deadline
        ),
        timeout=options.deadline,
        allow_private_addresses=options.registry_private,
    )


def build_gate(options: ServeOptions, metrics: AdmissionMetrics | None = None) -> Gate:
    """The gate: rules, loaded policies, registry client and verdict cache."""
    if not options.deadline > 0 or options.workers < 1:
        raise ConfigError("--deadline must be positive and --workers at least 1")
    config = options.admission_config()
    policies = load_gate_policies(config, options.keys)
    cache = VerdictCache(
        max_entries=options.cache_entries,
        ttl=options.cache_ttl,
        negative_ttl=options.negative_cache_ttl,
    )
    return Gate(
        config,
        policies,
        _registry(options),
        cache=cache,
        deadline=options.deadline,
        workers=options.workers,
        mode=options.mode,
        metrics=metrics,
    )


def build_server(options: ServeOptions) -> AdmissionServer:
    """The whole server, ready to :meth:`~AdmissionServer.serve` (nothing listens yet)."""
    host, port = parse_listen(options.listen)
    metrics = AdmissionMetrics()
    gate = build_gate(options, metrics)
    refresher = KeyRefresher(
        gate.policies.jwks_clients(), interval=options.refresh_interval, metrics=metrics
    )
    settings = ServerSettings(
        host=host,
        port=port,
        tls_cert=options.tls_cert,
        tls_key=options.tls_key,
        max_request_bytes=options.max_request_bytes,
    )
    try:
        return AdmissionServer(gate, settings, metrics=metrics, refresher=refresher)
    except BaseException:
        gate.close()
        raise
