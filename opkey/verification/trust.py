"""Whom a verifier trusts: issuers, their settings, and where their keys come from.

A :class:`Trust` is the verifier's side of every decision, fixed before any evidence is seen:
the issuers it accepts (each an :class:`~opkey.issuers.IssuerConfig` pinning commitment,
algorithms and expiry) and, for each, the key sources to consult in order. Nothing in a token
or a signature can add to it.

:meth:`Trust.build` is the one place that turns configuration into key sources, for every
front end (command line, policy files, examples, the admission gate):

* a pinned JWKS file (the issuer's own ``jwks_file`` in a policy file, else
  :attr:`KeyOptions.jwks_file`) replaces the live keys: nothing is fetched;
* otherwise, unless :attr:`KeyOptions.offline`, the live JWKS through one shared
  :class:`~opkey.jwks.client.JwksClient` that may fetch only the trusted issuers;
* then the JWKS archive (the issuer's ``archive``, else :attr:`KeyOptions.archive`), for keys
  the provider has since rotated out. Each archive file is opened once, and the live keys are
  recorded in it as they are fetched (a full or read-only archive never blocks verification;
  an archive in a directory that does not exist is refused by :meth:`Trust.build`, since it
  would silently keep nothing).

**Trust anchors in policy files.** A pinned JWKS or an archive decides which tokens count as
an issuer's, so it is trust itself, not a requirement. A policy file may come from a place the
verifier does not control (the repository being deployed, a ticket), and one that names the
keys of its author's choosing next to a strict-looking GitHub requirement would make a forged
identity verify. So the key files a policy file names are used only when the verifier says
the file is trusted configuration (:attr:`KeyOptions.policy_anchors`, ``opkey verify
--trust-policy-anchors``); otherwise :meth:`Trust.build` refuses them with an error that says
how to pass the keys instead (``--jwks``, ``--jwks-archive``). Keys the verifier passes
itself are always used. The same holds for settings by which a file redefines a well-known
issuer (another commitment, client id or audience prefix for GitHub's, GitLab's or Google's
URL: :func:`opkey.policy.file.redefined_settings`): they too decide which tokens count as that
issuer's, so an untrusted file may only narrow them (expiry, leeway, fewer algorithms).

**Time-stamping authorities** are trust of the same kind: an RFC 3161 token proves a signing
time only if its chain leads to an authority the verifier configured
(:attr:`Trust.timestamp_authorities`), never to certificates the token brings. The verifier's
own chains (:attr:`KeyOptions.timestamp_certs`, ``--timestamp-certs``) are always used; the
chains a policy file's ``[timestamps]`` table names are trust anchors, used only under
:attr:`KeyOptions.policy_anchors`. Requiring a proven signing time
(:attr:`Trust.require_signing_time`: ``--require-timestamp`` or the policy file's
``required``) only narrows what is accepted, so either source may ask for it.

**Transparency logs** likewise: an entry proves inclusion (and, on Rekor v1, a signing time)
only under a log the verifier pinned (:attr:`Trust.transparency_logs`: its public key and
checkpoint origin, the log ID following from the key), never one an entry names. The logs
passed on the command line (:attr:`KeyOptions.tlogs`, ``--tlog-key`` with ``--tlog-origin``)
are always used; those of a policy file's ``[tlog]`` table are trust anchors, used only under
:attr:`KeyOptions.policy_anchors`. :attr:`Trust.require_tlog` (``--require-tlog``, the
table's ``required``) rejects signatures without a verified entry in a pinned log; a log's
signed integrated time meets :attr:`Trust.require_signing_time` as a timestamp does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from opkey.errors import ConfigError
from opkey.issuers import IssuerConfig
from opkey.jwks.sources import ArchiveKeys, KeySource, LiveKeys, PinnedKeys

if TYPE_CHECKING:
    from opkey.http import Transport
    from opkey.jwks.archive import JwksArchive
    from opkey.jwks.client import JwksClient
    from opkey.jwks.keyset import KeySet
    from opkey.policy.file import IssuerEntry, LogPin, TimestampSettings, TlogSettings
    from opkey.timestamp import TimestampAuthority
    from opkey.tlog.log import TrustedLog

__all__ = ["KeyOptions", "Trust", "TrustedIssuer"]


@dataclass(frozen=True)
class TrustedIssuer:
    """One issuer the verifier trusts, and where its keys come from (tried in order)."""

    config: IssuerConfig
    keys: Sequence[KeySource]

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.keys))
        if not self.keys:
            raise ConfigError(f"issuer {self.config.issuer}: at least one key source is required")

    @property
    def issuer(self) -> str:
        """The issuer URL."""
        return self.config.issuer


@dataclass(frozen=True)
class KeyOptions:
    """Where provider keys may come from, beyond what each issuer's own settings name.

    ``jwks_file`` pins one issuer's keys (so it needs exactly one trusted issuer); ``archive``
    is a JWKS archive file consulted after the live keys; ``offline`` fetches nothing, so every
    issuer then needs a pinned JWKS or an archive. ``policy_anchors`` accepts the key files and
    archives that issuer entries name (a policy file's ``jwks_file`` and ``archive``) and their
    redefinitions of well-known issuers (:attr:`IssuerEntry.trust_anchors`): set it only for
    policy files that are trusted configuration (see the module documentation).
    ``transport`` replaces the HTTP transport of the live JWKS client (tests, integrators).

    ``timestamp_certs`` are PEM chains of time-stamping authorities the verifier trusts (one
    authority per file; always used), and ``require_timestamp`` rejects every signature
    without a signing time one of the trusted authorities proves.
    """

    jwks_file: Path | None = None
    archive: Path | None = None
    offline: bool = False
    policy_anchors: bool = False
    transport: Transport | None = field(default=None, compare=False)
    timestamp_certs: Sequence[Path] = ()
    require_timestamp: bool = False
    #: Transparency logs the verifier pins itself (always used), and whether an entry in one
    #: of them is required.
    tlogs: Sequence[LogPin] = ()
    require_tlog: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamp_certs", tuple(self.timestamp_certs))
        object.__setattr__(self, "tlogs", tuple(self.tlogs))


@dataclass(frozen=True)
class Trust:
    """The issuers a verifier trusts, by exact issuer URL, and its rules for signing time.

    ``timestamp_authorities`` are the RFC 3161 authorities whose tokens prove a signing time
    (``spec/timestamps.md``); ``transparency_logs`` the logs whose entries prove inclusion,
    and for Rekor v1 a signing time (``spec/transparency-log.md``). ``require_signing_time``
    rejects signatures for which none of them proves a time (``spec/time.md``), and needs an
    authority or a log that signs times; ``require_tlog`` rejects signatures without a
    verified entry in one of the logs, and needs at least one.
    """

    issuers: Sequence[TrustedIssuer]
    timestamp_authorities: Sequence[TimestampAuthority] = ()
    require_signing_time: bool = False
    transparency_logs: Sequence[TrustedLog] = ()
    require_tlog: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "issuers", tuple(self.issuers))
        object.__setattr__(self, "timestamp_authorities", tuple(self.timestamp_authorities))
        object.__setattr__(self, "transparency_logs", tuple(self.transparency_logs))
        if not self.issuers:
            raise ConfigError("trust needs at least one trusted issuer")
        timed_logs = [log for log in self.transparency_logs if log.signs_entry_timestamps]
        if self.require_signing_time and not (self.timestamp_authorities or timed_logs):
            raise ConfigError(
                "a proven signing time is required, but no time-stamping authority is trusted "
                "(pass --timestamp-certs FILE with the authority's PEM chain) and no pinned "
                "transparency log signs times (a Rekor v1 log: --tlog-key, --tlog-origin)"
            )
        if self.require_tlog and not self.transparency_logs:
            raise ConfigError(
                "a transparency log entry is required, but no log is pinned (pass --tlog-key "
                "FILE with --tlog-origin ORIGIN)"
            )
        ids = [log.log_id for log in self.transparency_logs]
        if len(set(ids)) != len(ids):
            raise ConfigError("a transparency log is pinned twice (the same key)")
        urls = [trusted.issuer for trusted in self.issuers]
        repeated = sorted({url for url in urls if urls.count(url) > 1})
        if repeated:
            raise ConfigError(f"issuer {repeated[0]} is configured twice")

    def issuer(self, url: str) -> TrustedIssuer | None:
        """The trusted issuer with exactly this URL, or ``None``."""
        for trusted in self.issuers:
            if trusted.issuer == url:
                return trusted
        return None

    @property
    def urls(self) -> tuple[str, ...]:
        """The trusted issuer URLs, in configuration order."""
        return tuple(trusted.issuer for trusted in self.issuers)

    @classmethod
    def build(
        cls,
        entries: Iterable[IssuerEntry],
        options: KeyOptions | None = None,
        *,
        timestamps: TimestampSettings | None = None,
        tlog: TlogSettings | None = None,
    ) -> Trust:
        """Trust the issuers ``entries`` describe, with key sources chosen as the module says.

        ``timestamps`` is a policy file's ``[timestamps]`` table: its chains are trust anchors
        (used only under ``options.policy_anchors``), its ``required`` is always honoured.
        ``tlog``, its ``[tlog]`` table, likewise: its logs are trust anchors, its ``required``
        always honoured.
        """
        options = options or KeyOptions()
        authorities = _timestamp_authorities(options, timestamps)
        logs = _transparency_logs(options, tlog)
        entries = list(entries)
        if not entries:
            raise ConfigError("no trusted issuer: list at least one")
        if options.jwks_file is not None and len(entries) != 1:
            raise ConfigError(
                f"a pinned JWKS names one issuer's keys, but {len(entries)} issuers are trusted; "
                "give each issuer its own jwks_file in the policy file"
            )
        if not options.policy_anchors:
            for index, entry in enumerate(entries):
                named = entry.trust_anchors
                if named and named[0] in ("jwks_file", "archive"):
                    raise ConfigError(
                        f"issuers[{index}].{named[0]}: the policy file names key material for "
                        f"{entry.issuer}, which is trust, not a requirement; pass the keys "
                        "yourself (--jwks, --jwks-archive), or, if the policy file is trusted "
                        "configuration, allow it with --trust-policy-anchors",
                        found=str(getattr(entry, named[0])),
                    )
                if named:
                    raise ConfigError(
                        f"issuers[{index}].{named[0]}: the policy file changes which tokens "
                        f"count as {entry.issuer}'s ({', '.join(named)} differ from its "
                        "built-in settings), which is trust, not a requirement; leave them "
                        "out, or, if the policy file is trusted configuration, allow it with "
                        "--trust-policy-anchors",
                        found=list(named),
                    )
        archives = _Archives()
        live_urls = [
            e.issuer
            for e in entries
            if e.jwks_file is None and options.jwks_file is None and not options.offline
        ]
        client = _live_client(live_urls, entries, options, archives) if live_urls else None
        trusted: list[TrustedIssuer] = []
        for entry in entries:
            sources: list[KeySource] = []
            pinned = entry.jwks_file or options.jwks_file
            if pinned is not None:
                sources.append(PinnedKeys.from_file(entry.issuer, pinned))
            elif client is not None:
                sources.append(LiveKeys(client))
            archive_path = entry.archive or options.archive
            if archive_path is not None:
                sources.append(ArchiveKeys(archives.open(archive_path)))
            if not sources:
                raise ConfigError(
                    f"no source of keys for {entry.issuer}: offline, without a pinned JWKS or "
                    "an archive (pass --jwks or --jwks-archive)"
                )
            trusted.append(TrustedIssuer(entry.config, tuple(sources)))
        required = options.require_timestamp or (timestamps is not None and timestamps.required)
        require_tlog = options.require_tlog or (tlog is not None and tlog.required)
        return cls(tuple(trusted), authorities, required, logs, require_tlog)

    @classmethod
    def of(cls, configs: Sequence[IssuerConfig], options: KeyOptions | None = None) -> Trust:
        """Trust ``configs`` with the key sources ``options`` allows (no per-issuer pins)."""
        from opkey.policy.file import IssuerEntry

        return cls.build([IssuerEntry(config) for config in configs], options)


_Source = TypeVar("_Source")
_Anchor = TypeVar("_Anchor")


def _trust_anchors(
    own: Sequence[_Source],
    named: Sequence[_Source],
    options: KeyOptions,
    read: Callable[[_Source], _Anchor],
    *,
    refusal: str,
    found: list[str],
) -> tuple[_Anchor, ...]:
    """The verifier's own anchors, then the policy file's (``named``), each read once and kept
    once, in order. A policy file states requirements: the anchors it names are trust, taken
    only when its reader says it is trusted configuration (``--trust-policy-anchors``);
    otherwise they are refused with ``refusal`` (and ``found``, what the file named)."""
    if named and not options.policy_anchors:
        raise ConfigError(refusal, found=found)
    anchors: list[_Anchor] = []
    for source in (*own, *named):
        anchor = read(source)
        if anchor not in anchors:
            anchors.append(anchor)
    return tuple(anchors)


def _timestamp_authorities(
    options: KeyOptions, settings: TimestampSettings | None
) -> tuple[TimestampAuthority, ...]:
    """The verifier's own TSA chains, then (if trusted) the policy file's; each read once."""

    def read(path: Path) -> TimestampAuthority:
        # Imported only when a chain is configured: x509 costs start-up time.
        from opkey.timestamp import TimestampAuthority

        return TimestampAuthority.from_pem(
            _read_chain(path), what=f"time-stamping authority chain {path}"
        )

    named = settings.authorities if settings is not None else ()
    return _trust_anchors(
        options.timestamp_certs,
        named,
        options,
        read,
        refusal="timestamps.authorities: the policy file names time-stamping authorities, which "
        "are trust, not a requirement; pass their chains yourself (--timestamp-certs), "
        "or, if the policy file is trusted configuration, allow it with "
        "--trust-policy-anchors",
        found=[str(path) for path in named],
    )


def _transparency_logs(
    options: KeyOptions, settings: TlogSettings | None
) -> tuple[TrustedLog, ...]:
    """The verifier's own pinned logs, then (if trusted) the policy file's; each key read once."""

    def read(pin: LogPin) -> TrustedLog:
        # Imported only when a log is pinned, as the TSA chains are.
        from opkey.errors import FormatError
        from opkey.files import read_regular_file
        from opkey.tlog.log import TrustedLog
        from opkey.tlog.note import load_log_public_key

        data = read_regular_file(
            Path(pin.key_file).expanduser(),
            limit=16 * 1024,
            what="transparency log key",
            error=ConfigError,
        )
        try:
            return TrustedLog.pinned(
                pin.origin, load_log_public_key(data, what=f"transparency log key {pin.key_file}")
            )
        except FormatError as exc:
            raise ConfigError(exc.message) from None

    named = settings.logs if settings is not None else ()
    return _trust_anchors(
        options.tlogs,
        named,
        options,
        read,
        refusal="tlog.logs: the policy file names transparency logs, which are trust, not a "
        "requirement; pin them yourself (--tlog-key, --tlog-origin), or, if the policy file "
        "is trusted configuration, allow it with --trust-policy-anchors",
        found=[str(pin.key_file) for pin in named],
    )


#: A PEM chain of a few certificates is a few KiB (``opkey.timestamp`` bounds it again).
_MAX_CHAIN_FILE = 256 * 1024


def _read_chain(path: Path) -> bytes:
    try:
        with Path(path).expanduser().open("rb") as handle:
            data = handle.read(_MAX_CHAIN_FILE + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read time-stamping authority chain {path}: {exc.strerror or exc}"
        ) from None
    if len(data) > _MAX_CHAIN_FILE:
        raise ConfigError(
            f"time-stamping authority chain {path}: larger than {_MAX_CHAIN_FILE} bytes"
        )
    return data


class _Archives:
    """Each archive file opened once, however many issuers name it."""

    def __init__(self) -> None:
        self._open: dict[Path, JwksArchive] = {}

    def open(self, path: Path) -> JwksArchive:
        from opkey.jwks.archive import JwksArchive

        resolved = path.expanduser().absolute()
        if not resolved.parent.is_dir():
            # Checked here, before any verification: recording into the archive later fails
            # quietly (a full or read-only archive must not block verification), and a
            # mistyped directory would then keep nothing, silently, run after run.
            raise ConfigError(
                f"JWKS archive {path}: directory {resolved.parent} does not exist",
                found=str(path),
            )
        if resolved not in self._open:
            self._open[resolved] = JwksArchive(resolved)
        return self._open[resolved]


def _live_client(
    urls: list[str], entries: list[IssuerEntry], options: KeyOptions, archives: _Archives
) -> JwksClient:
    from opkey.jwks.client import JwksClient

    record_in = {
        e.issuer: archives.open(path)
        for e in entries
        if e.issuer in urls and (path := e.archive or options.archive) is not None
    }

    def observer(issuer: str, keys: KeySet, seen_at: datetime) -> None:
        archive = record_in.get(issuer)
        if archive is not None:
            # The archive is a fallback: a full or read-only archive must not block verification.
            with contextlib.suppress(ConfigError):
                archive.record(issuer, keys, seen_at)

    return JwksClient(urls, observer=observer, transport=options.transport)
