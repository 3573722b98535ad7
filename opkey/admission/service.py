"""Assembling the gate from its settings: what ``opkey admission serve`` runs.

:class:`ServeOptions` holds every setting of the command as library values;
:func:`build_server` reads the rule file (or makes the one-rule configuration of ``--policy``),
loads every policy file into a verifier (:mod:`opkey.admission.policies`), and wires the
registry client, verdict cache, metrics, key refresher and HTTPS server together. Every error in
the configuration is raised here, before anything listens.
"""

from __future__ import annotations

import logging
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
from opkey.admission.server import AdmissionServer, ServerSettings, file_state
from opkey.errors import ConfigError
from opkey.verification.trust import KeyOptions

if TYPE_CHECKING:
    from opkey.registry.client import RegistryClient

_log = logging.getLogger("opkey.admission")

__all__ = ["ConfigWatcher", "ServeOptions", "build_gate", "build_server", "parse_listen"]


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
    #: Seconds between checks of the certificate, rule and policy files (0: never reload).
    reload_interval: float = 10.0
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


class ConfigWatcher:
    """Reloads the rules and policies when one of their files changes.

    Watched: the rule file (``--config``), every policy file the rules name, the JWKS files,
    time-stamping authority chains and transparency log keys they or the flags pin.
    :meth:`check` compares each file's inode, size and modification time with the last look (a
    ConfigMap volume's update swaps in new files under the same names); on a change it reads and
    loads everything again as at start-up, fetches the new policies' provider keys, and only
    then has the gate judge new requests under them. Verdicts reached under the old policies are
    not reused for the new ones (their fingerprints differ), unless a policy and its trust
    material are byte for byte the same. A configuration that does not load leaves the running
    one in use and says why in the log; it is tried again when its files change again.
    """

    def __init__(
        self,
        options: ServeOptions,
        gate: Gate,
        *,
        refresher: KeyRefresher | None = None,
        metrics: AdmissionMetrics | None = None,
    ) -> None:
        self.options = options
        self.gate = gate
        self.refresher = refresher
        self.metrics = metrics
        self._files = self._watched(gate)
        self._seen = self._states()

    def _watched(self, gate: Gate) -> tuple[Path, ...]:
        files: list[Path] = []
        if self.options.config is not None:
            files.append(self.options.config)
        keys = self.options.keys
        if keys.jwks_file is not None:
            files.append(keys.jwks_file)
        files.extend(keys.timestamp_certs)
        files.extend(pin.key_file for pin in keys.tlogs)
        for path, loaded in gate.policies.by_path.items():
            files.append(path)
            files.extend(e.jwks_file for e in loaded.policy.issuers if e.jwks_file is not None)
            files.extend(loaded.policy.timestamps.authorities)
            files.extend(pin.key_file for pin in loaded.policy.tlog.logs)
        return tuple(dict.fromkeys(files))

    def _states(self) -> tuple[object, ...]:
        return tuple(file_state(path) for path in self._files)

    def check(self) -> bool:
        """Reload if a watched file changed; whether new requests now use a new configuration."""
        seen = self._states()
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            config = self.options.admission_config()
            policies = load_gate_policies(config, self.options.keys)
        except ConfigError as exc:
            _log.error(
                "configuration not reloaded, the running one stays in use: %s",
                exc,
                extra={"fields": {"event": "reload", "ok": False}},
            )
            if self.metrics is not None:
                self.metrics.reloaded(ok=False)
            return False
        if self.refresher is not None:
            self.refresher.refresh_all(policies.jwks_clients())
            self.refresher.use(policies.jwks_clients())
        self.gate.replace(config, policies)
        self._files = self._watched(self.gate)
        self._seen = self._states()
        _log.info(
            "configuration reloaded (%d rules, %d policy files)",
            len(config.rules),
            len(policies.by_path),
            extra={"fields": {"event": "reload", "ok": True}},
        )
        if self.metrics is not None:
            self.metrics.reloaded(ok=True)
        return True


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
        watch_interval=options.reload_interval or 10.0,
    )
    watcher = (
        ConfigWatcher(options, gate, refresher=refresher, metrics=metrics)
        if options.reload_interval > 0
        else None
    )
    try:
        return AdmissionServer(
            gate,
            settings,
            metrics=metrics,
            refresher=refresher,
            reload=watcher.check if watcher is not None else None,
        )
    except BaseException:
        gate.close()
        raise
