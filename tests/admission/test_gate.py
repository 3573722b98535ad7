"""The gate against a real registry and the real dev IdP: verdicts, the cache's rules, faults.

The gate is built as ``opkey admission serve`` builds it (:func:`opkey.admission.service.
build_gate`) and judges real review bodies; images are pushed to the CNCF distribution registry
and signed with PK tokens of the dev IdP. A :class:`~tests.registry.faultproxy.FaultProxy` in
front of the registry counts requests (to show what the cache saves) and injects outages and
slowness.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opkey.admission import ImageCheck, Mode, parse_admission_review, plan_admission
from opkey.admission.gate import Gate, Judgement, Source
from opkey.admission.policies import load_gate_policy
from opkey.images import attest_image
from opkey.jwks.archive import JwksArchive
from opkey.policy.file import LogPin
from opkey.registry.reference import ImageReference
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.registry import LocalRegistry, seed_image
from opkey.verification.trust import KeyOptions
from tests.admission.gates import judge, make_gate
from tests.admission.serving import (
    OTHER_REPO_ID,
    image_in,
    pod,
    policy_file,
    review,
    sign,
    signer,
)
from tests.conftest import make_registry_client
from tests.registry.faultproxy import FaultProxy

pytestmark = pytest.mark.registry
__all__ = ["make_gate"]  # fixtures


class Registry:
    """The registry behind a fault proxy: ``host`` for image names, ``client`` to push."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.client = make_registry_client()
        self.fail_with: int | None = None
        self.delay = 0.0

    @property
    def host(self) -> str:
        return self.proxy.host

    def push(self, name: str, content: bytes | None = None) -> ImageReference:
        return seed_image(self.client, image_in(self.host, name), content=content)

    def requests_for(self, fragment: str) -> int:
        return sum(1 for _, path, _ in self.seen if fragment in path)

    seen: list[tuple[str, str, int]]


@pytest.fixture
def registry(registry_server: LocalRegistry) -> Iterator[Registry]:
    holder: list[Registry] = []

    def decide(method: str, path: str, number: int) -> int | None:
        state = holder[0]
        state.seen.append((method, path, number))
        if state.delay:
            time.sleep(state.delay)
        return state.fail_with

    proxy = FaultProxy(registry_server.port, decide).start()
    state = Registry(proxy)
    state.seen = []
    holder.append(state)
    try:
        yield state
    finally:
        proxy.stop()


@pytest.fixture
def idp(make_dev_idp: Callable[..., DevIdP]) -> DevIdP:
    return make_dev_idp()


def test_a_signed_image_is_admitted_then_answered_from_the_cache_without_the_registry(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    image = registry.push("app")
    sign(registry.client, image, idp)
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp))
    first = judge(gate, str(image))
    assert first.response is not None
    assert first.response.allowed, first.response.message
    ((judged),) = first.images
    assert (judged.source, judged.digest) == (Source.VERIFIED, image.digest)
    before = len(registry.seen)
    assert before > 0
    second = judge(gate, str(image))
    assert second.response is not None
    assert second.response.allowed
    assert [j.source for j in second.images] == [Source.CACHE]
    assert len(registry.seen) == before, "a cached verdict asks the registry nothing"


def test_an_unsigned_image_is_refused_with_the_reason_and_the_rejection_is_remembered(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    image = registry.push("unsigned")
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp))
    first = judge(gate, str(image))
    assert first.response is not None
    assert not first.response.allowed
    assert first.response.code == 403
    message = first.response.message or ""
    assert message.startswith("opkey refused 1 of 1 image: spec.containers[0].image")
    assert "has no signatures" in message
    assert [j.source for j in first.images] == [Source.VERIFIED]
    again = judge(gate, str(image))
    assert [j.source for j in again.images] == [Source.CACHE]
    assert again.response is not None
    assert "has no signatures" in (again.response.message or "")


def test_a_signature_from_the_wrong_workload_is_refused(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    image = registry.push("other")
    sign(registry.client, image, idp)
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp, OTHER_REPO_ID))
    result = judge(gate, str(image))
    assert result.response is not None
    assert not result.response.allowed
    assert "repository_id" in (result.response.message or "")


def test_a_tag_is_resolved_to_its_digest_and_never_cached_by_tag(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    signed = registry.push("tagged")
    sign(registry.client, signed, idp)
    tag = f"{signed.registry}/{signed.repository}:v1"
    policy = policy_file(tmp_path / "policy.toml", idp)
    strict = make_gate(policy)
    refused = judge(strict, tag)
    assert refused.response is not None
    assert not refused.response.allowed
    assert "not pinned by digest" in (refused.response.message or "")

    gate = make_gate(policy, allow_tags=True)
    first = judge(gate, tag)
    assert first.response is not None
    assert first.response.allowed, first.response.message
    assert first.images[0].digest == signed.digest
    # The tag moves to an unsigned image: the verdict of the old digest does not follow it.
    moved = seed_image(registry.client, ImageReference.parse(tag))
    assert moved.digest != signed.digest
    second = judge(gate, tag)
    assert second.response is not None
    assert not second.response.allowed
    assert second.images[0].digest == moved.digest
    assert "has no signatures" in (second.response.message or "")


def test_the_same_digest_in_another_repository_is_judged_on_its_own_signatures(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    signed = registry.push("original", content=b"same bytes\n")
    copy = registry.push("copy", content=b"same bytes\n")
    assert signed.digest == copy.digest
    sign(registry.client, signed, idp)
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp))
    assert judge(gate, str(signed)).response.allowed  # type: ignore[union-attr]
    result = judge(gate, str(copy))
    assert result.response is not None
    assert not result.response.allowed
    assert [j.source for j in result.images] == [Source.VERIFIED]


def test_concurrent_requests_for_one_new_image_share_one_verification(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    image = registry.push("replicas")
    sign(registry.client, image, idp)
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp))
    registry.seen.clear()
    registry.delay = 0.05

    async def replicas() -> list[Judgement]:
        bodies = [review(pod(f"web-{i}", str(image))) for i in range(8)]
        return list(await asyncio.gather(*(gate.judge(body) for body in bodies)))

    results = asyncio.run(replicas())
    assert all(r.response is not None and r.response.allowed for r in results)
    sources = sorted(r.images[0].source.value for r in results)
    assert sources.count("verified") == 1
    assert set(sources) <= {"verified", "shared", "cache"}
    assert registry.requests_for(".sig") == 1, "one signature manifest fetch for eight pods"


def test_every_image_of_the_request_is_named_with_its_own_reason(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    good = registry.push("good")
    sign(registry.client, good, idp)
    bad = registry.push("bad")
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp))
    result = judge(gate, str(good), str(bad), "not a reference!")
    assert result.response is not None
    assert not result.response.allowed
    message = result.response.message or ""
    assert message.startswith("opkey refused 2 of 3 images: ")
    assert f'spec.containers[1].image "{bad}": ' in message
    assert 'spec.containers[2].image "not a reference!": not a valid image reference' in message
    assert "containers[0]" not in message


def test_audit_mode_admits_and_warns_about_what_it_would_refuse(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    bad = registry.push("audited")
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp), mode=Mode.WARN)
    result = judge(gate, str(bad), f"{registry.host}/x:latest")
    assert result.response is not None
    assert result.response.allowed
    warnings = sorted(result.response.warnings)
    assert len(warnings) == 2
    assert warnings[0].startswith('opkey (warn, rule policy): spec.containers[0].image "')
    assert "has no signatures" in warnings[0]
    assert warnings[1].startswith('opkey (warn, rule policy): spec.containers[1].image "')
    assert "not pinned by digest" in warnings[1]


VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"


def test_a_policy_asking_for_an_attestation_admits_only_what_was_attested_so(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    """A rule's policy file may ask for attestations (``predicate_type`` and conditions): the
    gate decides them as ``opkey verify`` does, in the ``.att`` tag and among OCI 1.1
    referrers, and a plain signature does not count for them."""
    policy = tmp_path / "scan-policy.toml"
    policy.write_text(
        policy_file(tmp_path / "base.toml", idp).read_text()
        + f'predicate_type = "{VULN}"\n'
        + 'predicate = [{ pointer = "/scanner/result", equals = "PASSED" }]\n'
    )
    signed = registry.push("scan-signed")
    sign(registry.client, signed, idp)
    failed = registry.push("scan-failed")
    attest_image(registry.client, failed, signer(idp), VULN, {"scanner": {"result": "FAILED"}})
    passed_tag = registry.push("scan-passed-tag")
    attest_image(registry.client, passed_tag, signer(idp), VULN, {"scanner": {"result": "PASSED"}})
    passed_referrer = registry.push("scan-passed-referrer")
    attest_image(
        registry.client,
        passed_referrer,
        signer(idp),
        VULN,
        {"scanner": {"result": "PASSED"}},
        storage="referrers",
    )
    gate = make_gate(policy)
    result = judge(gate, str(signed), str(failed), str(passed_tag), str(passed_referrer))
    assert result.response is not None
    assert not result.response.allowed
    message = result.response.message or ""
    assert message.startswith("opkey refused 2 of 4 images: "), message
    assert f'spec.containers[0].image "{signed}": the image has no attestations' in message
    assert f'spec.containers[1].image "{failed}": ' in message
    assert "/scanner/result" in message
    assert "containers[2]" not in message
    assert "containers[3]" not in message
    assert [j.outcome.allowed for j in result.images] == [False, False, True, True]


def _log_key(path: Path) -> Path:
    """A transparency log's public key (P-256, PEM): a log pinned, whose entries none has."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_a_required_transparency_log_entry_is_required_by_the_gate_too(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    """The gate's trust keeps the pinned logs and ``--require-tlog`` (or a policy file's
    ``[tlog] required``): a signature with no entry in the pinned log is refused."""
    image = registry.push("unlogged")
    sign(registry.client, image, idp)
    pin = LogPin(_log_key(tmp_path / "log.pem"), "rekor.example - 1")
    policy = policy_file(tmp_path / "policy.toml", idp)
    required = tmp_path / "required.toml"
    required.write_text(
        policy.read_text().replace("version = 1\n", "version = 1\n[tlog]\nrequired = true\n")
    )
    pinned = judge(make_gate(policy, keys=KeyOptions(tlogs=(pin,))), str(image))
    assert pinned.response is not None
    assert pinned.response.allowed, "a pinned log alone does not require an entry"
    for path, keys in [
        (policy, KeyOptions(tlogs=(pin,), require_tlog=True)),
        (required, KeyOptions(tlogs=(pin,))),
    ]:
        result = judge(make_gate(path, keys=keys), str(image))
        assert result.response is not None
        assert not result.response.allowed
        assert "transparency log" in (result.response.message or "")


# -- faults ------------------------------------------------------------------------------------


def test_a_registry_that_is_down_denies_with_the_reason_and_is_not_remembered(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    image = registry.push("outage")
    sign(registry.client, image, idp)
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp), deadline=3.0)
    registry.fail_with = 503
    started = time.monotonic()
    down = judge(gate, str(image))
    assert time.monotonic() - started < 3.5
    assert down.response is not None
    assert not down.response.allowed
    assert "cannot verify: " in (down.response.message or "")
    assert "503" in (down.response.message or "")
    assert [j.source for j in down.images] == [Source.ERROR]
    registry.fail_with = None
    back = judge(gate, str(image))
    assert back.response is not None
    assert back.response.allowed, "the outage's rejection was not cached"
    assert [j.source for j in back.images] == [Source.VERIFIED]


def test_a_registry_nobody_listens_on_denies_at_once(
    idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    from tests.admission.serving import distinct_port

    gate = make_gate(policy_file(tmp_path / "policy.toml", idp), deadline=3.0)
    image = f"127.0.0.1:{distinct_port()}/gone/app@sha256:{'ab' * 32}"
    started = time.monotonic()
    result = judge(gate, image)
    assert time.monotonic() - started < 3.0
    assert result.response is not None
    assert not result.response.allowed
    assert "cannot verify: " in (result.response.message or "")


def test_a_slow_registry_is_refused_within_the_deadline(
    registry: Registry, idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    image = registry.push("slow")
    sign(registry.client, image, idp)
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp), deadline=1.0)
    registry.delay = 2.0
    started = time.monotonic()
    result = judge(gate, str(image))
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"answered after {elapsed:.2f} s"
    assert result.response is not None
    assert not result.response.allowed
    message = result.response.message or ""
    assert "deadline" in message
    assert [j.source for j in result.images] == [Source.DEADLINE]
    registry.delay = 0.0
    time.sleep(2.2)  # the proxy's delayed answers drain
    assert judge(gate, str(image)).response.allowed  # type: ignore[union-attr]


def test_the_api_servers_shorter_timeout_shortens_the_deadline(
    idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp))
    assert gate.budget(None) == 8.0
    assert gate.budget(10.0) == 8.0
    assert gate.budget(2.0) == pytest.approx(1.6)


def test_with_the_provider_down_archived_keys_keep_verifying(
    registry: Registry,
    make_dev_idp: Callable[..., DevIdP],
    tmp_path: Path,
    make_gate: Callable[..., Gate],
) -> None:
    idp = make_dev_idp()
    image = registry.push("archived")
    sign(registry.client, image, idp)
    archive = tmp_path / "archive.sqlite"
    policy = policy_file(tmp_path / "policy.toml", idp)
    keys = KeyOptions(archive=archive)
    # The gate refreshes the live keys in the background; each fetch is recorded in the archive.
    from opkey.admission.refresh import KeyRefresher

    live = make_gate(policy, keys=keys)
    assert KeyRefresher(live.policies.jwks_clients()).refresh_all()
    issuer = idp.issuer
    assert issuer in JwksArchive(archive).issuers()
    idp.stop()
    # A fresh gate (nothing in memory) with the provider unreachable: the archive answers.
    gate = make_gate(policy, keys=keys)
    refresher = KeyRefresher(gate.policies.jwks_clients())
    assert not refresher.refresh_all()
    assert issuer in refresher.failures
    result = judge(gate, str(image))
    assert result.response is not None
    assert result.response.allowed, result.response.message
    # Without the archive the same gate has no keys: refused, and not remembered.
    bare = make_gate(policy)
    refused = judge(bare, str(image))
    assert refused.response is not None
    assert not refused.response.allowed
    assert bare.cache.get(bare.state.key(_check(bare, image), image)) is None


def test_keys_refreshed_in_the_background_outlive_an_outage_until_they_expire(
    registry: Registry,
    make_dev_idp: Callable[..., DevIdP],
    tmp_path: Path,
    make_gate: Callable[..., Gate],
) -> None:
    from opkey.admission.refresh import KeyRefresher

    idp = make_dev_idp()
    image = registry.push("refreshed")
    sign(registry.client, image, idp)
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp))
    refresher = KeyRefresher(gate.policies.jwks_clients())
    assert refresher.refresh_all()
    idp.stop()
    assert not refresher.refresh_all(), "the provider is gone"
    result = judge(gate, str(image))
    assert result.response is not None
    assert result.response.allowed, result.response.message


def test_an_unexpected_error_denies_never_admits(
    registry: Registry,
    idp: DevIdP,
    tmp_path: Path,
    make_gate: Callable[..., Gate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = registry.push("broken")
    sign(registry.client, image, idp)
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("opkey.admission.gate.verify_image", broken)
    result = judge(gate, str(image))
    assert result.response is not None
    assert not result.response.allowed
    assert "internal error (RuntimeError)" in (result.response.message or "")
    assert len(gate.cache) == 0


def test_a_review_that_cannot_be_read_is_answered_as_the_core_says(
    idp: DevIdP, tmp_path: Path, make_gate: Callable[..., Gate]
) -> None:
    gate = make_gate(policy_file(tmp_path / "policy.toml", idp))
    unreadable = asyncio.run(gate.judge(b"{not json"))
    assert unreadable.response is None
    assert unreadable.error is not None
    body = review(pod("x", "ghcr.io/acme/app:1")).replace(b'"Pod"}', b'"Pods"}', 1)
    named = asyncio.run(gate.judge(body))
    assert named.response is not None
    assert named.response.code == 400
    assert not named.response.allowed


# -- policies ----------------------------------------------------------------------------------


def test_the_fingerprint_changes_with_the_policy_the_pinned_keys_and_the_flags(
    idp: DevIdP, tmp_path: Path
) -> None:
    import urllib.request

    policy = policy_file(tmp_path / "policy.toml", idp)
    jwks = tmp_path / "jwks.json"
    with urllib.request.urlopen(f"{idp.issuer}/.well-known/jwks", timeout=5) as reply:
        jwks.write_bytes(reply.read())
    pinned = KeyOptions(jwks_file=jwks)
    base = load_gate_policy(policy, pinned).fingerprint
    assert load_gate_policy(policy, pinned).fingerprint == base, "stable for the same material"
    assert load_gate_policy(policy, KeyOptions()).fingerprint != base
    assert load_gate_policy(policy, KeyOptions(jwks_file=jwks, offline=True)).fingerprint != base
    jwks.write_bytes(jwks.read_bytes() + b"\n")
    assert load_gate_policy(policy, pinned).fingerprint != base, "the pinned key file changed"
    policy_file(policy, idp, OTHER_REPO_ID)
    assert load_gate_policy(policy, pinned).fingerprint != base
    logged = KeyOptions(jwks_file=jwks, tlogs=(LogPin(_log_key(tmp_path / "log.pem"), "a"),))
    with_log = load_gate_policy(policy, logged).fingerprint
    assert with_log != load_gate_policy(policy, pinned).fingerprint
    required = dataclasses.replace(logged, require_tlog=True)
    assert load_gate_policy(policy, required).fingerprint != with_log
    other_origin = dataclasses.replace(logged, tlogs=(LogPin(tmp_path / "log.pem", "b"),))
    assert load_gate_policy(policy, other_origin).fingerprint != with_log
    _log_key(tmp_path / "log.pem")
    assert load_gate_policy(policy, logged).fingerprint != with_log, "the log key changed"


def _check(gate: Gate, image: ImageReference) -> ImageCheck:
    plan = plan_admission(parse_admission_review(review(pod("p", str(image)))), gate.config)
    return plan.checks[0]
