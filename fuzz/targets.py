"""Fuzz targets: what each one feeds its input to, and what counts as a finding.

A target's :meth:`Target.run` returns an *outcome* string (``accepted`` or the error class and
the shape of its message) for inputs that opkey handled properly, and raises :class:`Finding`
when the input exposed a defect:

* an exception that is not an :class:`~opkey.errors.OpkeyError` escaped (``crash``);
* a parse → serialize → parse round trip changed the value (``roundtrip``);
* ``verifier``, ``attestation``: a mutant was accepted whose signed content differs from every
  valid seed (``accepted``);
* ``discovery``: accepted metadata names a ``jwks_uri`` opkey should never fetch (``ssrf``);
* ``tlog-entry``, ``tlog-checkpoint``: a mutant of real Rekor evidence passes the offline log
  checks although what they vouch for (body, index, tree head, and the signed time unless it
  is dropped) differs from every seed's (``accepted``);
* ``tlog-monitor``: any entry body a log may serve is classified by the monitor (claims no
  watched identity, genuine, or spoofed) without an exception; a mutant classified genuine
  must be a seed's body (``accepted``);
* ``tlog-bundle``: a mutant of a recorded logged bundle verifies, with its entry required,
  although its PK token, signature, entry or proven time differs from every seed's
  (``accepted``), or its round trip changes it (``roundtrip``).
* ``registry-*``: an error message that carries non-printable remote text (``unprintable``),
  a token realm or ``Link`` that steers opkey where it must not go (``ssrf``), a value out of
  its documented range (``range``).

Hangs are detected by the engine (per-input time budget), not here.
"""

from __future__ import annotations

import json
import re
import socket
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fuzz.world import DIGEST, World
from opkey.attestation import SignedAttestation
from opkey.bundle import Bundle
from opkey.errors import OpkeyError, PolicyError
from opkey.http import check_url, is_loopback_host
from opkey.jose import go_json, parse_json_object
from opkey.jwks.discovery import ProviderMetadata, validate_issuer
from opkey.jwks.keyset import KeySet
from opkey.keys import PublicJWK
from opkey.pktoken import PKToken
from opkey.policy.file import PolicyFile, parse_policy_file
from opkey.registry.auth import DockerCredentialStore, parse_challenges
from opkey.registry.client import RegistryClient
from opkey.registry.manifest import ImageManifest, Manifest
from opkey.registry.responses import (
    MAX_TOKEN_LIFETIME,
    error_entries,
    next_page,
    parse_tag_page,
    parse_token_response,
)
from opkey.registry.retry import parse_retry_after
from opkey.tlog import (
    SignedCheckpoint,
    TrustedLog,
    entry_from_rekor_v1,
    entry_from_transparency_log_entry,
    load_log_public_key,
    verify_log_entry,
)
from opkey.verification.evidence import AttestationEvidence

__all__ = ["TARGETS", "Finding", "Target", "make_targets"]

_A = TypeVar("_A")
_T = TypeVar("_T")


class Finding(Exception):  # noqa: N818 - a finding is the point, not an error of the harness
    """A defect exposed by one input: ``kind`` and a short, stable ``signature``."""

    def __init__(self, kind: str, signature: str, detail: str) -> None:
        super().__init__(f"{kind}: {signature}")
        self.kind = kind
        self.signature = signature
        self.detail = detail


_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|\([^)]*\)?|\[[^\]]*\]?|[0-9][0-9.]*|\s+")


_KEY_PATH = re.compile(r"^[\w.\[\]-]*\w[\w.\[\]-]*:(?= )")


def outcome_of(exc: OpkeyError) -> str:
    """The class and message *shape* of an error: quoted values, numbers and parenthesised
    details elided, so that one check gives one outcome whatever the input said."""
    message = _KEY_PATH.sub("<path>:", exc.message)
    return f"{type(exc).__name__}: {_VARIABLE.sub(' ', message)[:48].strip()}"


def _crash(exc: BaseException) -> Finding:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/opkey/" in f.filename] or frames
    where = f"{ours[-1].filename.rsplit('/', 2)[-1]}:{ours[-1].lineno}" if ours else "?"
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Finding("crash", f"{type(exc).__name__} at {where}", detail)


@dataclass
class Target:
    """One fuzz target: a function of bytes, and the seed inputs to start from."""

    name: str
    check: Callable[[bytes], str]
    seeds: list[bytes]
    description: str
    setup: Callable[[], Any] = field(default=lambda: None)

    def run(self, data: bytes) -> str:
        """The outcome for ``data``, or :class:`Finding`."""
        try:
            return self.check(data)
        except Finding:
            raise
        except OpkeyError as exc:
            return outcome_of(exc)
        except Exception as exc:
            raise _crash(exc) from None


def _signed_parts(pkt: PKToken) -> tuple[Any, ...]:
    return (
        pkt.payload_b64,
        tuple((s.protected_b64, s.signature_b64) for s in pkt.signatures()),
        pkt.claims,
        pkt.cic_claims,
    )


def _roundtrip(what: str, first: Any, second: Any) -> None:
    if first != second:
        raise Finding("roundtrip", what, f"{first!r}\n!=\n{second!r}")


def _again(what: str, step: Callable[[_A], _T], value: _A) -> _T:
    """Apply ``step`` to opkey's own output: an error here means opkey accepted something it
    cannot write back, or wrote something it cannot read."""
    try:
        return step(value)
    except OpkeyError as exc:
        raise Finding("roundtrip", f"{what}: {outcome_of(exc)}", repr(value)[:4000]) from None


def _pktoken_checks(pkt: PKToken) -> str:
    # The JSON form does not carry a refreshed ID token (as in OpenPubkey); all else must hold.
    again = _again("pktoken json", PKToken.from_json, pkt.to_json())
    _roundtrip("pktoken json", again.to_json(), pkt.to_json())
    _roundtrip("pktoken json parts", _signed_parts(again), _signed_parts(pkt))
    _roundtrip("pktoken hash", again.hash(), pkt.hash())
    compact = _again("pktoken compact", PKToken.from_compact, pkt.to_compact())
    _roundtrip("pktoken compact", _signed_parts(compact), _signed_parts(pkt))
    return "accepted"


def _pktoken_json(data: bytes) -> str:
    return _pktoken_checks(PKToken.from_json(data))


def _pktoken_compact(data: bytes) -> str:
    pkt = PKToken.from_compact(data)
    _roundtrip("compact again", _again("compact", PKToken.from_compact, pkt.to_compact()), pkt)
    return _pktoken_checks(pkt)


def _bundle(data: bytes) -> str:
    bundle = Bundle.from_json(data)
    again = _again("bundle", Bundle.from_json, bundle.to_json())
    _roundtrip("bundle", (again.pktoken, again.signature), (bundle.pktoken, bundle.signature))
    return "accepted"


_CLAIMS: list[dict[str, Any]] = [
    {
        "iss": "https://token.actions.githubusercontent.com",
        "sub": "x",
        "repository_id": "433903792",
    },
    {"iss": "https://gitlab.com", "sub": "y", "project_id": "20", "ref": "main"},
    {"iss": "https://accounts.google.com", "sub": "z", "email": "alice@example.com", "aud": ["a"]},
]


def _policy_file(data: bytes) -> str:
    policy_file = parse_policy_file(data)
    text = _again("policy file to_toml", PolicyFile.to_toml, policy_file)
    again = _again("policy file", parse_policy_file, text)
    _roundtrip("policy file toml", again, policy_file)
    for signer in policy_file.signers:
        signer.policy.describe()
        for claims in _CLAIMS:
            with suppress(PolicyError):
                signer.policy.check(claims)
    result = policy_file.requirement.evaluate(_CLAIMS)
    return "accepted" if result.ok else "unmet"


def _jwks(data: bytes) -> str:
    keyset = KeySet.from_json(data)
    for key in keyset:
        key.thumbprint()
        _roundtrip("jwk", _again("jwk", PublicJWK.from_dict, key.to_dict()), key)
        with suppress(OpkeyError):
            keyset.find(kid=key.kid, jkt=key.thumbprint())
    _roundtrip("jwks", _again("jwks", KeySet.from_dict, keyset.to_dict()).keys, keyset.keys)
    return f"accepted {min(len(keyset), 5)} keys"


_PUBLIC_ADDRESS = "93.184.215.14"


def _offline_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    """Name resolution without the network: the checks a real resolver does on the name (IDNA
    encoding, NUL bytes), then one public address. IP literals never reach a resolver."""
    if not isinstance(host, str):
        raise TypeError("host must be a string")
    if "\x00" in host:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    host.encode("idna")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (_PUBLIC_ADDRESS, port or 443))]


@contextmanager
def _offline_resolver() -> Iterator[None]:
    real = socket.getaddrinfo
    socket.getaddrinfo = _offline_getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real


def _discovery(data: bytes) -> str:
    document = parse_json_object(data, what="discovery")
    # The configured issuer is always a validated URL; take the document's when it is one.
    issuer = document.get("issuer")
    expected = "https://issuer.fuzz.example"
    if isinstance(issuer, str):
        with suppress(OpkeyError):
            validate_issuer(issuer)
            expected = issuer
    metadata = ProviderMetadata.from_document(document, expected_issuer=expected)
    issuer_host = urlsplit(expected).hostname or ""
    with _offline_resolver():
        check_url(
            metadata.jwks_uri,
            what="jwks_uri",
            allow_loopback=is_loopback_host(issuer_host),
        )
    parts = urlsplit(metadata.jwks_uri)
    host = parts.hostname or ""
    if parts.scheme != "https" and not is_loopback_host(host):
        raise Finding("ssrf", "plain http off loopback", metadata.jwks_uri)
    if is_loopback_host(host) and not is_loopback_host(issuer_host):
        raise Finding("ssrf", "loopback jwks_uri for a remote issuer", metadata.jwks_uri)
    if parts.username is not None or parts.password is not None:
        raise Finding("ssrf", "credentials in jwks_uri", metadata.jwks_uri)
    return "accepted"


def _printable_errors(check: Callable[[bytes], str]) -> Callable[[bytes], str]:
    """``check``, where an error whose message is not printable is a finding: registry answers
    are remote text, and none of it may reach a terminal raw."""

    def run(data: bytes) -> str:
        try:
            return check(data)
        except OpkeyError as exc:
            if not exc.message.isprintable():
                raise Finding(
                    "unprintable", f"{type(exc).__name__}: {outcome_of(exc)}", repr(exc.message)
                ) from None
            raise

    return run


def _registry_manifest(data: bytes) -> str:
    manifest = Manifest.from_bytes(data, content_type=None, what="manifest")
    if manifest.media_type not in (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ):
        return f"accepted {manifest.media_type.rsplit('.', 2)[-2]}"
    image = ImageManifest.from_manifest(manifest)
    again = _again(
        "image manifest",
        lambda raw: ImageManifest.from_manifest(Manifest.from_bytes(raw, content_type=None)),
        ImageManifest.build(
            image.media_type, image.config, image.layers, image.annotations
        ).encode(),
    )
    _roundtrip("image manifest", (again.config, again.layers, dict(again.annotations)),
               (image.config, image.layers, dict(image.annotations)))  # fmt: skip
    return f"accepted {min(len(image.layers), 3)} layers"


def _registry_tags(data: bytes) -> str:
    tags = parse_tag_page(data)
    again = _again("tag page", parse_tag_page, go_json({"tags": tags}))
    _roundtrip("tag page", again, tags)
    for tag in tags:
        if len(tag) > 128 or not tag.isascii() or not tag.isprintable():
            raise Finding("range", "tag outside the grammar", repr(tag))
    return f"accepted {min(len(tags), 3)} tags"


_REGISTRY = "https://registry.fuzz.example"


def _registry_link(data: bytes) -> str:
    target = next_page(_REGISTRY, data.decode("latin-1"))
    if target is None:
        return "accepted end"
    if urlsplit(target).netloc.lower() != "registry.fuzz.example":
        raise Finding("ssrf", "Link to another host", target)
    return "accepted next"


_CLIENT = RegistryClient(docker_config=DockerCredentialStore(), env={})


def _registry_challenge(data: bytes) -> str:
    challenges = parse_challenges(data.decode("latin-1"))
    outcome = "accepted"
    for challenge in challenges:
        realm = challenge.params.get("realm")
        if challenge.scheme != "bearer" or not realm:
            continue
        with _offline_resolver():
            _CLIENT._check_server_url(realm, "registry.fuzz.example", "token realm")
        parts = urlsplit(realm)
        host = parts.hostname or ""
        if parts.scheme != "https":
            raise Finding("ssrf", "plain http realm for a remote registry", realm)
        if is_loopback_host(host):
            raise Finding("ssrf", "loopback realm for a remote registry", realm)
        if parts.username is not None or parts.password is not None:
            raise Finding("ssrf", "credentials in the realm", realm)
        outcome = "accepted realm"
    return outcome


def _registry_token(data: bytes) -> str:
    answer = parse_token_response(data)
    token = answer.token
    if not token or " " in token or not token.isascii() or not token.isprintable():
        raise Finding("range", "token not printable ASCII", repr(token))
    if not 0 < answer.lifetime <= MAX_TOKEN_LIFETIME:
        raise Finding("range", "token lifetime out of range", str(answer.lifetime))
    return "accepted"


def _registry_errors(data: bytes) -> str:
    entries = error_entries(data)
    if len(entries) > 5:
        raise Finding("range", "more than 5 error entries", str(len(entries)))
    for code, message in entries:
        if not (code.isprintable() and message.isprintable()):
            raise Finding("unprintable", "error entry", repr((code, message)))
    return f"accepted {len(entries)} errors"


def _registry_retry_after(data: bytes) -> str:
    seconds = parse_retry_after(data.decode("latin-1"))
    if seconds is None:
        return "accepted none"
    if not 0 <= seconds < float("inf"):
        raise Finding("range", "Retry-After not a finite non-negative float", repr(seconds))
    return "accepted seconds"


def _verifier(world: World) -> Callable[[bytes], str]:
    accepted = world.accepted_content()

    def check(data: bytes) -> str:
        bundle = Bundle.from_json(data)
        world.verifier.verify_bundle(bundle, DIGEST, policy=world.policy)
        content = (bundle.pktoken.to_json(), bundle.signature)
        if content not in accepted:
            raise Finding(
                "accepted",
                "mutated bundle accepted",
                f"signed content differs from every seed:\n{content[0]!r}\n{content[1]!r}",
            )
        return "accepted"

    return check


def _attestation(world: World) -> Callable[[bytes], str]:
    """An attestation bundle: parse, round trip, verify; accepted only as a seed's content."""
    accepted = {
        (a.pktoken.to_json(), a.osm, a.envelope.payload_type, a.envelope.payload, a.signature)
        for a in world.attestations
    }

    def check(data: bytes) -> str:
        attestation = SignedAttestation.from_json(data)
        again = _again("attestation", SignedAttestation.from_json, attestation.to_json())
        _roundtrip("attestation", again, attestation)
        evidence = AttestationEvidence.from_bundle(attestation)
        identity = world.verifier.check(evidence, DIGEST)
        world.policy.check(identity.claims)
        envelope = attestation.envelope
        content = (
            attestation.pktoken.to_json(),
            attestation.osm,
            envelope.payload_type,
            envelope.payload,
            attestation.signature,
        )
        if content not in accepted:
            raise Finding(
                "accepted",
                "mutated attestation accepted",
                f"signed content differs from every seed:\n{content!r}",
            )
        return "accepted"

    return check


_TLOG_DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "tlog"


@dataclass(frozen=True)
class _RecordedLogs:
    """The two real Rekor answers of tests/data/tlog, the logs that signed them, and what
    their evidence vouches for."""

    logs: tuple[TrustedLog, TrustedLog]
    entries: list[bytes]
    checkpoints: list[bytes]

    @classmethod
    def load(cls) -> _RecordedLogs:
        v1 = json.loads((_TLOG_DATA / "rekor-v1-entry.json").read_text())
        v2 = json.loads((_TLOG_DATA / "rekor-v2-entry.json").read_text())
        key1 = load_log_public_key(v1["public_key_pem"].encode())
        key2 = load_log_public_key(v2["public_key_pem"].encode())
        logs = (
            TrustedLog.rekor_v1(v1["hostname"], v1["tree_id"], key1),
            TrustedLog.rekor_v2(v2["origin"], key2),
        )
        (value,) = v1["entry"].values()
        checkpoints = [
            value["verification"]["inclusionProof"]["checkpoint"],
            v1["log_info_after"]["signedTreeHead"],
            v2["entry"]["inclusionProof"]["checkpoint"]["envelope"],
            v2["published_checkpoint"],
        ]
        return cls(
            logs,
            [json.dumps(v1["entry"]).encode(), json.dumps(v2["entry"]).encode()],
            [c.encode() for c in checkpoints],
        )

    def vouched(self) -> set[tuple[bytes, int, bytes, int | None]]:
        """(body, index, root, time) of every seed entry: all a mutant may verify as."""
        found = set()
        for data in self.entries:
            verified = _verify_recorded(data, self.logs)
            found.add(verified)
        return found


def _verify_recorded(
    data: bytes, logs: tuple[TrustedLog, TrustedLog]
) -> tuple[bytes, int, bytes, int | None]:
    document = parse_json_object(data, what="log entry")
    if "canonicalizedBody" in document:
        entry, log = entry_from_transparency_log_entry(document), logs[1]
    else:
        entry, log = entry_from_rekor_v1(document), logs[0]
    verified = verify_log_entry(entry, log)
    return (
        verified.body,
        verified.log_index,
        verified.checkpoint.root_hash,
        verified.integrated_time,
    )


def _tlog_entry(recorded: _RecordedLogs) -> Callable[[bytes], str]:
    vouched = recorded.vouched()

    def check(data: bytes) -> str:
        verified = _verify_recorded(data, recorded.logs)
        # Without its SET an entry still verifies, with no time: a weaker claim, not a new one.
        if verified not in vouched and (*verified[:3], None) not in {
            (*v[:3], None) for v in vouched
        }:
            raise Finding(
                "accepted", "mutated log entry verified", data[:4000].decode(errors="replace")
            )
        return "accepted"

    return check


def _tlog_checkpoint(recorded: _RecordedLogs) -> Callable[[bytes], str]:
    heads = set()
    for seed in recorded.checkpoints:
        parsed = SignedCheckpoint.parse(seed).checkpoint
        heads.add((parsed.origin, parsed.tree_size, parsed.root_hash))

    def check(data: bytes) -> str:
        signed = SignedCheckpoint.parse(data)
        body = signed.checkpoint
        log = next((lg for lg in recorded.logs if lg.origin == body.origin), recorded.logs[0])
        signed.verify([log.key], origin=log.origin)
        if (body.origin, body.tree_size, body.root_hash) not in heads:
            raise Finding(
                "accepted", "mutated checkpoint verified", data[:4000].decode(errors="replace")
            )
        return "accepted"

    return check


def _tlog_bundle() -> tuple[Callable[[bytes], str], list[bytes]]:
    """Logged bundles recorded from the tests' own Rekor v1 and v2, verified offline under
    their logs with an entry required: a mutant may verify only as a seed does."""
    from opkey import CommitmentType, IssuerConfig, PinnedKeys, Trust, TrustedIssuer, Verifier
    from opkey.digest import Digest
    from opkey.policy.claims import UnsafeNoPolicy

    data = json.loads((_TLOG_DATA / "logged-signatures.json").read_text())
    provider = data["provider"]
    config = IssuerConfig(
        issuer=provider["issuer"],
        commitment=CommitmentType.GQ_BOUND,
        require_gq=True,
        algorithms=frozenset({"GQ256"}),
    )
    keys = PinnedKeys({provider["issuer"]: KeySet.from_dict(provider["jwks"])})
    logs = tuple(
        TrustedLog.pinned(
            data[v]["log"]["origin"], load_log_public_key(data[v]["log"]["public_key_pem"].encode())
        )
        for v in ("v1", "v2")
    )
    verifier = Verifier(
        Trust((TrustedIssuer(config, (keys,)),), transparency_logs=logs, require_tlog=True)
    )
    digest = Digest(data["digest"])
    policy = UnsafeNoPolicy()

    def content(data: bytes) -> tuple[object, ...]:
        bundle = Bundle.from_json(data)
        if Bundle.from_json(bundle.to_json()) != bundle:
            raise Finding("roundtrip", "logged bundle changed in a round trip", repr(bundle)[:2000])
        identity = verifier.verify_bundle(bundle, digest, policy=policy)
        return (
            bundle.pktoken.to_json(),
            bundle.signature,
            tuple((e.origin, e.log_index, e.body) for e in identity.log_entries),
            None if identity.signed_at is None else identity.signed_at.time,
        )

    seeds = [json.dumps(data[v]["bundle"]).encode() for v in ("v1", "v2")]
    accepted = {content(seed) for seed in seeds}
    # Without its SET the entry still verifies, with no proven time: a weaker claim, not a new
    # one (the signature is then judged as one without a signing time).
    accepted |= {(*found[:3], None) for found in accepted}

    def check(data: bytes) -> str:
        if content(data) not in accepted:
            raise Finding(
                "accepted", "mutated logged bundle verified", data[:4000].decode(errors="replace")
            )
        return "accepted"

    return check, seeds


def _tlog_monitor() -> tuple[Callable[[bytes], str], list[bytes]]:
    """The monitor's view of one entry: the bodies opkey logged (recorded), every identity
    watched, the recorded provider trusted."""
    import base64

    from opkey import CommitmentType, IssuerConfig, PinnedKeys, Trust, TrustedIssuer, Verifier
    from opkey.tlog.client import ReadEntry
    from opkey.tlog.monitor import Watch, WatchedEntry, _check_entry
    from opkey.tlog.signature_entry import read_entry_body

    data = json.loads((_TLOG_DATA / "logged-signatures.json").read_text())
    provider = data["provider"]
    config = IssuerConfig(
        issuer=provider["issuer"],
        commitment=CommitmentType.GQ_BOUND,
        require_gq=True,
        algorithms=frozenset({"GQ256"}),
    )
    keys = PinnedKeys({provider["issuer"]: KeySet.from_dict(provider["jwks"])})
    watch = Watch(lambda claims: True, Verifier(Trust((TrustedIssuer(config, (keys,)),))))
    pin = data["v2"]["log"]
    log = TrustedLog.pinned(pin["origin"], load_log_public_key(pin["public_key_pem"].encode()))
    seeds = [
        base64.b64decode(entry["canonicalizedBody"])
        for version in ("v1", "v2")
        for entry in (
            data[version]["bundle"]["tlogEntries"][0],
            json.loads(data[version]["layer"]["annotations"]["dev.opkey/tlog"]),
        )
    ]

    def recorded(body: bytes) -> tuple[object, ...]:
        logged = read_entry_body(body)
        certificate = logged.read_certificate(parse_pktoken=False)
        assert certificate is not None  # classified genuine: it has one
        # The certificate's other bytes (its self-signature, names, validity) are not what a
        # genuine entry is judged by: the key and the PK token are.
        return logged.digest, logged.signature, certificate.public_key_der, certificate.pktoken_json

    genuine = {recorded(seed) for seed in seeds}

    def check(body: bytes) -> str:
        found = _check_entry(ReadEntry(0, body), log, watch)
        # Other bytes may record the same signature (JSON spelling, the certificate's own
        # signature): genuine is what it records.
        if isinstance(found, WatchedEntry) and recorded(body) not in genuine:
            raise Finding("accepted", "mutated entry judged genuine", body[:4000].decode("latin-1"))
        if isinstance(found, WatchedEntry):
            return "accepted"
        return "claims no watched identity" if found is None else "spoofed"

    return check, seeds


def make_targets(world: World) -> dict[str, Target]:
    """Every target, seeded from ``world``."""
    pktoken_json = [pkt.to_json() for pkt in world.pktokens]
    pktoken_compact = [pkt.to_compact().encode() for pkt in world.pktokens]
    first = world.pktokens[0]
    fresh = world.providers["nonce"].id_token(world.providers["nonce"].claims())
    pktoken_compact.append(f"{first.to_compact()}.{fresh}".encode())
    bundles = [b.to_json() for b in world.bundles + world.decoys]
    bundles.append(go_json(world.bundles[0].to_dict()))
    recorded = _RecordedLogs.load()
    tlog_bundle, tlog_bundle_seeds = _tlog_bundle()
    tlog_monitor, tlog_monitor_seeds = _tlog_monitor()
    return {
        "pktoken-json": Target(
            "pktoken-json", _pktoken_json, pktoken_json, "PKToken.from_json + round trips"
        ),
        "pktoken-compact": Target(
            "pktoken-compact",
            _pktoken_compact,
            pktoken_compact,
            "PKToken.from_compact + round trips",
        ),
        "bundle": Target("bundle", _bundle, bundles, "Bundle.from_json + round trip"),
        "attestation": Target(
            "attestation",
            _attestation(world),
            [a.to_json() for a in world.attestations],
            "SignedAttestation.from_json + round trip + AttestationEvidence.verify",
        ),
        "policy-file": Target(
            "policy-file", _policy_file, world.policy_files, "parse_policy_file + TOML round trip"
        ),
        "verifier": Target(
            "verifier",
            _verifier(world),
            bundles,
            "Verifier.verify_bundle: a mutant may only be accepted as a valid seed",
        ),
        "jwks": Target("jwks", _jwks, world.jwks_documents, "KeySet.from_json + lookups"),
        "discovery": Target(
            "discovery",
            _discovery,
            world.discovery_documents,
            "ProviderMetadata + jwks_uri checks (offline resolver)",
        ),
        "tlog-entry": Target(
            "tlog-entry",
            _tlog_entry(recorded),
            recorded.entries,
            "Rekor v1 / v2 answers: parse + verify_log_entry against the recorded logs",
        ),
        "tlog-checkpoint": Target(
            "tlog-checkpoint",
            _tlog_checkpoint(recorded),
            recorded.checkpoints,
            "SignedCheckpoint.parse + verify under the recorded log keys",
        ),
        "tlog-monitor": Target(
            "tlog-monitor",
            tlog_monitor,
            tlog_monitor_seeds,
            "the monitor's classification of one entry body (no exception; genuine only as seeds)",
        ),
        "tlog-bundle": Target(
            "tlog-bundle",
            tlog_bundle,
            tlog_bundle_seeds,
            "logged bundles: Bundle.from_json + verify_bundle with the entry required",
        ),
        **{
            name: Target(name, _printable_errors(check), world.registry[name], description)
            for name, check, description in _REGISTRY_TARGETS
        },
    }


_REGISTRY_TARGETS: tuple[tuple[str, Callable[[bytes], str], str], ...] = (
    ("registry-manifest", _registry_manifest, "Manifest/ImageManifest + build round trip"),
    ("registry-tags", _registry_tags, "tag-list page: tag grammar + round trip"),
    ("registry-link", _registry_link, "Link pagination stays on the registry's host"),
    ("registry-challenge", _registry_challenge, "WWW-Authenticate + token realm URL rules"),
    ("registry-token", _registry_token, "token response: token and lifetime ranges"),
    ("registry-errors", _registry_errors, "distribution error body: printable, at most 5"),
    ("registry-retry-after", _registry_retry_after, "Retry-After: None or finite seconds"),
)


TARGETS = (
    "pktoken-json",
    "pktoken-compact",
    "bundle",
    "attestation",
    "policy-file",
    "verifier",
    "jwks",
    "discovery",
    "tlog-entry",
    "tlog-checkpoint",
    "tlog-bundle",
    "tlog-monitor",
    "registry-manifest",
    "registry-tags",
    "registry-link",
    "registry-challenge",
    "registry-token",
    "registry-errors",
    "registry-retry-after",
)
