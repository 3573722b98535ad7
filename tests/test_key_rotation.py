"""Key rotation: live JWKS first, then the JWKS archive.

Real data: the 2022 GitHub Actions tokens were signed with key 78167F72…, which GitHub no longer
publishes. With a 2025 JWKS served as the live set, they verify only when the archive holds the
2022 snapshot. A routing transport sends GitHub's issuer URL to a local pytest-httpserver, the
way DNS would, so the client's real HTTP path runs without leaving loopback.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from opkey import gq, issuers
from opkey.cic import ClientInstanceClaims
from opkey.digest import Digest
from opkey.errors import CommitmentError, KeyNotFoundError, OpkeyError
from opkey.jwks.archive import JwksArchive
from opkey.jwks.client import JwksClient
from opkey.jwks.keyset import KeySet
from opkey.jwks.sources import ArchiveKeys, FallbackKeys, LiveKeys
from opkey.keys import generate_signing_key
from opkey.pktoken import PKToken
from opkey.policy.workloads import GitHubWorkflow
from opkey.providers import GitHubActionsProvider
from opkey.signer import Signer
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from opkey.verify import op_key_id, verify_op_signature, verify_pktoken
from tests.helpers import RoutingTransport

DATA = Path(__file__).parent / "data" / "github-actions"
MANIFEST = json.loads((Path(__file__).parent / "data" / "manifest.json").read_text())["tokens"]
TOKENS_2022 = [e for e in MANIFEST if e["header"]["kid"].startswith("78167F72")]
GITHUB = issuers.GITHUB_ACTIONS_ISSUER


@pytest.fixture
def github_live(httpserver: HTTPServer) -> JwksClient:
    """A JWKS client whose view of GitHub's issuer is a 2025 JWKS snapshot."""
    discovery = {
        "issuer": GITHUB,
        "jwks_uri": f"{GITHUB}/.well-known/jwks",
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(discovery)
    httpserver.expect_request("/.well-known/jwks").respond_with_data(
        (DATA / "github-jwks_2025_crates-io.json").read_bytes(), content_type="application/json"
    )
    transport = RoutingTransport({GITHUB: httpserver.url_for("").rstrip("/")})
    # allow_private: the routed "GitHub" host is resolved by the test transport, not DNS
    return JwksClient([GITHUB], transport=transport, allow_private=True)


def _pktoken_around(entry: dict[str, object]) -> PKToken:
    """The real token, GQ-signed with its real key, wrapped with a fresh CIC."""
    token = (DATA / str(entry["file"])).read_text().strip()
    key_2022 = KeySet.from_json((DATA / "github-jwks_2022_step-security.json").read_bytes())
    kid = entry["header"]["kid"]  # type: ignore[index]
    gq_token = gq.sign_jwt(token, key_2022.by_kid(kid))
    user = generate_signing_key()
    return PKToken.create(gq_token, ClientInstanceClaims.create(user.public_jwk), user)


def test_live_jwks_is_2025(github_live: JwksClient) -> None:
    kids = {k.kid for k in github_live.keys(GITHUB)}
    assert "38826b17-6a30-5f9b-b169-8beb8202f723" in kids
    assert not any(k and k.startswith("78167F72") for k in kids)


@pytest.mark.parametrize("entry", TOKENS_2022, ids=[e["file"][:22] for e in TOKENS_2022])
def test_2022_tokens_verify_through_the_archive(
    entry: dict[str, object], github_live: JwksClient, tmp_path: Path
) -> None:
    archive = JwksArchive(tmp_path / "archive.sqlite")
    archive.import_jwks(
        GITHUB,
        (DATA / "github-jwks_2022_step-security.json").read_bytes(),
        datetime(2022, 8, 1, tzinfo=timezone.utc),
    )
    pkt = _pktoken_around(entry)
    kid, jkt = op_key_id(pkt)
    found = FallbackKeys([LiveKeys(github_live), ArchiveKeys(archive)]).find_key(
        GITHUB, kid=kid, jkt=jkt
    )
    assert found.source == "archive"
    key = found.key
    assert key.kid == entry["header"]["kid"]  # type: ignore[index]
    verify_op_signature(pkt, "GQ256", key)
    # The whole PK token check gets past keys and the provider's signature; it stops only at
    # the commitment, because these real ID tokens never committed to our test key.
    iat = entry["iat"]
    assert isinstance(iat, int)
    with pytest.raises(CommitmentError):
        verify_pktoken(
            pkt, issuers.github_actions(), found, now=datetime.fromtimestamp(iat, timezone.utc)
        )


@pytest.mark.parametrize("entry", TOKENS_2022[:2], ids=[e["file"][:22] for e in TOKENS_2022[:2]])
def test_2022_tokens_fail_clearly_without_the_archive(
    entry: dict[str, object], github_live: JwksClient
) -> None:
    pkt = _pktoken_around(entry)
    kid, jkt = op_key_id(pkt)
    with pytest.raises(KeyNotFoundError, match="78167F72") as info:
        FallbackKeys([LiveKeys(github_live)]).find_key(GITHUB, kid=kid, jkt=jkt)
    assert "https://token.actions.githubusercontent.com" in str(info.value)


def test_archive_records_what_the_live_client_sees(github_live: JwksClient, tmp_path: Path) -> None:
    archive = JwksArchive(tmp_path / "archive.sqlite")
    client = JwksClient(
        [GITHUB], transport=github_live._transport, allow_private=True, observer=archive.record
    )
    client.keys(GITHUB)
    assert {e.kid for e in archive.entries(GITHUB)} >= {"38826b17-6a30-5f9b-b169-8beb8202f723"}


def test_sixteen_threads_verify_while_the_provider_rotates(
    make_dev_idp: object, tmp_path: Path
) -> None:
    """Bundles signed under successive keys keep verifying while keys rotate out of the JWKS."""
    assert callable(make_dev_idp)
    idp = make_dev_idp()
    archive = JwksArchive(tmp_path / "archive.sqlite")
    # No refresh rate limit here: it is tested on its own (tests/test_jwks.py), and it would
    # refuse a key used within the interval after the provider started using it.
    client = JwksClient([idp.issuer], ttl=0.5, min_refresh_interval=0, observer=archive.record)
    verifier = Verifier(
        Trust(
            [
                TrustedIssuer(
                    issuers.github_actions(issuer=idp.issuer),
                    [LiveKeys(client), ArchiveKeys(archive)],
                )
            ]
        ),
        cache_size=8,  # small, so that cache misses and key lookups keep happening
    )
    workload = idp.provider.settings.github
    policy = GitHubWorkflow(issuer=idp.issuer, repository_id=workload.repository_id)
    digest = Digest.of_bytes(b"release artifact")
    signer_jwks = JwksClient([idp.issuer], min_refresh_interval=0)
    provider = GitHubActionsProvider.from_env(idp.env(), issuer=idp.issuer, jwks=signer_jwks)

    bundles: list[object] = []
    lock = threading.Lock()

    def sign_batch(count: int) -> None:
        batch = [Signer.from_provider(provider).sign_digest(digest) for _ in range(count)]
        with lock:
            bundles.extend(batch)

    sign_batch(6)
    stop = threading.Event()
    errors: list[BaseException] = []
    verified = [0] * 16
    sources: set[str] = set()

    def worker(index: int) -> None:
        rng = random.Random(index)
        while not stop.is_set() or verified[index] < 10:
            with lock:
                bundle = rng.choice(bundles)
            try:
                identity = verifier.verify_bundle(bundle, digest, policy=policy)  # type: ignore[arg-type]
            except OpkeyError as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return
            sources.add(identity.key_source)
            verified[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    kids = {idp.active_kid}
    for _ in range(3):
        kids.add(idp.rotate_key(keep_old=False))
        # The verifier sees each key while it is published (as a deploy gate polling the
        # JWKS does), however slowly its threads run on a loaded machine.
        client.invalidate(idp.issuer)
        client.keys(idp.issuer)
        sign_batch(6)
    time.sleep(0.8)  # past the JWKS TTL: the live set no longer has the old keys
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[:3]
    assert all(count >= 10 for count in verified)
    assert sources == {"live", "archive"}, sources
    assert len(kids) == 4
    archived = {e.kid for e in archive.entries(idp.issuer)}
    assert kids <= archived, "every key the verifier saw is in the archive"
    live = {k.kid for k in client.keys(idp.issuer)}
    assert live == {idp.active_kid}, "old keys are really gone from the live JWKS"
