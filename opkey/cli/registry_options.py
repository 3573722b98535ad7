"""Registry options shared by every command that reads or writes images (``opkey sign IMAGE``,
``opkey verify IMAGE``, ``attest``, ``verify-attestation``, ``tree``, ``inspect``).

One helper adds the same flags to both parsers, and :class:`RegistryOptions` turns them (and the
environment) into a :class:`~opkey.registry.client.RegistryClient`:

* ``--insecure-registry HOST``: plain http to that registry (loopback always may);
* ``--registry-username USER`` with ``--registry-password-stdin`` (the password never appears
  on a command line), else ``OPKEY_REGISTRY_USERNAME``/``OPKEY_REGISTRY_PASSWORD``: credentials
  for the image's registry, before docker's ``config.json`` and ``GITHUB_TOKEN``;
* ``--registry-ca-file FILE``: the CA bundle for the registry's TLS (else
  ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` when set, else the default roots);
* ``--registry-token-host HOST``: a token service on another origin that may receive the
  registry's credentials (see ``spec/registry.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from opkey.errors import ConfigError

if TYPE_CHECKING:
    from opkey.http import Deadline
    from opkey.registry.client import RegistryClient

__all__ = [
    "MAX_PASSWORD_BYTES",
    "RegistryOptions",
    "add_registry_access_arguments",
    "add_registry_arguments",
]

#: Longest password read from standard input (registry tokens are a few KiB at most).
MAX_PASSWORD_BYTES = 64 * 1024


def add_registry_arguments(parser: Any) -> None:
    """Add the registry flags (see the module doc) to ``parser``."""
    group = parser.add_argument_group("registry (images)")
    add_registry_access_arguments(group)
    group.add_argument("--registry-username", metavar="USER", help="registry user name")
    group.add_argument(
        "--registry-password-stdin",
        action="store_true",
        help="read the registry password or token from standard input",
    )
    group.add_argument(
        "--registry-token-host",
        action="append",
        default=[],
        metavar="HOST",
        help="token service on another host that may receive the registry credentials",
    )


def add_registry_access_arguments(group: Any) -> None:
    """``--insecure-registry`` and ``--registry-ca-file``: how to reach a registry at all, also
    taken by the admission gate (which reads images with the cluster's credentials only)."""
    group.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="allow plain http to this registry (loopback always may)",
    )
    group.add_argument(
        "--registry-ca-file", metavar="FILE", help="CA bundle (PEM) for the registry's TLS"
    )


@dataclass(frozen=True)
class RegistryOptions:
    """The registry flags, validated; the password already read."""

    insecure: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    token_hosts: tuple[str, ...] = ()

    @classmethod
    def from_args(
        cls,
        args: argparse.Namespace,
        *,
        env: Mapping[str, str] | None = None,
        stdin: IO[bytes] | None = None,
    ) -> RegistryOptions:
        """Read the flags (and, with ``--registry-password-stdin``, standard input)."""
        # The HTTP and registry modules are imported only when used: a verification of files
        # never needs them, and start-up time is part of every command.
        username = getattr(args, "registry_username", None)
        from_stdin = bool(getattr(args, "registry_password_stdin", False))
        if (username or from_stdin) and not getattr(args, "image", None):
            raise ConfigError("--registry-username and --registry-password-stdin are for images")
        if from_stdin and not username:
            raise ConfigError("--registry-password-stdin needs --registry-username")
        if username and len(_registries(getattr(args, "image", None) or ())) > 1:
            # Credentials belong to one registry: never send one registry's to another.
            raise ConfigError(
                "--registry-username names one registry's credentials, but the images are on "
                f"several ({', '.join(sorted(_registries(args.image)))}); sign or verify them "
                "one registry at a time"
            )
        password = None
        if username:
            if not from_stdin:
                raise ConfigError(
                    "--registry-username needs --registry-password-stdin (the password is "
                    "never taken from the command line)"
                )
            if "-" in (getattr(args, "bundle", None) or ()):
                raise ConfigError("standard input cannot hold both a bundle and the password")
            password = _read_password(stdin or sys.stdin.buffer)
        elif getattr(args, "image", None):
            from opkey.registry.auth import credentials_from_env

            ambient = credentials_from_env(os.environ if env is None else env)
            if ambient is not None:
                username, password = ambient.username, ambient.password
        ca_file = getattr(args, "registry_ca_file", None)
        if ca_file:
            from opkey.http import check_ca_bundle

            check_ca_bundle(ca_file, what="--registry-ca-file")
        return cls(
            insecure=tuple(getattr(args, "insecure_registry", None) or ()),
            username=username,
            password=password,
            ca_file=ca_file or None,
            token_hosts=tuple(h.lower() for h in getattr(args, "registry_token_host", None) or ()),
        )

    def client(self, image: str, deadline: Deadline | None = None) -> RegistryClient:
        """A client for ``image``'s registry: TLS verified (with the CA file when given), plain
        http only for loopback and ``--insecure-registry`` hosts, credentials as above."""
        from opkey.http import RequestsTransport
        from opkey.registry.auth import Credentials
        from opkey.registry.client import RegistryClient
        from opkey.registry.reference import ImageReference

        registry = ImageReference.parse(image).registry
        credentials = (
            {registry: Credentials(self.username, self.password)}
            if self.username and self.password is not None
            else None
        )
        return RegistryClient(
            transport=RequestsTransport(user_agent="opkey-registry", verify_tls=self.ca_file),
            credentials=credentials,
            insecure_registries=self.insecure,
            token_hosts={registry: self.token_hosts} if self.token_hosts else None,
            deadline=deadline,
        )


def _registries(images: Any) -> set[str]:
    from opkey.registry.reference import ImageReference

    return {ImageReference.parse(image).registry for image in images}


def _read_password(stream: IO[bytes]) -> str:
    data = stream.read(MAX_PASSWORD_BYTES + 1)
    if len(data) > MAX_PASSWORD_BYTES:
        raise ConfigError(f"the password on standard input is longer than {MAX_PASSWORD_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the password on standard input is not UTF-8") from None
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise ConfigError("--registry-password-stdin: standard input is empty")
    return password
