"""A client for the OCI distribution API: manifests, blobs, tags, with auth and retries.

Every request goes through the :class:`~opkey.http.Transport` seam (default:
:class:`~opkey.http.RequestsTransport`: TLS verified, no automatic redirects, timeouts, size
limits), so tests can replace the network and the security defaults are the project's.

What the client guarantees:

* **Content is checked, headers are not trusted.** A manifest fetched by digest must hash to
  that digest; a tag resolves to the sha256 of the exact bytes received, and a
  ``Docker-Content-Digest`` header that disagrees is an error, never an answer. Blobs are hashed
  and length-checked against the digest and size asked for.
* **Bounded reads.** Manifests up to 4 MiB (what registries accept), blobs up to the caller's
  limit, token and tag-list answers up to fixed limits.
* **Plain http only where the user allows it**: loopback hosts (local development registries)
  and hosts named in ``insecure_registries``. Token realms and blob redirects named by the
  registry are checked the same way, and credentials are never sent to a redirect target.
* **Retries** (:mod:`opkey.registry.retry`) for 429, 5xx and transport failures, bounded in
  attempts and time. Every registry request is safe to repeat: GET/HEAD/PUT/DELETE are
  idempotent, content is addressed by digest, and a repeated upload start (POST) only leaves an
  abandoned upload session that the registry expires.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TypeVar
from urllib.parse import quote, urlencode, urljoin, urlsplit

from opkey.digest import Digest
from opkey.errors import (
    DeadlineError,
    FormatError,
    NetworkError,
    OpkeyError,
    RegistryError,
    ResponseTooLargeError,
)
from opkey.http import (
    Deadline,
    HttpResponse,
    RequestsTransport,
    Transport,
    check_url,
    is_loopback_host,
)
from opkey.registry.auth import (
    AuthState,
    Challenge,
    Credentials,
    DockerCredentialStore,
    ambient_credentials,
    normalize_registry_host,
    parse_challenges,
)
from opkey.registry.manifest import MAX_MANIFEST_BYTES, Manifest
from opkey.registry.mediatypes import MANIFEST_ACCEPT, OCI_INDEX
from opkey.registry.reference import ImageReference, check_digest_value
from opkey.registry.responses import (
    MAX_ERROR_BODY,
    error_entries,
    next_page,
    parse_tag_page,
    parse_token_response,
)
from opkey.registry.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from opkey.remote_text import printable

__all__ = [
    "DEFAULT_MAX_BLOB_BYTES",
    "KNOWN_TOKEN_HOSTS",
    "MAX_TAGS",
    "MAX_TAG_BYTES",
    "MAX_TAG_PAGES",
    "RegistryClient",
]

T = TypeVar("T")

#: Default ceiling for one blob download. Signature payloads and configs are tiny.
DEFAULT_MAX_BLOB_BYTES = 16 * 1024 * 1024
_MAX_TOKEN_RESPONSE = 1024 * 1024
_MAX_TAG_PAGE = 4 * 1024 * 1024
_MAX_ERROR_BODY = MAX_ERROR_BODY
_HEAD_LIMIT = 1 << 62  # HEAD answers declare the size of a body they do not send
_TAG_PAGE_SIZE = 1000
_MAX_BLOB_REDIRECTS = 3
#: Tags of one repository read at most (journal tags included: one per signature).
MAX_TAGS = 100_000
#: Pages of a tag list followed at most: 100,000 tags in pages of 100, the smallest page size
#: a registry commonly imposes (whatever ``n`` asks for).
MAX_TAG_PAGES = 1_000
#: Bytes of tag-list pages read in total: 100,000 of the longest journal tags (116 characters)
#: with their JSON quoting fit in 12 MiB.
MAX_TAG_BYTES = 16 * 1024 * 1024

#: Token services known to belong to the registry that names them, beyond its own origin: the
#: registry's credentials are sent there too (see ``spec/registry.md`` §2, "Credentials").
KNOWN_TOKEN_HOSTS: Mapping[str, frozenset[str]] = {
    "registry-1.docker.io": frozenset({"auth.docker.io"}),
    "docker.io": frozenset({"auth.docker.io"}),
    "registry.gitlab.com": frozenset({"gitlab.com"}),
}


class _TransientError(Exception):
    """A failure worth retrying; ``error`` is what to raise when retries run out."""

    def __init__(self, error: OpkeyError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    url: str
    host: str
    scope: str | None
    headers: Mapping[str, str]
    body: bytes | None = None
    max_bytes: int = MAX_MANIFEST_BYTES


def _origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, the port defaulted; never raises."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ("", url, None)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port or default)


def _join(base: str, location: str, what: str) -> str:
    """``location`` (a header the registry sent) resolved against ``base``; an unreadable one
    is a :class:`RegistryError`, never a ``ValueError`` from the URL parser."""
    try:
        url = urljoin(base, location)
        urlsplit(url).port  # noqa: B018 - validates the host and port
    except ValueError:
        raise RegistryError(f"{what}: unreadable Location {printable(location)!r}") from None
    return url


def _normalize_scope(scope: str | None) -> str:
    """A cache key for a token scope: actions sorted (registries write ``push,pull``)."""
    items = []
    for item in (scope or "").split():
        head, sep, actions = item.rpartition(":")
        items.append(f"{head}:{','.join(sorted(actions.split(',')))}" if sep else item)
    return " ".join(sorted(items))


def _errors(response: HttpResponse) -> list[tuple[str, str]]:
    """``(code, message)`` pairs from a distribution error body, printable (see
    :func:`~opkey.registry.responses.error_entries`)."""
    return error_entries(response.body)


def _error_summary(response: HttpResponse) -> str:
    """``CODE: message`` pairs from a distribution error body, or the status alone."""
    parts = [f"{code}: {message}" if message else code for code, message in _errors(response)]
    return f"HTTP {response.status}" + (f" ({'; '.join(parts)})" if parts else "")


def _check_stored_digest(response: HttpResponse, digest: Digest, what: str, *, named: bool) -> None:
    """Refuse an upload answer whose ``Docker-Content-Digest`` is not the digest of the bytes
    sent: the registry stored something else (or is lying), and a signature bound to either
    digest would be wrong. ``named``: ``what`` already names ``digest``, so it is not
    repeated."""
    echoed = response.header("Docker-Content-Digest")
    if echoed is not None and echoed.strip() != str(digest):
        expected = "" if named else f", not {digest}"
        raise RegistryError(
            f"{what}: the registry stored digest {echoed.strip()}{expected}",
            expected=str(digest),
            found=echoed.strip(),
        )


#: Error codes a registry may answer, for blobs that exist, while another client is uploading
#: the same blob (the filesystem driver rewrites a blob's link file in place).
_BLOB_RACE_CODES = frozenset({"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "DIGEST_INVALID"})


class RegistryClient:
    """Talks to OCI registries on behalf of one signer or verifier.

    Thread-safe: concurrent signers may share a client (tokens are cached per host and scope).
    ``credentials`` maps registry hosts to :class:`Credentials`; hosts not in it are looked up
    in docker's ``config.json`` (``docker_config``, default location when ``None``: inline
    ``auths`` and credential helpers), then in the environment (``GITHUB_TOKEN`` for ghcr.io
    inside GitHub Actions, see :func:`~opkey.registry.auth.ambient_credentials`).

    ``token_hosts`` maps a registry host to the hosts of token services that may receive its
    credentials besides its own origin (and :data:`KNOWN_TOKEN_HOSTS`). ``deadline`` bounds
    everything the client does; :meth:`within` gives a view of the client with a deadline of
    one operation.
    """

    def __init__(
        self,
        *,
        transport: Transport | None = None,
        credentials: Mapping[str, Credentials] | None = None,
        docker_config: DockerCredentialStore | None = None,
        insecure_registries: Collection[str] = (),
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        allow_private_addresses: bool = False,
        token_hosts: Mapping[str, Collection[str]] | None = None,
        deadline: Deadline | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.transport: Transport = transport or RequestsTransport(user_agent="opkey-registry")
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.insecure_registries = frozenset(h.lower() for h in insecure_registries)
        # check_url compares host names without ports: accept "host:port" entries there too.
        self._insecure_hostnames = self.insecure_registries | {
            urlsplit(f"//{h}").hostname or h for h in self.insecure_registries
        }
        self.allow_private_addresses = allow_private_addresses
        self._explicit_credentials = {
            normalize_registry_host(host): value for host, value in (credentials or {}).items()
        }
        self._docker_config = docker_config
        self._config_lock = threading.Lock()
        self._auth = AuthState()
        self._sleep = sleep
        self._clock = clock
        self._token_hosts = {
            normalize_registry_host(host): frozenset(h.lower() for h in hosts)
            for host, hosts in (token_hosts or {}).items()
        }
        self._ambient = ambient_credentials(os.environ if env is None else env)
        self.deadline = deadline
        #: registry host -> token service that was not sent its credentials (for the message)
        self._withheld: dict[str, str] = {}

    def within(self, deadline: Deadline | None) -> RegistryClient:
        """This client (same transport, credentials and token cache) bounded by ``deadline``
        too: the earlier of it and the client's own applies."""
        if deadline is None:
            return self
        bounded = copy.copy(self)
        bounded.deadline = deadline.earlier(self.deadline)
        return bounded

    # ----------------------------------------------------------------------------- plumbing

    def _base_url(self, ref: ImageReference) -> str:
        return self._base_url_for(ref.api_host)

    def _base_url_for(self, host: str) -> str:
        hostname = urlsplit(f"//{host}").hostname or host
        insecure = host.lower() in self.insecure_registries or hostname in self.insecure_registries
        scheme = "http" if is_loopback_host(hostname) or insecure else "https"
        return f"{scheme}://{host}"

    def _repo_url(self, ref: ImageReference, suffix: str) -> str:
        return f"{self._base_url(ref)}/v2/{ref.repository}/{suffix}"

    def _credentials(self, host: str) -> Credentials | None:
        normalized = normalize_registry_host(host)
        explicit = self._explicit_credentials.get(normalized)
        if explicit is not None:
            return explicit
        remaining = None
        if self.deadline is not None:
            remaining = self.deadline.timeout(float("inf"), f"credentials for {host}")
        found = self._store().lookup(host, timeout=remaining)
        return found if found is not None else self._ambient.get(normalized)

    def _store(self) -> DockerCredentialStore:
        with self._config_lock:
            if self._docker_config is None:
                self._docker_config = DockerCredentialStore.load()
            return self._docker_config

    def _same_origin(self, url: str, host: str) -> bool:
        """Whether ``url`` is on the registry's own origin (scheme, host and port)."""
        return _origin(url) == _origin(f"{self._base_url_for(host)}/")

    def _trusted_token_host(self, url: str, host: str) -> bool:
        """Whether the token service at ``url`` may receive ``host``'s credentials: the
        registry's own origin, a host the user configured for it, a known pair, or both on
        loopback (local development). ``url`` has passed :meth:`_check_server_url`."""
        if self._same_origin(url, host):
            return True
        target = (urlsplit(url).hostname or "").lower()
        hostname = urlsplit(f"//{host}").hostname or host
        if is_loopback_host(hostname) and is_loopback_host(target):
            return True
        normalized = normalize_registry_host(host)
        configured = self._token_hosts.get(normalized, frozenset())
        known = KNOWN_TOKEN_HOSTS.get(host.lower(), KNOWN_TOKEN_HOSTS.get(normalized, frozenset()))
        return target in configured or (urlsplit(url).scheme == "https" and target in known)

    def _check_server_url(self, url: str, host: str, what: str) -> None:
        """Allow a URL the registry named (token realm, redirect) under the client's rules.

        A registry may never steer opkey to loopback or to other non-public addresses unless
        it is there itself: loopback only for a registry on loopback (local development),
        private addresses only on the registry's own origin, for token hosts the user
        configured, or when the client allows private addresses.
        """
        try:
            target = (urlsplit(url).hostname or "").lower()
        except ValueError:  # e.g. "https://[]x/": not a URL, and check_url would say why
            check_url(url, what=what, resolve=False)
            raise NetworkError(f"{what}: invalid URL {printable(url)!r}") from None
        same_origin = self._same_origin(url, host)
        hostname = urlsplit(f"//{host}").hostname or host
        configured = target in self._token_hosts.get(normalize_registry_host(host), frozenset())
        check_url(
            url,
            what=what,
            insecure_hosts=self._insecure_hostnames,
            allow_private=self.allow_private_addresses or same_origin or configured,
            resolve=not same_origin,
            allow_loopback=is_loopback_host(hostname) or same_origin,
        )

    def _retrying(self, what: str, operation: Callable[[], T]) -> T:
        """Run ``operation``, repeating it on transient failures within the retry policy."""
        policy = self.retry
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return operation()
            except _TransientError as failure:
                last = failure
            if attempt >= policy.max_attempts:
                raise type(last.error)(
                    f"{last.error.message} (gave up after {attempt} attempts)"
                ) from None
            if last.retry_after is not None and last.retry_after > policy.max_retry_after:
                raise RegistryError(
                    f"{last.error.message}; the registry asks to retry after "
                    f"{last.retry_after:g}s, longer than the {policy.max_retry_after:g}s allowed",
                    found=last.retry_after,
                ) from None
            delay = last.retry_after if last.retry_after is not None else policy.backoff(attempt)
            if self.deadline is not None and delay >= self.deadline.remaining():
                left = max(0.0, self.deadline.remaining())
                asked = "asks to retry after" if last.retry_after is not None else "would retry in"
                raise DeadlineError(
                    f"{last.error.message}; the registry {asked} {delay:g}s, but only "
                    f"{left:.1f}s are left of the operation's {self.deadline.budget:g}s deadline",
                    expected=self.deadline.budget,
                    found=delay,
                ) from None
            if self._clock() - started + delay > policy.deadline:
                named = "" if what in last.error.message else f" for {what}"
                raise type(last.error)(
                    f"{last.error.message} (gave up after {attempt} attempts: the "
                    f"{policy.deadline:g}s deadline{named} would pass)"
                ) from None
            self._sleep(delay)

    def _transport_call(self, request: _Request, authorization: str | None) -> HttpResponse:
        headers = dict(request.headers)
        if authorization:
            headers["Authorization"] = authorization
        max_bytes = _HEAD_LIMIT if request.method == "HEAD" else request.max_bytes
        what = f"{request.method} {request.url}"
        timeout = self.timeout
        if self.deadline is not None:
            timeout = self.deadline.timeout(timeout, what)
        try:
            return self.transport.request(
                request.method,
                request.url,
                headers=headers,
                data=request.body,
                timeout=timeout,
                max_bytes=max_bytes,
            )
        except (ResponseTooLargeError, DeadlineError):
            raise
        except NetworkError as exc:
            if self.deadline is not None and self.deadline.expired():
                raise self.deadline.error(what) from None
            # The transport's own message already names the request ("GET URL: reason"); say
            # it once.
            message = str(exc) if str(exc).startswith(what) else f"{what}: {exc}"
            raise _TransientError(NetworkError(message)) from None

    def _once(self, request: _Request) -> HttpResponse:
        """One request with authentication; transient failures raise :class:`_TransientError`."""
        authorization = self._authorization(request.host, request.scope)
        response = self._transport_call(request, authorization)
        if response.status == 401:
            authorization = self._answer_challenge(request, response, authorization)
            response = self._transport_call(request, authorization)
            if response.status == 401:
                if request.scope is not None:
                    self._auth.forget_token(request.host, _normalize_scope(request.scope))
                if self._credentials(request.host) is None:
                    raise self._missing_credentials(request.host)
                withheld = self._withheld.get(request.host)
                if withheld is not None:
                    raise self._withheld_error(request.host, withheld, _error_summary(response))
                raise RegistryError(
                    f"{request.method} {request.url}: the registry refused the credentials "
                    f"for {request.host} ({_error_summary(response)})",
                    found=401,
                )
        if response.status in RETRYABLE_STATUSES:
            raise _TransientError(
                RegistryError(
                    f"{request.method} {request.url}: {_error_summary(response)}",
                    found=response.status,
                ),
                retry_after=parse_retry_after(response.header("Retry-After")),
            )
        return response

    def _request(self, request: _Request) -> HttpResponse:
        return self._retrying(f"{request.method} {request.url}", lambda: self._once(request))

    # --------------------------------------------------------------------------------- auth

    def _authorization(self, host: str, scope: str | None) -> str | None:
        known = self._auth.host_scheme(host)
        if known is None:
            return None
        scheme, realm, service = known
        if scheme == "basic":
            credentials = self._credentials(host)
            return credentials.basic_header() if credentials else None
        token = self._auth.cached_token(host, _normalize_scope(scope))
        if token is None:
            token = self._fetch_token(host, realm, service, scope)
        return f"Bearer {token}"

    def _answer_challenge(self, request: _Request, response: HttpResponse, sent: str | None) -> str:
        """The ``Authorization`` to retry with, after a 401 and its challenge."""
        header = response.header("WWW-Authenticate")
        challenges = parse_challenges(header) if header else []
        by_scheme: dict[str, Challenge] = {c.scheme: c for c in challenges}
        bearer, basic = by_scheme.get("bearer"), by_scheme.get("basic")
        if bearer is not None:
            realm = bearer.params.get("realm")
            if not realm:
                raise RegistryError(f"{request.host}: bearer challenge without a realm")
            self._auth.remember_bearer(request.host, realm, bearer.params.get("service"))
            scope = bearer.params.get("scope") or request.scope
            token = self._fetch_token(request.host, realm, bearer.params.get("service"), scope)
            return f"Bearer {token}"
        if basic is not None:
            self._auth.remember_basic(request.host)
            credentials = self._credentials(request.host)
            if credentials is None:
                raise self._missing_credentials(request.host)
            if sent and sent.startswith("Basic "):
                raise RegistryError(
                    f"{request.host}: the registry refused the credentials "
                    f"({_error_summary(response)})"
                )
            return credentials.basic_header()
        raise RegistryError(
            f"{request.method} {request.url}: authentication required, but the registry's "
            f"challenge {printable(header)!r} names no supported scheme (Basic or Bearer)",
            found=header,
        )

    def _missing_credentials(self, host: str) -> RegistryError:
        source = self._store().unsupported_source(host)
        if source is not None:
            return RegistryError(
                f"{host} requires credentials, which are kept in {source}, which opkey cannot "
                f"use. Add an 'auths' entry or a credential helper for {host} to "
                f"{self._store().path} or pass credentials explicitly"
            )
        return RegistryError(
            f"{host} requires credentials and none were found (looked in "
            f"{self._store().path}); run 'docker login {host}' or pass credentials explicitly "
            "(--registry-username with --registry-password-stdin, or OPKEY_REGISTRY_USERNAME "
            "and OPKEY_REGISTRY_PASSWORD)"
        )

    @staticmethod
    def _withheld_error(host: str, realm: str, summary: str) -> RegistryError:
        realm_host = printable(urlsplit(realm).hostname or realm)
        return RegistryError(
            f"{host} sends clients to the token service {printable(realm)}, on another origin; "
            f"opkey does not send the credentials for {host} there, and the service gave no "
            f"usable token without them ({summary}). If {realm_host} belongs to the operator "
            f"of {host}, allow it with --registry-token-host {realm_host} "
            f"(RegistryClient(token_hosts=...))",
            found=realm,
        )

    def _fetch_token(self, host: str, realm: str, service: str | None, scope: str | None) -> str:
        """Get a bearer token from ``realm`` for ``scope`` and cache it.

        The registry's credentials go along only to a token service trusted with them
        (:meth:`_trusted_token_host`); any other is asked for an anonymous token.
        """
        self._check_server_url(realm, host, "token realm")
        shown = printable(realm)
        params: list[tuple[str, str]] = []
        if service:
            params.append(("service", service))
        for item in (scope or "").split():
            params.append(("scope", item))
        separator = "&" if urlsplit(realm).query else "?"
        url = realm + (separator + urlencode(params) if params else "")
        credentials = self._credentials(host)
        if credentials is not None and not self._trusted_token_host(realm, host):
            self._withheld[host] = realm
            credentials = None
        headers = {"Accept": "application/json"}
        if credentials is not None:
            headers["Authorization"] = credentials.basic_header()
        token_request = _Request("GET", url, host, None, headers, None, _MAX_TOKEN_RESPONSE)
        once = partial(self._unauthenticated, token_request, f"token request to {shown}")
        response = self._retrying(f"token from {shown}", once)
        if response.status in (401, 403):
            if host in self._withheld and self._credentials(host) is not None:
                raise self._withheld_error(host, realm, _error_summary(response))
            if credentials is None:
                raise self._missing_credentials(host)
            raise RegistryError(
                f"the token service {shown} refused the credentials for {host} "
                f"({_error_summary(response)})",
                found=response.status,
            )
        if response.status != 200:
            raise RegistryError(
                f"the token service {shown} answered {_error_summary(response)}",
                found=response.status,
            )
        answer = parse_token_response(response.body, what=f"the token service {shown}")
        self._auth.store_token(host, _normalize_scope(scope), answer.token, float(answer.lifetime))
        return answer.token

    # ------------------------------------------------------------------------ status checks

    @staticmethod
    def _fail(response: HttpResponse, what: str) -> RegistryError:
        summary = _error_summary(response)
        if response.status == 403:
            return RegistryError(f"{what}: access denied ({summary})", found=403)
        if response.status == 404:
            return RegistryError(f"{what}: not found ({summary})", found=404)
        if 300 <= response.status < 400:
            return RegistryError(
                f"{what}: unexpected redirect to {printable(response.header('Location'))!r}",
                found=response.status,
            )
        return RegistryError(f"{what}: {summary}", found=response.status)

    # ---------------------------------------------------------------------------- manifests

    def ping(self, ref: ImageReference) -> None:
        """Check that ``ref``'s registry speaks the v2 API (authenticating if it asks)."""
        url = f"{self._base_url(ref)}/v2/"
        response = self._request(_Request("GET", url, ref.api_host, None, {}))
        if response.status != 200:
            raise self._fail(response, f"{ref.api_host} /v2/")

    def find_manifest_bytes(self, ref: ImageReference) -> tuple[bytes, str | None] | None:
        """The exact bytes and ``Content-Type`` of the manifest ``ref`` names, ``None`` if the
        registry has no such tag or digest.

        The bytes are checked against ``ref.digest`` when given, and against any
        ``Docker-Content-Digest`` the registry sends, but not parsed: callers that must tell
        "not a manifest" apart from transport problems parse them themselves.
        """
        what = f"manifest {ref}"
        response = self._find_document(ref, f"manifests/{ref.reference}", MANIFEST_ACCEPT, what)
        if response is None:
            return None
        computed = Digest.of_bytes(response.body)
        if ref.digest is not None and computed != ref.digest:
            raise RegistryError(
                f"{what}: the registry returned content whose digest is {computed}, "
                f"not the {ref.digest} requested",
                expected=str(ref.digest),
                found=str(computed),
            )
        header = response.header("Docker-Content-Digest")
        if header is not None and header.strip() != str(computed):
            raise RegistryError(
                f"{what}: Docker-Content-Digest says {header.strip()} but the manifest bytes "
                f"hash to {computed}",
                expected=str(computed),
                found=header.strip(),
            )
        return response.body, response.header("Content-Type")

    def find_manifest(self, ref: ImageReference) -> Manifest | None:
        """The parsed manifest ``ref`` names (see :meth:`find_manifest_bytes`), or ``None``.

        Content that is not a manifest of a supported media type is a :class:`RegistryError`.
        """
        found = self.find_manifest_bytes(ref)
        if found is None:
            return None
        raw, content_type = found
        try:
            return Manifest.from_bytes(raw, content_type=content_type, what=f"manifest {ref}")
        except FormatError as exc:
            raise RegistryError(f"unusable manifest: {exc}", found=exc.found) from None

    def get_manifest(self, ref: ImageReference) -> Manifest:
        """Like :meth:`find_manifest`, but a missing manifest is a :class:`RegistryError`."""
        manifest = self.find_manifest(ref)
        if manifest is None:
            raise RegistryError(f"manifest {ref} not found", found=404)
        return manifest

    def find_referrers(self, ref: ImageReference) -> bytes | None:
        """The OCI 1.1 referrers index of ``ref.digest`` from the referrers API
        (``GET /v2/<name>/referrers/<digest>``), or ``None`` when the registry does not serve
        that API (it answers 404: the caller then reads the referrers tag instead).

        The answer must be an OCI image index (checked by the caller's parser) of at most
        :data:`MAX_MANIFEST_BYTES`.
        """
        digest = ref.require_digest()
        what = f"referrers of {ref}"
        response = self._find_document(ref, f"referrers/{digest}", OCI_INDEX, what)
        return None if response is None else response.body

    def _find_document(
        self, ref: ImageReference, suffix: str, accept: str, what: str
    ) -> HttpResponse | None:
        """``GET`` a manifest-sized JSON document of ``ref``'s repository (a manifest, a
        referrers index): the 200 answer, ``None`` on 404, a :class:`RegistryError` otherwise
        or beyond :data:`MAX_MANIFEST_BYTES`. Both endpoints share these rules, so that a
        referrers index is bounded exactly like the manifests it lists."""
        request = _Request(
            "GET",
            self._repo_url(ref, suffix),
            ref.api_host,
            f"repository:{ref.repository}:pull",
            {"Accept": accept},
        )
        try:
            response = self._request(request)
        except ResponseTooLargeError:
            raise RegistryError(
                f"{what}: larger than the {MAX_MANIFEST_BYTES}-byte manifest limit",
                expected=MAX_MANIFEST_BYTES,
            ) from None
        if response.status == 404:
            return None
        if response.status != 200:
            raise self._fail(response, what)
        return response

    def resolve(self, ref: ImageReference) -> ImageReference:
        """``ref`` pinned to the digest of the manifest it names (computed from the bytes)."""
        manifest = self.get_manifest(ref)
        return ref.with_digest(manifest.digest)

    def put_manifest(
        self,
        ref: ImageReference,
        raw: bytes,
        media_type: str,
        *,
        blobs_pushed: bool = False,
    ) -> Digest:
        """Store ``raw`` under ``ref``'s tag (or digest); return the manifest digest.

        ``blobs_pushed``: the caller has just uploaded every blob the manifest references, so
        a "blob unknown" answer can only be a registry still settling a concurrent upload of
        the same blob, and is retried like a 5xx.
        """
        digest = Digest.of_bytes(raw)
        what = f"storing manifest {ref}"
        if len(raw) > MAX_MANIFEST_BYTES:
            raise RegistryError(
                f"{what}: {len(raw)} bytes exceeds the {MAX_MANIFEST_BYTES}-byte manifest limit",
                expected=MAX_MANIFEST_BYTES,
                found=len(raw),
            )
        if ref.digest is not None and ref.digest != digest:
            raise RegistryError(f"{what}: the content's digest is {digest}, not {ref.digest}")
        url = self._repo_url(ref, f"manifests/{ref.reference}")
        request = _Request(
            "PUT",
            url,
            ref.api_host,
            f"repository:{ref.repository}:pull,push",
            {"Content-Type": media_type},
            raw,
            _MAX_ERROR_BODY,
        )

        def attempt() -> HttpResponse:
            response = self._once(request)
            codes = {code for code, _ in _errors(response)}
            if blobs_pushed and response.status == 400 and codes & _BLOB_RACE_CODES:
                raise _TransientError(self._fail(response, what))
            return response

        response = self._retrying(what, attempt)
        if response.status not in (200, 201, 202):
            raise self._fail(response, what)
        _check_stored_digest(response, digest, what, named=False)
        return digest

    def delete_manifest(self, ref: ImageReference) -> None:
        """Delete the manifest ``ref.digest`` (and with it every tag pointing at it)."""
        digest = ref.require_digest()
        url = self._repo_url(ref, f"manifests/{digest}")
        response = self._request(
            _Request("DELETE", url, ref.api_host, f"repository:{ref.repository}:delete", {})
        )
        if response.status not in (200, 202, 404):
            raise self._fail(response, f"deleting manifest {ref}")

    # -------------------------------------------------------------------------------- blobs

    def blob_exists(self, ref: ImageReference, digest: Digest) -> bool:
        """Whether ``ref``'s repository holds the blob ``digest``."""
        check_digest_value(digest, what="blob digest")
        url = self._repo_url(ref, f"blobs/{digest}")
        response = self._request(
            _Request("HEAD", url, ref.api_host, f"repository:{ref.repository}:pull", {})
        )
        if response.status == 200:
            return True
        if response.status == 404:
            return False
        raise self._fail(response, f"checking blob {digest} in {ref.name}")

    def push_blob(self, ref: ImageReference, data: bytes) -> Digest:
        """Upload ``data`` to ``ref``'s repository (skipped when present); return its digest.

        Monolithic upload: ``POST`` to open an upload session, ``PUT`` the bytes with
        ``?digest=``. The registry verifies the digest; so do we, on its answer. Each step is
        retried on its own; a failed ``PUT`` restarts from a new session, which is safe because
        blobs are addressed by content.
        """
        digest = Digest.of_bytes(data)
        scope = f"repository:{ref.repository}:pull,push"
        what = f"uploading blob {digest} to {ref.name}"
        head = _Request("HEAD", self._repo_url(ref, f"blobs/{digest}"), ref.api_host, scope, {})

        def upload() -> Digest:
            if self._request(head).status == 200:
                # Present already (or our previous PUT succeeded and only its answer was lost).
                return digest
            start = self._request(
                _Request(
                    "POST",
                    self._repo_url(ref, "blobs/uploads/"),
                    ref.api_host,
                    scope,
                    {"Content-Length": "0"},
                    b"",
                    _MAX_ERROR_BODY,
                )
            )
            if start.status == 201:
                return digest  # the registry mounted or already had it
            if start.status != 202:
                raise self._fail(start, what)
            location = start.header("Location")
            if not location:
                raise RegistryError(f"{what}: the registry gave no upload Location")
            upload_url = self._upload_url(ref, location, what)
            separator = "&" if urlsplit(upload_url).query else "?"
            finish = self._once(
                _Request(
                    "PUT",
                    f"{upload_url}{separator}digest={quote(str(digest), safe='')}",
                    ref.api_host,
                    scope,
                    {"Content-Type": "application/octet-stream"},
                    data,
                    _MAX_ERROR_BODY,
                )
            )
            if finish.status == 404:
                # The upload session vanished (registry restarted): start again.
                raise _TransientError(RegistryError(f"{what}: upload session lost (HTTP 404)"))
            if finish.status == 400 and {c for c, _ in _errors(finish)} & _BLOB_RACE_CODES:
                # Our bytes hash to the digest we sent, so this is a concurrent upload of the
                # same blob being committed: start again (the HEAD will then find it).
                raise _TransientError(self._fail(finish, what))
            if finish.status not in (201, 204):
                raise self._fail(finish, what)
            _check_stored_digest(finish, digest, what, named=True)
            return digest

        return self._retrying(what, upload)

    def _upload_url(self, ref: ImageReference, location: str, what: str) -> str:
        base = self._base_url(ref)
        url = _join(base + "/", location, what)
        target, origin = urlsplit(url), urlsplit(base)
        if (target.scheme, target.netloc.lower()) != (origin.scheme, origin.netloc.lower()):
            # Uploads elsewhere would carry our credentials to a host the user did not name.
            raise RegistryError(
                f"{what}: the registry sent the upload to another origin ({printable(location)!r})",
                found=location,
            )
        return url

    def get_blob(
        self, ref: ImageReference, digest: Digest, *, max_bytes: int = DEFAULT_MAX_BLOB_BYTES
    ) -> bytes:
        """Download blob ``digest``, checking its hash; at most ``max_bytes``.

        A registry may redirect blob downloads to its storage (S3, a CDN): the redirect is
        followed (at most 3 hops), under the same URL rules and without our credentials.
        """
        check_digest_value(digest, what="blob digest")
        what = f"blob {digest} in {ref.name}"
        url = self._repo_url(ref, f"blobs/{digest}")
        request = _Request(
            "GET", url, ref.api_host, f"repository:{ref.repository}:pull", {}, None, max_bytes
        )
        try:
            response = self._request(request)
            hops = 0
            while response.status in (301, 302, 303, 307, 308) and hops < _MAX_BLOB_REDIRECTS:
                hops += 1
                location = response.header("Location")
                if not location:
                    raise RegistryError(f"{what}: redirect without a Location")
                target = _join(request.url, location, what)
                self._check_server_url(target, ref.api_host, f"{what} redirect")
                same_origin = self._same_origin(target, ref.api_host)
                request = _Request(
                    "GET",
                    target,
                    ref.api_host,
                    request.scope if same_origin else None,
                    {},
                    None,
                    max_bytes,
                )
                if same_origin:
                    response = self._request(request)
                else:
                    shown = f"GET {printable(request.url)}"
                    response = self._retrying(what, partial(self._unauthenticated, request, shown))
        except ResponseTooLargeError:
            raise RegistryError(
                f"{what}: larger than the {max_bytes}-byte limit", expected=max_bytes
            ) from None
        if response.status == 404:
            raise RegistryError(f"{what}: not found", found=404)
        if response.status != 200:
            raise self._fail(response, what)
        computed = Digest.of_bytes(response.body)
        if computed != digest:
            raise RegistryError(
                f"{what}: the registry returned content whose digest is {computed}",
                expected=str(digest),
                found=str(computed),
            )
        return response.body

    def _unauthenticated(self, request: _Request, shown: str) -> HttpResponse:
        """One request sent as it is, without the registry's authentication (a token service,
        a blob's storage on another origin); a 429 or 5xx is transient, named ``shown``."""
        response = self._transport_call(request, None)
        if response.status in RETRYABLE_STATUSES:
            raise _TransientError(
                RegistryError(f"{shown}: {_error_summary(response)}"),
                retry_after=parse_retry_after(response.header("Retry-After")),
            )
        return response

    # --------------------------------------------------------------------------------- tags

    def list_tags(self, ref: ImageReference) -> list[str]:
        """Every tag of ``ref``'s repository (following ``Link`` pagination); [] if unknown.

        Bounded like :meth:`iter_tags`.
        """
        return list(self.iter_tags(ref))

    def iter_tags(self, ref: ImageReference) -> Iterator[str]:
        """The tags of ``ref``'s repository, page by page (nothing if the repository is
        unknown), so that a caller looking for a few tags keeps only those.

        Bounded: at most :data:`MAX_TAG_PAGES` pages, :data:`MAX_TAG_BYTES` bytes of pages and
        :data:`MAX_TAGS` tags; every name must be a valid tag (at most 128 characters); a
        ``Link`` must stay on the registry's host and never name a page already read.
        """
        scope = f"repository:{ref.repository}:pull"
        base = self._base_url(ref)
        url: str | None = self._repo_url(ref, f"tags/list?n={_TAG_PAGE_SIZE}")
        what = f"tag list of {ref.name}"
        seen: set[str] = set()
        pages = tags = size = 0
        while url is not None:
            if pages >= MAX_TAG_PAGES:
                raise RegistryError(
                    f"{what}: more than {MAX_TAG_PAGES} pages", expected=MAX_TAG_PAGES
                )
            seen.add(url)
            pages += 1
            try:
                response = self._request(_Request("GET", url, ref.api_host, scope, {}, None))
            except ResponseTooLargeError:
                raise RegistryError(f"{what}: page too large") from None
            if response.status == 404:
                return
            if response.status != 200:
                raise self._fail(response, f"listing tags of {ref.name}")
            size += len(response.body)
            if size > MAX_TAG_BYTES:
                raise RegistryError(
                    f"{what}: more than {MAX_TAG_BYTES} bytes in all its pages",
                    expected=MAX_TAG_BYTES,
                )
            page = parse_tag_page(response.body, what=what)
            tags += len(page)
            if tags > MAX_TAGS:
                raise RegistryError(f"{ref.name} has more than {MAX_TAGS} tags", expected=MAX_TAGS)
            yield from page
            url = next_page(base, response.header("Link"), what=what)
            if url is not None and url in seen:
                raise RegistryError(f"{what}: the Link header names a page already read")
