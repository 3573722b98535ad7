"""OpenPubkey Go → opkey: PK tokens and signed messages made by OpenPubkey's own client.

Go's mock provider (GQ on and off, every commit type), its key-binding provider through a real
loopback login against Go's mock OP, and its real GitLab CI and GitHub Actions providers
pointed at opkey's dev IdP (the GitHub one's built-in issuer routed to it) make the tokens;
opkey parses both serializations, computes the same bytes, and verifies them through the
library and through the command line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from opkey import issuers
from opkey.artifact import artifact_statement
from opkey.bundle import BUNDLE_MEDIA_TYPE
from opkey.cli import main
from opkey.digest import Digest
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jwks.client import JwksClient
from opkey.jwks.keyset import KeySet
from opkey.message import verify_message
from opkey.pktoken import PKToken
from opkey.sandbox.devidp import DevIdP
from opkey.verify import verify_pktoken
from tests.interop.openpubkey_harness import go_mint

ALGS = ["ES256", "EdDSA", "RS256"]
MESSAGES = [b"signed by OpenPubkey Go", b"\x00\x01binary\xff"]


def now() -> datetime:
    return datetime.now(timezone.utc)


def mock_config(minted: dict[str, Any], commit: str, gq_sign: bool) -> IssuerConfig:
    """opkey's settings for Go's mock provider, as Go's verifier is configured for it."""
    issuer = minted["issuer"]
    gq_only = gq_sign or commit == "gq_bound"
    algorithms = frozenset({"GQ256"} if gq_only else {"RS256"})
    if commit == "nonce":
        return IssuerConfig(
            issuer=issuer,
            commitment=CommitmentType.NONCE,
            algorithms=algorithms,
            require_gq=gq_only,
            client_id=minted["client_id"],
        )
    if commit == "aud":
        return IssuerConfig(
            issuer=issuer, commitment=CommitmentType.AUD, algorithms=algorithms, require_gq=gq_only
        )
    return issuers.gitlab_ci(issuer=issuer)


def check_go_token(minted: dict[str, Any], config: IssuerConfig, keys: Any) -> PKToken:
    """opkey reads both forms, computes Go's bytes, verifies the token and every OSM."""
    facts = minted["facts"]
    from_json = PKToken.from_json(json.dumps(minted["pktoken_json"]))
    from_compact = PKToken.from_compact(minted["pktoken_compact"])
    for pktoken in (from_json, from_compact):
        assert pktoken.hash() == facts["hash"]
        assert pktoken.cic_claims.commitment() == facts["commitment"]
        assert pktoken.to_json() == facts["json"].encode()
        assert pktoken.op.alg == facts["provider_alg"]
        verified = verify_pktoken(pktoken, config, keys, now=now())
        assert verified.issuer == minted["issuer"]
        contents = [verify_message(osm, pktoken) for osm in minted["osms"]]
        assert contents == MESSAGES
    assert from_compact.to_compact() == minted["pktoken_compact"]
    assert from_compact.fresh_id_token == (facts.get("fresh_id_token") or None)
    return from_compact


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize(
    ("commit", "gq_sign"),
    [("nonce", False), ("nonce", True), ("aud", False), ("aud", True), ("gq_bound", True)],
)
def test_opkey_accepts_go_mock_provider_tokens(commit: str, gq_sign: bool, alg: str) -> None:
    minted = go_mint(
        provider="mock", commit_type=commit, gq_sign=gq_sign, alg=alg, messages=MESSAGES
    )
    pktoken = check_go_token(
        minted, mock_config(minted, commit, gq_sign), KeySet.from_dict(minted["jwks"])
    )
    assert pktoken.op.alg == ("GQ256" if gq_sign else "RS256")
    assert pktoken.cic_claims.alg == alg
    if commit == "gq_bound":
        assert pktoken.op.header["cic"] == pktoken.cic_claims.commitment()


def test_opkey_accepts_go_extra_claims() -> None:
    extra = {"att": "<&>", "note": "ünïcødé\u2028"}
    minted = go_mint(
        provider="mock", commit_type="aud", gq_sign=True, extra_claims=extra, messages=MESSAGES
    )
    pktoken = check_go_token(
        minted, mock_config(minted, "aud", True), KeySet.from_dict(minted["jwks"])
    )
    assert dict(pktoken.cic_claims.extra) == extra


def test_opkey_reads_go_refreshed_id_token() -> None:
    minted = go_mint(provider="mock", commit_type="nonce", refresh=True, messages=MESSAGES)
    assert minted["facts"]["fresh_id_token"]
    pktoken = check_go_token(
        minted, mock_config(minted, "nonce", False), KeySet.from_dict(minted["jwks"])
    )
    assert pktoken.fresh_id_token == minted["facts"]["fresh_id_token"]
    assert minted["pktoken_compact"].endswith("." + minted["facts"]["fresh_id_token"])


@pytest.mark.parametrize("alg", ALGS)
def test_opkey_accepts_go_key_bound_tokens(alg: str) -> None:
    """OpenPubkey's key-binding provider, through its loopback login and DPoP token request."""
    minted = go_mint(provider="keybound", alg=alg, messages=MESSAGES)
    config = issuers.oidc_key_bound(minted["issuer"], minted["client_id"])
    pktoken = check_go_token(minted, config, KeySet.from_dict(minted["jwks"]))
    assert pktoken.op.header["typ"] == "dpop+id_token"
    assert "jwk" in pktoken.claims["cnf"]
    # The same token is not a nonce-committed one, whatever its nonce says.
    with pytest.raises(Exception, match="key-bound"):
        verify_pktoken(
            pktoken,
            issuers.oidc(minted["issuer"], minted["client_id"]),
            KeySet.from_dict(minted["jwks"]),
            now=now(),
        )


@pytest.mark.parametrize("alg", ALGS)
def test_opkey_accepts_go_gitlab_ci_provider_on_the_dev_idp(dev_idp: DevIdP, alg: str) -> None:
    """Go's real GitlabCiOp: the job's ID token from the dev IdP, GQ-bound by Go, its keys
    fetched by Go through the dev IdP's discovery; opkey fetches them again itself."""
    minted = go_mint(
        provider="gitlab",
        issuer=dev_idp.issuer,
        id_token=dev_idp.mint_gitlab_token(),
        alg=alg,
        messages=MESSAGES,
    )
    assert minted["jwks"] == dev_idp.keyring.jwks()
    live = JwksClient([dev_idp.issuer]).keys(dev_idp.issuer)
    pktoken = check_go_token(minted, issuers.gitlab_ci(issuer=dev_idp.issuer), live)
    assert pktoken.claims["project_path"] == dev_idp.settings.gitlab.project_path


# -- through the command line ----------------------------------------------------------------


def write_bundle(tmp_path: Path, minted: dict[str, Any]) -> Path:
    path = tmp_path / "go.opkey.json"
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "pktoken": minted["pktoken_json"],
        "signature": minted["osms"][0],
    }
    path.write_text(json.dumps(bundle))
    return path


def test_cli_verifies_go_gitlab_tokens(
    dev_idp: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = Digest.of_bytes(b"an artifact signed by OpenPubkey Go")
    minted = go_mint(
        provider="gitlab",
        issuer=dev_idp.issuer,
        id_token=dev_idp.mint_gitlab_token(),
        messages=[artifact_statement(digest)],
    )
    bundle = write_bundle(tmp_path, minted)
    project = dev_idp.settings.gitlab.project_path
    args = ["verify", "--digest", str(digest), "--bundle", str(bundle), "--json"]
    args += ["--issuer", dev_idp.issuer, "--gitlab-project", project]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verified"] is True
    assert result["signatures"][0]["op_algorithm"] == "GQ256"
    # Another project's policy rejects the same bundle.
    assert main([*args[:-2], "--gitlab-project", "someone/else"]) == 1
    capsys.readouterr()
    # inspect reads Go's compact form and reports Go's hash.
    compact = tmp_path / "go.pkt"
    compact.write_text(minted["pktoken_compact"])
    assert main(["inspect", str(compact)]) == 0
    inspected = json.loads(capsys.readouterr().out)
    assert inspected["pktoken"]["hash"] == minted["facts"]["hash"]
    assert inspected["pktoken"]["commitment"] == minted["facts"]["commitment"]


def test_cli_verifies_go_mock_tokens_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = Digest.of_bytes(b"offline")
    minted = go_mint(
        provider="mock", commit_type="nonce", gq_sign=True, messages=[artifact_statement(digest)]
    )
    bundle = write_bundle(tmp_path, minted)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(minted["jwks"]))
    args = ["verify", "--digest", str(digest), "--bundle", str(bundle), "--offline"]
    args += ["--jwks", str(jwks), "--issuer", minted["issuer"], "--commitment", "nonce"]
    args += ["--client-id", minted["client_id"], "--subject", "me"]
    assert main(args) == 0
    assert "Verified" in capsys.readouterr().out
    assert main([*args[:-1], "someone-else"]) == 1


def test_cli_verifies_go_key_bound_tokens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = Digest.of_bytes(b"key-bound")
    minted = go_mint(provider="keybound", messages=[artifact_statement(digest)])
    bundle = write_bundle(tmp_path, minted)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(minted["jwks"]))
    args = ["verify", "--digest", str(digest), "--bundle", str(bundle), "--offline"]
    args += ["--jwks", str(jwks), "--issuer", minted["issuer"], "--commitment", "key-bound"]
    args += ["--client-id", minted["client_id"], "--subject", "me"]
    assert main(args) == 0
    capsys.readouterr()


# -- OpenPubkey's GitHub Actions provider ----------------------------------------------------

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture
def github_named_idp() -> Iterator[DevIdP]:
    """A dev IdP that calls itself GitHub's issuer: OpenPubkey's GithubOp accepts no other
    (the harness routes its requests for that origin to the dev IdP's loopback address)."""
    with DevIdP(issuer=GITHUB_ISSUER) as idp:
        yield idp


def _github_mint(idp: DevIdP, **request: Any) -> dict[str, Any]:
    return go_mint(
        provider="github",
        request_url=idp.github_request_url,
        request_token=idp.request_token,
        github_route=idp.loopback_url,
        **request,
    )


@pytest.mark.parametrize("alg", ALGS)
def test_opkey_accepts_go_github_actions_provider_tokens(
    github_named_idp: DevIdP, alg: str
) -> None:
    """Go's real GithubOp: it asks the job's token URL for an ID token with the commitment as
    its audience, GQ-signs it under the keys it discovers, and checks it with its own verifier;
    opkey verifies the PK token under the well-known GitHub issuer's settings."""
    minted = _github_mint(github_named_idp, alg=alg, messages=MESSAGES)
    assert minted["issuer"] == GITHUB_ISSUER
    assert minted["jwks"] == github_named_idp.keyring.jwks()
    keys = KeySet.from_dict(github_named_idp.keyring.jwks())
    pktoken = check_go_token(minted, issuers.github_actions(), keys)
    assert pktoken.op.alg == "GQ256"
    assert pktoken.claims["repository"] == github_named_idp.settings.github.repository


def test_cli_verifies_go_github_tokens_with_a_workflow_policy(
    github_named_idp: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = Digest.of_bytes(b"an artifact signed by OpenPubkey Go's GitHub provider")
    minted = _github_mint(github_named_idp, messages=[artifact_statement(digest)])
    bundle = write_bundle(tmp_path, minted)
    jwks = tmp_path / "github-jwks.json"
    jwks.write_text(json.dumps(github_named_idp.keyring.jwks()))
    repository = github_named_idp.settings.github.repository
    args = ["verify", "--digest", str(digest), "--bundle", str(bundle), "--offline"]
    args += ["--issuer", GITHUB_ISSUER, "--jwks", str(jwks)]
    assert main([*args, "--github-repository", repository]) == 0
    # Another repository's policy rejects the same bundle.
    assert main([*args, "--github-repository", "someone/else"]) == 1
    capsys.readouterr()
