"""Registry authentication: docker ``config.json`` credentials, challenges and token caching.

Registries announce how to authenticate in a ``WWW-Authenticate`` challenge on a 401 answer:

* ``Basic realm="…"``: send ``Authorization: Basic`` with the user's credentials;
* ``Bearer realm="…",service="…",scope="…"``: get a token from the realm (with the user's
  credentials when there are any, anonymously otherwise) and send it as ``Bearer``.

:class:`AuthState` remembers, per registry host, which scheme it uses and the tokens obtained per
scope, so only the first request to a registry pays for the challenge round trip. Credentials
come from the caller, from docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``, the file ``docker login`` writes): inline ``auths`` entries and
credential helpers (``credHelpers`` per registry, else ``credsStore``), run as docker runs them
(:func:`run_credential_helper`: ``docker-credential-<name> get`` with the server on standard
input, bounded in time and output), or from the environment (:func:`credentials_from_env`,
:func:`ambient_credentials`). OAuth identity tokens are not supported; they are only reported
(with the fix) when a registry actually asks for credentials, as is a helper that is not
installed, so that a configuration copied from another machine does not break anonymous pulls.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO

from opkey.errors import ConfigError, RegistryError
from opkey.remote_text import printable

__all__ = [
    "HELPER_MAX_OUTPUT",
    "HELPER_TIMEOUT",
    "AuthState",
    "Challenge",
    "Credentials",
    "DockerCredentialStore",
    "ambient_credentials",
    "credentials_from_env",
    "normalize_registry_host",
    "parse_challenges",
    "run_credential_helper",
]

_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: The server name docker gives credential helpers for Docker Hub.
_DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_MAX_CONFIG_BYTES = 1024 * 1024
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: Seconds a credential helper may take (some ask a keychain or refresh a cloud token).
HELPER_TIMEOUT = 30.0
#: Bytes of a helper's answer read at most (real answers are well under 8 KiB).
HELPER_MAX_OUTPUT = 64 * 1024
_HELPER_MAX_STDERR = 4096
_NOT_FOUND = "credentials not found"


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
    """Credentials of a docker ``config.json``: inline ``auths`` entries and credential helpers.

    A host with a ``credHelpers`` entry asks that helper, else ``credsStore`` (the default
    helper) is asked, as docker does; when the helper has nothing for the host, an inline
    ``auths`` entry is used. Helper answers are kept for the life of the store.
    """

    path: Path | None = None
    auths: Mapping[str, Credentials] = field(default_factory=lambda: MappingProxyType({}))
    #: hosts whose credentials live in something opkey cannot read, and what that is
    unsupported: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    default_helper: str | None = None
    #: per-host helpers (``credHelpers``): host -> helper name
    helpers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    _answers: dict[str, Credentials | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _missing_helpers: dict[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

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
        entries_helpers = document.get("credHelpers", {})
        if not isinstance(entries_helpers, dict):
            raise ConfigError(f"docker config {path}: 'credHelpers' must be an object")
        helpers: dict[str, str] = {}
        for key, helper in entries_helpers.items():
            if isinstance(helper, str) and helper:
                helpers[normalize_registry_host(key)] = _helper_name(helper, path)
        store = document.get("credsStore")
        return cls(
            path=path,
            auths=MappingProxyType(auths),
            unsupported=MappingProxyType(unsupported),
            default_helper=_helper_name(store, path) if isinstance(store, str) and store else None,
            helpers=MappingProxyType(helpers),
        )

    def helper_for(self, host: str) -> str | None:
        """The credential helper docker would ask for ``host``, if any."""
        return self.helpers.get(normalize_registry_host(host)) or self.default_helper

    def lookup(self, host: str, *, timeout: float | None = None) -> Credentials | None:
        """Credentials for ``host`` (a reference's registry or API host): its credential
        helper's answer, else an inline ``auths`` entry. ``timeout`` bounds the helper (at most
        :data:`HELPER_TIMEOUT`). A helper that is not installed counts as having nothing (it
        is named when the registry asks for credentials); one that fails is a ConfigError."""
        normalized = normalize_registry_host(host)
        helper = self.helper_for(normalized)
        if helper is not None:
            with self._lock:
                known = normalized in self._answers
                answer = self._answers.get(normalized)
            if not known:
                server = _DOCKER_HUB_SERVER if normalized == "docker.io" else normalized
                limit = HELPER_TIMEOUT if timeout is None else min(HELPER_TIMEOUT, timeout)
                try:
                    answer = run_credential_helper(helper, server, timeout=limit)
                except _HelperMissingError:
                    with self._lock:
                        self._missing_helpers[normalized] = helper
                    answer = None
                with self._lock:
                    self._answers[normalized] = answer
            if answer is not None:
                return answer
        return self.auths.get(normalized)

    def unsupported_source(self, host: str) -> str | None:
        """What holds ``host``'s credentials when opkey cannot use it, else None."""
        normalized = normalize_registry_host(host)
        with self._lock:
            missing = self._missing_helpers.get(normalized)
        if missing is not None and normalized not in self.auths:
            return (
                f"the credential helper docker-credential-{missing}, which is not installed "
                "(not found on PATH)"
            )
        if normalized in self.auths:
            return None
        return self.unsupported.get(normalized)


def _helper_name(name: str, path: Path) -> str:
    if _HELPER_NAME.fullmatch(name) is None:
        raise ConfigError(
            f"docker config {path}: credential helper name {printable(name)!r} is not a plain "
            "name (docker runs docker-credential-<name> from PATH)",
            found=name,
        )
    return name


class _HelperMissingError(Exception):
    """The helper program is not on PATH."""


def _read_bounded(stream: IO[bytes], limit: int, sink: list[bytes], over: threading.Event) -> None:
    """Read ``stream`` to its end, keeping at most ``limit + 1`` bytes in ``sink``."""
    kept = 0
    with contextlib.suppress(OSError, ValueError):
        while True:
            chunk = stream.read(8192)
            if not chunk:
                return
            if kept <= limit:
                sink.append(chunk[: limit + 1 - kept])
                kept += len(chunk)
                if kept > limit:
                    over.set()


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            process.kill()


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", "replace")


def run_credential_helper(
    name: str, server: str, *, timeout: float = HELPER_TIMEOUT, max_output: int = HELPER_MAX_OUTPUT
) -> Credentials | None:
    """Ask ``docker-credential-<name>`` for ``server``'s credentials, as docker does.

    The helper is run from ``PATH`` with the argument ``get`` and ``server`` on standard input;
    it answers ``{"ServerURL":…,"Username":…,"Secret":…}`` on standard output, or says
    ``credentials not found``. It must answer within ``timeout`` seconds and ``max_output``
    bytes (it is killed otherwise, with its process group). ``None`` when it has nothing;
    :class:`ConfigError` when it fails, hangs, or answers something else.
    """
    what = f"credential helper docker-credential-{name}"
    if _HELPER_NAME.fullmatch(name) is None:
        raise ConfigError(f"{what}: not a plain helper name", found=name)
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise _HelperMissingError(name)
    if timeout <= 0:
        raise ConfigError(f"{what}: no time left to run it")
    try:
        process = subprocess.Popen(
            [program, "get"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigError(f"{what}: cannot run {program}: {exc.strerror or exc}") from None
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []
    too_much, ignored = threading.Event(), threading.Event()
    readers = [
        threading.Thread(
            target=_read_bounded, args=(process.stdout, max_output, out, too_much), daemon=True
        ),
        threading.Thread(
            target=_read_bounded,
            args=(process.stderr, _HELPER_MAX_STDERR, err, ignored),
            daemon=True,
        ),
    ]
    for reader in readers:
        reader.start()
    with contextlib.suppress(OSError):
        process.stdin.write(server.encode("utf-8"))
    with contextlib.suppress(OSError):
        process.stdin.close()
    deadline = time.monotonic() + timeout
    status: int | None = None
    while status is None and not too_much.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            status = process.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
    if status is None:
        _kill(process)
        process.wait()
    for reader in readers:
        reader.join(timeout=1.0)
    for stream in (process.stdout, process.stderr):
        with contextlib.suppress(OSError):
            stream.close()
    if too_much.is_set():
        raise ConfigError(f"{what}: answered more than {max_output} bytes", expected=max_output)
    if status is None:
        raise ConfigError(f"{what}: no answer within {timeout:g}s", expected=timeout)
    stdout = _text(out)
    if status != 0:
        if _NOT_FOUND in stdout.lower() or _NOT_FOUND in _text(err).lower():
            return None
        detail = printable((stdout.strip() or _text(err)).strip())
        raise ConfigError(f"{what} failed (exit status {status}): {detail}", found=status)
    try:
        document = json.loads(stdout)
    except ValueError:
        raise ConfigError(f"{what}: the answer is not JSON: {printable(stdout)!r}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{what}: the answer is not a JSON object")
    username, secret = document.get("Username"), document.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise ConfigError(f"{what}: the answer lacks string 'Username' and 'Secret' members")
    if not secret:
        return None
    if username == "<token>":
        raise ConfigError(
            f"{what}: holds an OAuth identity token for {server}, which opkey does not "
            "support; log in with a user name and password or token instead"
        )
    return Credentials(username, secret)


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    """``OPKEY_REGISTRY_USERNAME`` and ``OPKEY_REGISTRY_PASSWORD``, when set (both or none)."""
    environ = os.environ if env is None else env
    username = environ.get("OPKEY_REGISTRY_USERNAME") or ""
    password = environ.get("OPKEY_REGISTRY_PASSWORD") or ""
    if not username and not password:
        return None
    if not username or not password:
        missing = "OPKEY_REGISTRY_PASSWORD" if username else "OPKEY_REGISTRY_USERNAME"
        raise ConfigError(
            f"OPKEY_REGISTRY_USERNAME and OPKEY_REGISTRY_PASSWORD go together: set {missing} too"
        )
    return Credentials(username, password)


def ambient_credentials(env: Mapping[str, str] | None = None) -> Mapping[str, Credentials]:
    """Credentials a CI environment provides without a login: inside GitHub Actions
    (``GITHUB_ACTIONS=true``), ``GITHUB_TOKEN`` as the password of ``GITHUB_ACTOR`` for
    ``ghcr.io`` (the workflow must pass the token in its environment, with ``packages``
    permission)."""
    environ = os.environ if env is None else env
    token, actor = environ.get("GITHUB_TOKEN"), environ.get("GITHUB_ACTOR")
    if environ.get("GITHUB_ACTIONS") == "true" and token and actor:
        return MappingProxyType({"ghcr.io": Credentials(actor, token)})
    return MappingProxyType({})


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
