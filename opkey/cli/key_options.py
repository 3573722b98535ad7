"""Provider-key options shared by ``opkey verify``, ``opkey verify-attestation`` and
``opkey monitor``: where the issuers' keys come from.

* ``--jwks FILE``: the issuer's keys pinned (nothing fetched for it);
* ``--jwks-archive DIR|FILE``: a JWKS archive consulted after the live keys (rotated-out keys),
  recording the live ones;
* ``--offline``: no request to identity providers (the keys then come from the two above or
  the policy file);
* ``--trust-policy-anchors``: the ``--policy`` file is trusted configuration, so the key files
  and archives it names count.

One declaration, one translation into :class:`~opkey.verification.trust.KeyOptions` and one
check of the result, so every command that verifies PK tokens reads them alike.
:func:`trust_options` adds what a command verifying signatures also trusts (the
time-stamping authorities and the pinned transparency log): ``opkey verify``,
``opkey verify-attestation`` and ``opkey admission serve`` read all of it through that one
function.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import argparse

    from opkey.http import Transport
    from opkey.verification.trust import KeyOptions

__all__ = ["KeyFlags", "add_key_arguments", "check_key_flags", "key_options", "trust_options"]


class KeyFlags(Protocol):
    """The parsed key options: the command's arguments, or a request made of them."""

    @property
    def jwks(self) -> str | None:
        """``--jwks``."""

    @property
    def jwks_archive(self) -> str | None:
        """``--jwks-archive``."""

    @property
    def offline(self) -> bool:
        """``--offline``."""

    @property
    def trust_policy_anchors(self) -> bool:
        """``--trust-policy-anchors``."""


def add_key_arguments(parser: Any, *, offline_note: str = "") -> None:
    """The ``provider keys`` group; ``offline_note`` adds what ``--offline`` leaves to the
    network in this command."""
    group = parser.add_argument_group("provider keys")
    group.add_argument("--jwks", metavar="FILE", help="pinned JWKS of the issuer (no network)")
    group.add_argument(
        "--jwks-archive",
        metavar="DIR|FILE",
        help="JWKS archive to consult after the live keys, and to record them in",
    )
    group.add_argument(
        "--offline",
        action="store_true",
        help="make no request to identity providers: keys come only from --jwks or "
        f"--jwks-archive{offline_note}",
    )
    group.add_argument(
        "--trust-policy-anchors",
        action="store_true",
        help="the --policy file is trusted configuration: use the key files and archives it "
        "names and its changes to well-known issuers' settings (without this they are refused: "
        "a policy file from elsewhere must not choose keys or redefine an issuer)",
    )


def check_key_flags(keys: KeyOptions, *, policy_file: str | None) -> None:
    """Refuse ``--offline`` with no keys to use (a policy file may name them), and
    ``--trust-policy-anchors`` with no policy file to trust (it would be silently ignored)."""
    from opkey.errors import ConfigError

    if keys.offline and not (keys.jwks_file or keys.archive or policy_file):
        raise ConfigError("--offline needs the issuer's keys: pass --jwks or --jwks-archive")
    if keys.policy_anchors and not policy_file:
        raise ConfigError("--trust-policy-anchors applies to a --policy file")


def key_options(flags: KeyFlags, transport: Transport | None = None) -> KeyOptions:
    """The library's key options for ``flags``; ``transport`` carries the live key requests
    (unused offline)."""
    from opkey.cli._common import archive_path
    from opkey.verification.trust import KeyOptions

    return KeyOptions(
        jwks_file=Path(flags.jwks) if flags.jwks else None,
        archive=archive_path(flags.jwks_archive) if flags.jwks_archive else None,
        offline=flags.offline,
        policy_anchors=flags.trust_policy_anchors,
        transport=None if flags.offline else transport,
    )


def trust_options(args: argparse.Namespace) -> KeyOptions:
    """Everything a signature-verifying command was told to trust: the provider keys, the
    time-stamping authorities (``--timestamp-certs``, ``--require-timestamp``) and the pinned
    transparency log (``--tlog-key``/``--tlog-origin``, ``--require-tlog``).

    No transport yet: the caller adds the one bounded by its own deadline.
    """
    from opkey.cli.tlog_options import log_pins

    return replace(
        key_options(args),
        timestamp_certs=tuple(Path(path) for path in args.timestamp_certs or ()),
        require_timestamp=args.require_timestamp,
        tlogs=log_pins(args),
        require_tlog=args.require_tlog,
    )
