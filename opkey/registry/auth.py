"""Registry authentication: docker ``config.json`` credentials, challenges and token caching.

Registries announce how to authenticate in a ``WWW-Authenticate`` challenge on a 401 answer:

* ``Basic realm="…"``: send ``Authorization: Basic`` with the user's credentials;
* ``Bearer realm="…",service="…",scope="…"``: get a token from the realm (with the user's
  credentials when there are any, anonymously otherwise) and send it as ``Bearer``.

:class:`AuthState` remembers, per registry host, which scheme it uses and the tokens obtained per
scope, so only the first request to a registry pays for the challenge round trip. Credentials
come from the caller or from docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``), the file ``docker login`` writes. Credential helpers
(``credsStore``/``credHelpers``) and OAuth identity tokens are not supported; they are only
reported (with the fix) when a registry actually asks for credentials, so that a configured
helper does not break anonymous pulls.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from opkey.errors import ConfigError, RegistryError

__all__ = [
    "AuthState",
    "Challenge",
    "Credentials",
    "DockerCredentialStore",
    "normalize_registry_host",
    "parse_challenges",
]

_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and password (or personal access token) for one registry."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        """The ``Authorization`` value for HTTP basic authentication."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def normalize_registry_host(key: str) -> str:
    """The host[:port] a docker config ``auths`` key or a reference's registry denotes.

    ``https://index.docker.io/v1/``, ``registry-1.docker.io`` and ``docker.io`` all denote
    Docker Hub and normalize to ``docker.io``.
    """
    text = key.strip()
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    host = text.split("/", 1)[0].lower()
    return "docker.io" if host in _DOCKER_HUB_NAMES else host


@dataclass(frozen=True, slots=True)
class DockerCredentialStore:
    """Credentials read from a docker ``config.json`` (inline ``auths`` entries only)."""

    path: Path | None = None
    auths: Mapping[str, Credentials] = field(default_factory=lambda: MappingProxyType({}))
    #: hosts whose credentials live in something opkey cannot read, and what that is
    unsupported: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    default_helper: str | None = None

    @classmethod
    def default_path(cls, env: Mapping[str, str] | None = None) -> Path:
        """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
        environ = os.environ if env is None else env
        directory = environ.get("DOCKER_CONFIG")
        if directory:
            return Path(directory) / "config.json"
        return Path.home() / ".docker" / "config.json"

    @classmethod
    def load(
        cls, path: Path | None = None, *, env: Mapping[str, str] | None = None
    ) -> DockerCredentialStore:
        """Read ``path`` (default: :meth:`default_path`); a missing file means no credentials."""
        config_path = path or cls.default_path(env)
        try:
            with config_path.open("rb") as handle:
                data = handle.read(_MAX_CONFIG_BYTES + 1)
        except FileNotFoundError:
            return cls(path=config_path)
        except OSError as exc:
            raise ConfigError(f"cannot read docker config {config_path}: {exc}") from None
        if len(data) > _MAX_CONFIG_BYTES:
            raise ConfigError(f"docker config {config_path} is larger than 1 MiB")
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"docker config {config_path} is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"docker config {config_path}: expected a JSON object")
        return cls._from_document(document, config_path)

    @classmethod
    def _from_document(cls, document: dict[str, object], path: Path) -> DockerCredentialStore:
        auths: dict[str, Credentials] = {}
        unsupported: dict[str, str] = {}
        entries = document.get("auths", {})
        if not isinstance(entries, dict):
            raise ConfigError(f"docker config {path}: 'auths' must be an object")
        for key, entry in entries.items():
            if not isinstance(entry, dict):
                raise ConfigError(f"docker config {path}: auths[{key!r}] must be an object")
            host = normalize_registry_host(key)
            credentials = _entry_credentials(entry, key, path)
            if credentials is not None:
                auths[host] = credentials
            elif entry.get("identitytoken"):
                unsupported[host] = "an OAuth identity token (identitytoken)"
        helpers = document.get("credHelpers", {})
        if not isinstance(helpers, dict):
            raise ConfigError(f"docker config {path}: 'credHelpers' must be an object")
        for key, helper in helpers.items():
            host = normalize_registry_host(key)
            if host not in auths and isinstance(helper, str):
                unsupported[host] = f"the credential helper docker-credential-{helper}"
        store = document.get("credsStore")
        return cls(
            path=path,
            auths=MappingProxyType(auths),
            unsupported=MappingProxyType(unsupported),
            default_helper=store if isinstance(store, str) and store else None,
        )

    def lookup(self, host: str) -> Credentials | None:
        """Inline credentials for ``host`` (a reference's registry or API host)."""
        return self.auths.get(normalize_registry_host(host))

    def unsupported_source(self, host: str) -> str | None:
        """What holds ``host``'s credentials when opkey cannot read it (a helper…), else None."""
        normalized = normalize_registry_host(host)
        if normalized in self.auths:
            return None
        found = self.unsupported.get(normalized)
        if found is None and self.default_helper:
            found = f"the credential store docker-credential-{self.default_helper} (credsStore)"
        return found


def _entry_credentials(entry: dict[str, object], key: str, path: Path) -> Credentials | None:
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(
                f"docker config {path}: auths[{key!r}].auth is not base64 of 'user:password'"
            ) from None
        user, sep, secret = decoded.partition(":")
        if not sep or not user:
            raise ConfigError(
                f"docker config {path}: auths[{key!r}].auth does not decode to 'user:password'"
            )
        return Credentials(user, secret)
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and username and isinstance(password, str):
        return Credentials(username, password)
    return None


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: a scheme (lowercase) and its parameters."""

    scheme: str
    params: Mapping[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235), possibly holding several challenges."""
    challenges: list[Challenge] = []
    position, length = 0, len(header)
    current: tuple[str, dict[str, str]] | None = None

    def skip(chars: str) -> None:
        nonlocal position
        while position < length and header[position] in chars:
            position += 1

    while position < length:
        skip(" \t,")
        match = _TOKEN_CHARS.match(header, position)
        if match is None:
            raise RegistryError(f"unreadable WWW-Authenticate header {header[:200]!r}")
        token, position = match.group(0), match.end()
        skip(" \t")
        if position < length and header[position] == "=" and current is not None:
            position += 1
            skip(" \t")
            if position < length and header[position] == '"':
                value_chars: list[str] = []
                position += 1
                while position < length and header[position] != '"':
                    if header[position] == "\\" and position + 1 < length:
                        position += 1
                    value_chars.append(header[position])
                    position += 1
                if position >= length:
                    raise RegistryError(f"unterminated quoted string in {header[:200]!r}")
                position += 1
                value = "".join(value_chars)
            else:
                value_match = _TOKEN_CHARS.match(header, position)
                value = value_match.group(0) if value_match else ""
                position = value_match.end() if value_match else position
            current[1][token.lower()] = value
        else:
            if current is not None:
                challenges.append(Challenge(current[0], current[1]))
            current = (token.lower(), {})
    if current is not None:
        challenges.append(Challenge(current[0], current[1]))
    return challenges


@dataclass
class _HostAuth:
    scheme: str  # "basic" or "bearer"
    realm: str = ""
    service: str | None = None


class AuthState:
    """Per-client memory of how each registry authenticates, and bearer tokens per scope."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostAuth] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def remember_basic(self, host: str) -> None:
        """``host`` asked for basic authentication."""
        with self._lock:
            self._hosts[host] = _HostAuth("basic")

    def remember_bearer(self, host: str, realm: str, service: str | None) -> None:
        """``host`` asked for a bearer token from ``realm``."""
        with self._lock:
            self._hosts[host] = _HostAuth("bearer", realm, service)

    def host_scheme(self, host: str) -> tuple[str, str, str | None] | None:
        """``(scheme, realm, service)`` last seen for ``host``, or ``None``."""
        with self._lock:
            entry = self._hosts.get(host)
        return None if entry is None else (entry.scheme, entry.realm, entry.service)

    def cached_token(self, host: str, scope: str) -> str | None:
        """An unexpired token for ``scope`` on ``host``."""
        with self._lock:
            entry = self._tokens.get((host, scope))
            if entry is None:
                return None
            token, expires = entry
            if time.monotonic() >= expires:
                del self._tokens[(host, scope)]
                return None
            return token

    def store_token(self, host: str, scope: str, token: str, lifetime: float) -> None:
        """Cache ``token`` for ``scope``, dropping it 10 % (at least 5 s) before it expires."""
        margin = max(5.0, lifetime * 0.1)
        with self._lock:
            self._tokens[(host, scope)] = (token, time.monotonic() + max(0.0, lifetime - margin))

    def forget_token(self, host: str, scope: str) -> None:
        """Drop a token the registry refused."""
        with self._lock:
            self._tokens.pop((host, scope), None)
