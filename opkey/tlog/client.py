"""Talking to a transparency log: logging a signature (Rekor v1 and v2), and reading a log
for a monitor. The network edge of :mod:`opkey.tlog`; everything it receives is handed to
the pure parsers and checks of the other modules.

:class:`RekorClient` logs an :class:`~opkey.tlog.signature_entry.EntryRequest`:

* **Rekor v1**: ``POST <url>/api/v1/log/entries`` (hashedrekord or dsse v0.0.1); ``201`` with
  the entry, its inclusion proof, a checkpoint and the SET; ``409`` when the log already holds
  exactly this entry, with ``Location`` naming it: the client reads it back, so a retried
  upload returns the entry the first one made;
* **Rekor v2**: ``POST <url>/api/v2/log/entries`` (hashedrekord v0.0.2); ``201`` with a
  Sigstore ``TransparencyLogEntry`` once a checkpoint covers it; a duplicate is a ``409`` that
  names the index but returns no proof, which is an error here;
* ``api=None`` tries v1 and falls back to v2 when the log answers ``404`` (or ``405``): one
  URL is enough for either.

Every answer must be the entry that was sent (same digest, signature and certificate), its
proof must lead to the root it claims, and, with ``log`` (the pin the signer expects its
verifiers to hold), it must verify under that log exactly as a verifier will check it. So a
signer never stores an entry its verifiers would reject.

:class:`RekorV1Reader` and :class:`TileReader` read a log for ``opkey monitor``: the latest
checkpoint, consistency proofs (v1) and the entries by index (v1's
``/api/v1/log/entries/retrieve``, ten at a time; v2's C2SP tlog-tiles entry bundles).

Every request is bounded in time and size and goes through :class:`~opkey.http.Transport`
(https, or http on loopback; no redirects).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from opkey.errors import FormatError, LogServiceError, NetworkError
from opkey.jose import parse_json
from opkey.tlog.checkpoint import SignedCheckpoint
from opkey.tlog.entry import LogEntry, verify_log_entry
from opkey.tlog.log import TrustedLog
from opkey.tlog.merkle import ConsistencyProof
from opkey.tlog.rekor import entry_from_rekor_v1, entry_from_transparency_log_entry
from opkey.tlog.signature_entry import EntryRequest, read_entry_body

if TYPE_CHECKING:
    from opkey.http import HttpResponse, Transport

__all__ = [
    "DEFAULT_LOG_TIMEOUT",
    "ReadEntry",
    "RekorClient",
    "RekorV1Reader",
    "TileReader",
    "log_reader",
]

#: Seconds one log request may take: Rekor v2 answers an upload once a checkpoint covers it
#: (its client guide asks for at least 20 s).
DEFAULT_LOG_TIMEOUT = 30.0
_MAX_ANSWER = 1024 * 1024
_MAX_TILE = 32 * 1024 * 1024
_RETRIEVE_BATCH = 10  # Rekor v1's openapi.yaml: maxItems 10
_UUID_PATH = re.compile(r"/api/v1/log/entries/[0-9a-f]{64,80}")
_JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def _transport(transport: Transport | None) -> Transport:
    if transport is not None:
        return transport
    from opkey.http import RequestsTransport

    return RequestsTransport(user_agent="opkey-tlog")


def _snippet(response: HttpResponse) -> str:
    from opkey._httpjson import body_snippet

    return body_snippet(response)


def _json(response: HttpResponse, what: str) -> Any:
    try:
        return parse_json(response.body, what=f"{what} from {response.url}", max_length=_MAX_ANSWER)
    except FormatError as exc:
        raise LogServiceError(f"{exc.message}") from None


def _check(response: HttpResponse, what: str, method: str = "GET") -> None:
    from opkey._httpjson import check_status

    check_status(response, what=what, method=method, accept=(201,) if method == "POST" else (200,))


@dataclass
class RekorClient:
    """Logs signatures in one Rekor log (see the module documentation)."""

    url: str
    transport: Transport | None = field(default=None, compare=False)
    timeout: float = DEFAULT_LOG_TIMEOUT
    api: Literal["v1", "v2"] | None = None
    #: The log the signer's verifiers pin; answers that would not verify under it are refused.
    log: TrustedLog | None = None

    def __post_init__(self) -> None:
        from opkey.http import check_url

        self.url = self.url.rstrip("/")
        check_url(self.url, what="transparency log URL", resolve=False)
        if self.api not in (None, "v1", "v2"):
            raise ValueError(f"unknown Rekor API {self.api!r}")
        if self.log is not None and self.api is None:
            self.api = "v1" if self.log.signs_entry_timestamps else "v2"

    def upload(self, request: EntryRequest) -> LogEntry:
        """Log ``request`` and return its entry with proof; raises :class:`NetworkError` or
        :class:`LogServiceError` (and :class:`TransparencyLogError` under a pin that the
        answer does not verify under)."""
        from opkey.http import check_url

        # The signer names its log itself (a party's answer never does): a log of its own on
        # a private network is the private mode (spec/transparency-log.md §13), so private
        # addresses are allowed; plain http only on loopback, as everywhere.
        check_url(self.url, what="transparency log URL", allow_private=True)
        if self.api != "v2":
            entry = self._upload_v1(request)
            if entry is None:
                if self.api == "v1":
                    raise LogServiceError(
                        f"the transparency log {self.url} has no Rekor v1 API "
                        "(POST /api/v1/log/entries answered 404)"
                    )
                self.api = "v2"
            else:
                self.api = "v1"
        if self.api == "v2":
            entry = self._upload_v2(request)
        assert entry is not None
        self._check_answer(entry, request)
        return entry

    def _post(self, path: str, document: Mapping[str, Any]) -> HttpResponse:
        import json

        transport = _transport(self.transport)
        try:
            return transport.request(
                "POST",
                self.url + path,
                headers=_JSON,
                data=json.dumps(document).encode(),
                timeout=self.timeout,
                max_bytes=_MAX_ANSWER,
            )
        except NetworkError as exc:
            raise type(exc)(
                f"transparency log: {exc.message}", expected=exc.expected, found=exc.found
            ) from None

    def _refused(self, response: HttpResponse, api: str) -> LogServiceError:
        snippet = _snippet(response)
        return LogServiceError(
            f"the transparency log {self.url} ({api}) refused the entry: HTTP "
            f"{response.status}" + (f": {snippet}" if snippet else ""),
            expected=201,
            found=response.status,
        )

    def _upload_v1(self, request: EntryRequest) -> LogEntry | None:
        response = self._post("/api/v1/log/entries", request.rekor_v1())
        if response.status in (404, 405) and self.api is None:
            return None
        if response.status == 409:
            return self._existing_v1(response)
        if 400 <= response.status < 500:
            raise self._refused(response, "Rekor v1")
        _check(response, "transparency log", "POST")
        return self._entry_v1(_json(response, "transparency log entry"))

    def _existing_v1(self, response: HttpResponse) -> LogEntry:
        """A duplicate: Rekor names the entry it already holds; read it back."""
        location = response.header("Location") or ""
        path = location.removeprefix(self.url)
        if _UUID_PATH.fullmatch(path) is None:
            raise LogServiceError(
                f"the transparency log {self.url} holds this entry already but names it "
                f"{location[:120]!r}, not an entry path",
                found=location,
            )
        transport = _transport(self.transport)
        try:
            answer = transport.request(
                "GET", self.url + path, headers=_JSON, timeout=self.timeout, max_bytes=_MAX_ANSWER
            )
        except NetworkError as exc:
            raise type(exc)(f"transparency log: {exc.message}") from None
        _check(answer, "transparency log entry")
        return self._entry_v1(_json(answer, "transparency log entry"))

    def _entry_v1(self, document: Any) -> LogEntry:
        try:
            return entry_from_rekor_v1(document)
        except FormatError as exc:
            raise LogServiceError(f"the transparency log answered {exc.message}") from None

    def _upload_v2(self, request: EntryRequest) -> LogEntry:
        response = self._post("/api/v2/log/entries", request.rekor_v2())
        if response.status == 409:
            raise LogServiceError(
                f"the transparency log {self.url} (Rekor v2) already holds this entry and "
                f"returns no proof for it: {_snippet(response)}",
                found=409,
            )
        if 400 <= response.status < 500:
            raise self._refused(response, "Rekor v2")
        _check(response, "transparency log", "POST")
        try:
            return entry_from_transparency_log_entry(_json(response, "transparency log entry"))
        except FormatError as exc:
            raise LogServiceError(f"the transparency log answered {exc.message}") from None

    def _check_answer(self, entry: LogEntry, request: EntryRequest) -> None:
        """The answer records ``request``; its proof holds together; under a pin, it verifies."""
        try:
            logged = read_entry_body(entry.body)
        except FormatError as exc:
            raise LogServiceError(f"the transparency log answered an entry {exc.message}") from None
        wanted = request.recorded_digest(logged.kind)
        if (
            logged.digest != wanted
            or logged.signature != request.signature
            or logged.certificate != request.certificate
        ):
            raise LogServiceError(
                f"the transparency log {self.url} answered another entry than the one sent"
            )
        root = entry.inclusion_proof.root_for(entry.leaf_hash)
        if root != entry.root_hash or entry.checkpoint.checkpoint.root_hash != root:
            raise LogServiceError(
                f"the transparency log {self.url} answered a proof that does not lead to its "
                "checkpoint's root"
            )
        if self.log is not None:
            verify_log_entry(entry, self.log)


@dataclass(frozen=True)
class ReadEntry:
    """One entry as a log serves it to a monitor: its index and body, and from Rekor v1 the
    integrated time with the SET that signs it (not yet verified)."""

    index: int
    body: bytes = field(repr=False)
    integrated_time: int | None = None
    signed_entry_timestamp: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RekorV1Reader:
    """Reads a Rekor v1 log for a monitor: checkpoints, consistency proofs, entries by index."""

    url: str
    transport: Transport | None = field(default=None, compare=False)
    timeout: float = DEFAULT_LOG_TIMEOUT

    def _get(self, path: str, params: str = "") -> Any:
        transport = _transport(self.transport)
        response = transport.request(
            "GET",
            f"{self.url.rstrip('/')}{path}{params}",
            headers=_JSON,
            timeout=self.timeout,
            max_bytes=_MAX_ANSWER,
        )
        _check(response, "transparency log")
        return _json(response, "transparency log")

    def checkpoint(self) -> SignedCheckpoint:
        """The log's latest signed checkpoint (``GET /api/v1/log``), not yet verified."""
        info = self._get("/api/v1/log")
        if not isinstance(info, dict) or not isinstance(info.get("signedTreeHead"), str):
            raise LogServiceError("the transparency log's /api/v1/log has no signedTreeHead")
        try:
            return SignedCheckpoint.parse(info["signedTreeHead"], what="the log's checkpoint")
        except FormatError as exc:
            raise LogServiceError(exc.message) from None

    def consistency(self, old_size: int, new_size: int) -> ConsistencyProof:
        """The log's proof that the tree of ``old_size`` is a prefix of ``new_size``'s."""
        answer = self._get("/api/v1/log/proof", f"?firstSize={old_size}&lastSize={new_size}")
        hashes = answer.get("hashes") if isinstance(answer, dict) else None
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise LogServiceError("the transparency log's consistency proof has no hashes")
        try:
            return ConsistencyProof(
                old_size, new_size, tuple(bytes.fromhex(h) for h in hashes[:126])
            )
        except ValueError:
            raise LogServiceError("the transparency log's consistency proof is not hex") from None

    def entries(self, start: int, end: int) -> Iterator[ReadEntry]:
        """Every entry in ``start .. end - 1``, in order."""
        import json

        transport = _transport(self.transport)
        for first in range(start, end, _RETRIEVE_BATCH):
            wanted = list(range(first, min(first + _RETRIEVE_BATCH, end)))
            response = transport.request(
                "POST",
                f"{self.url.rstrip('/')}/api/v1/log/entries/retrieve",
                headers=_JSON,
                data=json.dumps({"logIndexes": wanted}).encode(),
                timeout=self.timeout,
                max_bytes=_MAX_ANSWER * _RETRIEVE_BATCH,
            )
            from opkey._httpjson import check_status

            check_status(response, what="transparency log entries", method="POST")
            answer = _json(response, "transparency log entries")
            if not isinstance(answer, list) or len(answer) != len(wanted):
                count = len(answer) if isinstance(answer, list) else 0
                raise LogServiceError(
                    f"the transparency log answered {count} entries for indexes "
                    f"{wanted[0]}..{wanted[-1]}"
                )
            found: dict[int, ReadEntry] = {}
            for item in answer:
                try:
                    entry = _read_entry(item)
                except FormatError as exc:
                    raise LogServiceError(f"the transparency log answered {exc.message}") from None
                found[entry.index] = entry
            for index in wanted:
                if index not in found:
                    raise LogServiceError(f"the transparency log did not return entry {index}")
                yield found[index]


def _read_entry(item: object) -> ReadEntry:
    """One ``{uuid: entry}`` of ``/entries/retrieve`` (the UUID must end with the body's leaf
    hash)."""
    from opkey.tlog._encoding import b64std_decode, json_uint
    from opkey.tlog.entry import MAX_BODY_LENGTH
    from opkey.tlog.merkle import leaf_hash

    if not isinstance(item, dict) or len(item) != 1:
        raise FormatError("an entry that is not one {uuid: entry} object")
    ((uuid, value),) = item.items()
    if not isinstance(value, dict):
        raise FormatError("an entry that is not an object")
    body = b64std_decode(
        value.get("body"), what="entry body", max_length=4 * (MAX_BODY_LENGTH // 3 + 1)
    )
    if not str(uuid).endswith(leaf_hash(body).hex()):
        raise FormatError(f"entry {str(uuid)[:90]!r} whose UUID does not name its body")
    verification = value.get("verification")
    signed = verification.get("signedEntryTimestamp") if isinstance(verification, dict) else None
    return ReadEntry(
        index=json_uint(value.get("logIndex"), what="entry logIndex"),
        body=body,
        integrated_time=json_uint(value.get("integratedTime"), what="entry integratedTime"),
        signed_entry_timestamp=None
        if signed is None
        else b64std_decode(signed, what="entry signedEntryTimestamp", max_length=1024),
    )


def _tile_path(index: int) -> str:
    """C2SP tlog-tiles' encoding of a tile index: groups of three digits, ``x`` before all but
    the last (``1234067`` → ``x001/x234/067``)."""
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    return "/".join([*(f"x{g}" for g in reversed(groups[1:])), groups[0]])


@dataclass(frozen=True)
class TileReader:
    """Reads a C2SP tlog-tiles log (Rekor v2, served as static files) for a monitor."""

    url: str
    transport: Transport | None = field(default=None, compare=False)
    timeout: float = DEFAULT_LOG_TIMEOUT

    def _fetch(self, path: str, max_bytes: int) -> bytes:
        transport = _transport(self.transport)
        response = transport.request(
            "GET",
            f"{self.url.rstrip('/')}/{path}",
            headers={},
            timeout=self.timeout,
            max_bytes=max_bytes,
        )
        _check(response, "transparency log tiles")
        return response.body

    def checkpoint(self) -> SignedCheckpoint:
        """The published checkpoint (``<url>/checkpoint``), not yet verified."""
        try:
            return SignedCheckpoint.parse(
                self._fetch("checkpoint", 128 * 1024), what="the log's checkpoint"
            )
        except FormatError as exc:
            raise LogServiceError(exc.message) from None

    def consistency(self, old_size: int, new_size: int) -> ConsistencyProof | None:
        """None: a tile log's consistency is proven by recomputing the root (the monitor's
        compact range), from the entries it reads anyway."""
        return None

    def entries(self, start: int, end: int) -> Iterator[ReadEntry]:
        """The entries ``start .. end - 1``, from the entry bundles (``end`` is a published
        tree size, so the last bundle may be partial)."""
        index = start
        while index < end:
            tile = index // 256
            width = min(256, end - tile * 256)
            path = f"tile/entries/{_tile_path(tile)}" + ("" if width == 256 else f".p/{width}")
            data = self._fetch(path, _MAX_TILE)
            bundle = _entry_bundle(data, width)
            for position in range(index - tile * 256, width):
                yield ReadEntry(tile * 256 + position, bundle[position])
            index = tile * 256 + width


def _entry_bundle(data: bytes, width: int) -> list[bytes]:
    """The entries of a tlog-tiles entry bundle: each a big-endian uint16 length and bytes."""
    entries: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise LogServiceError("an entry bundle ends inside a length")
        length = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise LogServiceError("an entry bundle ends inside an entry")
        entries.append(data[offset : offset + length])
        offset += length
    if len(entries) != width:
        raise LogServiceError(f"an entry bundle of {len(entries)} entries where {width} belong")
    return entries


def log_reader(
    log: TrustedLog, url: str, transport: Transport | None = None, timeout: float = 30.0
) -> RekorV1Reader | TileReader:
    """The reader for ``log``'s kind: Rekor v1's API, or the tiles of a Rekor v2 log."""
    from opkey.http import check_url

    check_url(url, what="transparency log URL", resolve=False)
    if log.signs_entry_timestamps:
        return RekorV1Reader(url, transport, timeout)
    return TileReader(url, transport, timeout)
