"""Policy files from untrusted places can never make a forged identity verify.

A deploy gate may verify with the policy file of the repository being deployed. Its author is
the attacker: they write a strict-looking policy (the GitHub Actions issuer, GQ256 required, the
victim's ``repository_id``) and add a lever that decides *which tokens count as GitHub's*:

* a key file of their choosing (``jwks_file``) or an archive holding their key (``archive``):
  then a token they sign themselves "is" GitHub's;
* a redefinition of the well-known issuer: ``commitment = "gq-bound"`` with a
  ``gq_audience_prefix`` matching the audience of GitHub ID tokens that were sent to other
  services (any relying party, AWS STS in the real token used here, holds them): GQ-binding
  one to their own key needs no secret at all;
* a ``client_id`` for Google of their own application: every login to it (with the nonce the
  application chose) becomes a PK token for the victim.

Each is refused unless the verifier says the file is trusted configuration
(``--trust-policy-anchors``, ``KeyOptions(policy_anchors=True)``); every test also shows the
forgery *does* verify with that trust, so the refusal is what stops it. There is no setting that
points a well-known issuer's URL elsewhere (no ``jwks_uri``; unknown keys are errors), and an
issuer URL spelled differently is another issuer that GitHub's tokens never match.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from opkey import Digest, KeyOptions, Trust
from opkey.cli import main
from opkey.errors import ConfigError, FormatError
from opkey.issuers import CommitmentType
from opkey.jwks.archive import JwksArchive
from opkey.policy.file import load_policy_file, parse_policy_file
from opkey.signer import Signer
from tests.helpers import NOW, MiniOP
from tests.security.sec_common import (
    GHA,
    GITHUB,
    GOOGLE,
    entry,
    gh_at,
    gh_pktoken,
    mint_pktoken,
)

DIGEST = Digest("sha256:" + "de" * 32)
#: The victim: a real repository (from the real 2023 token below).
REAL = "gha-2023-10-01_qoomon_sandbox.jwt"


def _claims_of_real() -> dict[str, Any]:
    from opkey.jose import parse_compact

    token = (GHA / REAL).read_text().strip()
    payload: dict[str, Any] = json.loads(parse_compact(token).payload())
    return payload


REAL_CLAIMS = _claims_of_real()
VICTIM = {
    "repository_id": REAL_CLAIMS["repository_id"],
    "repository_owner_id": REAL_CLAIMS["repository_owner_id"],
}
STRICT_SIGNER = (
    '[[signers]]\nname = "release"\n'
    f'github = {{ repository_id = "{VICTIM["repository_id"]}", '
    f'repository_owner_id = "{VICTIM["repository_owner_id"]}" }}\n'
)
AT = NOW.isoformat()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _verify(tmp_path: Path, policy: str, bundle: bytes, *extra: str, at: str = AT) -> list[str]:
    repo = tmp_path / "untrusted-repo"
    repo.mkdir(exist_ok=True)
    _write(repo / "policy.toml", policy.encode())
    _write(tmp_path / "bundle.json", bundle)
    return ["verify", "--digest", str(DIGEST), "--bundle", str(tmp_path / "bundle.json"),
            "--policy", str(repo / "policy.toml"), "--at", at, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def attacker() -> MiniOP:
    """The attacker's own key, calling itself GitHub."""
    return MiniOP(issuer=GITHUB, kid="attacker-key")


def _forged_bundle(attacker: MiniOP) -> bytes:
    """A GQ256 PK token in GitHub's shape, for the victim's repository, signed by the attacker."""
    wrapped = mint_pktoken(
        attacker,
        commitment=CommitmentType.AUD,
        gq_sign=True,
        sub="repo:victim/app:ref:refs/heads/main",
        repository="victim/app",
        ref="refs/heads/main",
        **VICTIM,
    )
    return Signer(wrapped.pktoken, wrapped.key).sign_digest(DIGEST).to_json()


STRICT_ISSUER = f"""
version = 1
[[issuers]]
issuer = "{GITHUB}"
commitment = "aud"
require_gq = true
algorithms = ["GQ256"]
"""


def test_a_key_file_of_the_authors_choosing(
    attacker: MiniOP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "untrusted-repo"
    repo.mkdir()
    _write(repo / "github-keys.json", json.dumps(attacker.keyset.to_dict()).encode())
    policy = STRICT_ISSUER + 'jwks_file = "github-keys.json"\n' + STRICT_SIGNER
    argv = _verify(tmp_path, policy, _forged_bundle(attacker))
    for extra in ([], ["--offline"], ["--jwks", str(GHA / "github-jwks_2025_crates-io.json")]):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert "issuers[0].jwks_file: the policy file names key material" in err, err
    with pytest.raises(ConfigError, match=r"issuers\[0\]\.jwks_file: .* key material") as info:
        Trust.build(load_policy_file(repo / "policy.toml").issuers, KeyOptions(offline=True))
    assert info.value.found == str(repo / "github-keys.json")
    # The lever is real: trusting the file, the forgery verifies as the victim's workflow.
    assert main([*argv, "--offline", "--trust-policy-anchors"]) == 0
    assert "Verified" in capsys.readouterr().out


def test_an_archive_of_the_authors_choosing(
    attacker: MiniOP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "untrusted-repo"
    repo.mkdir()
    archive = JwksArchive(repo / "keys.sqlite")
    seen = datetime(2025, 1, 1, tzinfo=timezone.utc)
    archive.import_jwks(GITHUB, json.dumps(attacker.keyset.to_dict()), seen)
    policy = STRICT_ISSUER + 'archive = "keys.sqlite"\n' + STRICT_SIGNER
    argv = _verify(tmp_path, policy, _forged_bundle(attacker))
    assert main([*argv, "--offline"]) == 2
    assert "issuers[0].archive: the policy file names key material" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"issuers\[0\]\.archive: .* key material"):
        Trust.build(load_policy_file(repo / "policy.toml").issuers, KeyOptions(offline=True))
    assert main([*argv, "--offline", "--trust-policy-anchors", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signatures"][0]["key_source"] == "archive"


def test_github_redefined_as_gq_bound_with_a_relying_partys_audience(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A *real* GitHub ID token, issued to AWS STS (``aud: sts.amazonaws.com``), GQ-bound by
    whoever holds it to a key of their own. The verifier passes GitHub's genuine keys itself;
    only the file's redefinition of the issuer makes the binding count."""
    assert REAL_CLAIMS["aud"] == "sts.amazonaws.com"
    wrapped = gh_pktoken(REAL, bound=True)
    bundle = Signer(wrapped.pktoken, wrapped.key).sign_digest(DIGEST).to_json()
    policy = (
        f"""
version = 1
[[issuers]]
issuer = "{GITHUB}"
commitment = "gq-bound"
require_gq = true
gq_audience_prefix = "sts."
"""
        + STRICT_SIGNER
    )
    genuine_keys = str(GHA / entry(REAL)["signature_verifies_with"][0])
    at = gh_at(REAL).isoformat()
    argv = [*_verify(tmp_path, policy, bundle, at=at), "--jwks", genuine_keys, "--offline"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "issuers[0].commitment: the policy file changes which tokens count as" in err, err
    assert "commitment, gq_audience_prefix differ from its built-in settings" in err
    assert main([*argv, "--trust-policy-anchors"]) == 0
    capsys.readouterr()
    # Under GitHub's own settings, the same file without the redefinition: refused at the
    # commitment (a GQ-bound token is not an aud commitment).
    honest = policy.replace('commitment = "gq-bound"\n', 'commitment = "aud"\n')
    honest = honest.replace('gq_audience_prefix = "sts."\n', "")
    assert (
        main([*_verify(tmp_path, honest, bundle, at=at), "--jwks", genuine_keys, "--offline"]) == 1
    )
    assert "aud does not commit to this PK token's key" in capsys.readouterr().err


def test_google_with_the_authors_client_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The victim once signed in to the attacker's web application with Google; the
    application chose the nonce (its own key's commitment). ``google`` stands in for Google's
    real key: the verifier pins it itself."""
    google = MiniOP(issuer=GOOGLE, kid="google-key")
    wrapped = mint_pktoken(
        google,
        aud="attacker-app.apps.example",
        azp="attacker-app.apps.example",
        sub="104857600000000000001",
        email="victim@example.com",
        email_verified=True,
    )
    bundle = Signer(wrapped.pktoken, wrapped.key).sign_digest(DIGEST).to_json()
    keys = _write(tmp_path / "google-keys.json", json.dumps(google.keyset.to_dict()).encode())
    policy = f"""
version = 1
[[issuers]]
issuer = "{GOOGLE}"
client_id = "attacker-app.apps.example"
[[signers]]
name = "release-manager"
all_of = [{{ issuer = "{GOOGLE}" }}, {{ claim = "email", equals = "victim@example.com" }}]
"""
    argv = [*_verify(tmp_path, policy, bundle), "--jwks", str(keys), "--offline"]
    assert main(argv) == 2
    assert "issuers[0].client_id: the policy file changes which tokens" in capsys.readouterr().err
    assert main([*argv, "--trust-policy-anchors"]) == 0
    capsys.readouterr()
    # The verifier's own choice of client id (a flag, not the file) is configuration.
    flags = ["--issuer", GOOGLE, "--client-id", "attacker-app.apps.example"]
    flags += ["--claim", "email=victim@example.com", "--jwks", str(keys), "--offline"]
    assert main(["verify", "--digest", str(DIGEST), "--bundle", str(tmp_path / "bundle.json"),
                 "--at", AT, *flags]) == 0  # fmt: skip
    capsys.readouterr()
    # Without the lever, Google's built-in client id: refused at the audience.
    honest = policy.replace('client_id = "attacker-app.apps.example"\n', "")
    assert main([*_verify(tmp_path, honest, bundle), "--jwks", str(keys), "--offline"]) == 1
    assert "does not include client id" in capsys.readouterr().err


REDEFINITIONS: dict[str, tuple[str, str]] = {
    "github-rs256": (
        f'issuer = "{GITHUB}"\ncommitment = "aud"\nrequire_gq = false\nalgorithms = ["RS256"]',
        "algorithms, require_gq",
    ),
    "github-nonce": (
        f'issuer = "{GITHUB}"\ncommitment = "nonce"\nclient_id = "x"',
        "commitment, client_id, algorithms, require_gq",
    ),
    "github-key-bound": (
        f'issuer = "{GITHUB}"\ncommitment = "key-bound"\nclient_id = "x"\nalgorithms = ["RS256"]',
        "commitment, client_id, algorithms, require_gq",
    ),
    "gitlab-prefix": (
        'issuer = "https://gitlab.com"\ncommitment = "gq-bound"\ngq_audience_prefix = "https://"',
        "gq_audience_prefix",
    ),
    "gitlab-aud": ('issuer = "https://gitlab.com"\ncommitment = "aud"', "commitment"),
    "codeberg-gq-bound": (
        'issuer = "https://codeberg.org/api/actions"\ncommitment = "gq-bound"',
        "commitment",
    ),
    "google-client": (f'issuer = "{GOOGLE}"\nclient_id = "mine"', "client_id"),
    "google-ps256": (
        f'issuer = "{GOOGLE}"\ncommitment = "nonce"\nclient_id = '
        '"206584157355-7cbe4s640tvm7naoludob4ut1emii7sf.apps.googleusercontent.com"\n'
        'algorithms = ["PS256"]',
        "algorithms",
    ),
}


@pytest.mark.parametrize("name", sorted(REDEFINITIONS))
def test_every_redefinition_of_a_well_known_issuer_is_trust(name: str) -> None:
    table, keys = REDEFINITIONS[name]
    issuer = table.split('"')[1]
    text = f"""version = 1
[[issuers]]
{table}
[[signers]]
name = "s"
issuer = "{issuer}"
"""
    policy = parse_policy_file(text)
    assert ", ".join(policy.issuers[0].redefines) == keys
    with pytest.raises(ConfigError, match=rf"issuers\[0\]\.{keys.split(',')[0]}: .*{keys}"):
        Trust.build(policy.issuers, KeyOptions(offline=True, jwks_file=GHA / "x.json"))
    # Trusted, it is configuration like any other (the pinned file is then read).
    with pytest.raises(FormatError, match="cannot read JWKS file"):
        Trust.build(policy.issuers, KeyOptions(jwks_file=GHA / "x.json", policy_anchors=True))


NARROWINGS = {
    "github-in-full": f'issuer = "{GITHUB}"\ncommitment = "aud"\nrequire_gq = true\n'
    'algorithms = ["GQ256"]',
    "github-expiry": f'issuer = "{GITHUB}"\nexpiry = "24h"\nleeway = 0',
    "google-rs256-only": f'issuer = "{GOOGLE}"\ncommitment = "nonce"\nclient_id = '
    '"206584157355-7cbe4s640tvm7naoludob4ut1emii7sf.apps.googleusercontent.com"\n'
    'algorithms = ["RS256"]',
    "gitlab-preset": 'issuer = "https://gitlab.com"\nexpiry = "oidc"',
    "own-issuer": 'issuer = "https://sso.example.com"\ncommitment = "nonce"\nclient_id = "c"',
}


@pytest.mark.parametrize("name", sorted(NARROWINGS))
def test_narrowing_a_well_known_issuer_needs_no_trust(name: str) -> None:
    issuer = NARROWINGS[name].split('"')[1]
    policy = parse_policy_file(
        f'version = 1\n[[issuers]]\n{NARROWINGS[name]}\n[[signers]]\nname = "s"\n'
        f'issuer = "{issuer}"\n'
    )
    assert policy.issuers[0].redefines == ()
    keys = GHA / "github-jwks_2025_crates-io.json"
    trust = Trust.build(policy.issuers, KeyOptions(offline=True, jwks_file=keys))
    assert trust.urls == (issuer,)


def test_no_setting_points_a_well_known_issuer_elsewhere(tmp_path: Path) -> None:
    for key in ("jwks_uri", "discovery_url", "jwks_url", "keys_url", "url"):
        with pytest.raises(ConfigError, match=rf"issuers\[0\]\.{key}: unknown key"):
            parse_policy_file(
                f'version = 1\n[[issuers]]\nissuer = "{GITHUB}"\n{key} = "https://evil.example"\n'
                f'[[signers]]\nname = "s"\nissuer = "{GITHUB}"\n'
            )


@pytest.mark.parametrize(
    "spelling",
    [GITHUB + "/", GITHUB.upper(), GITHUB.replace("https", "http"), GITHUB + "#", GITHUB + "/."],
)
def test_a_respelled_issuer_is_another_issuer(spelling: str) -> None:
    """A file may configure any issuer in full, but a URL spelled unlike GitHub's is not
    GitHub's: real GitHub tokens never match it, so it cannot borrow their identities."""
    from opkey.errors import KeyNotFoundError
    from opkey.jwks.keyset import KeySet
    from opkey.jwks.sources import PinnedKeys
    from opkey.verification.trust import TrustedIssuer
    from opkey.verification.verifier import Verifier

    policy = parse_policy_file(
        f'version = 1\n[[issuers]]\nissuer = "{spelling}"\ncommitment = "aud"\n'
        f'[[signers]]\nname = "s"\ngithub = {{ issuer = "{spelling}", repository_id = "1" }}\n'
    )
    assert policy.issuers[0].redefines == ()
    real = KeySet.from_json((GHA / "github-jwks_2022_step-security.json").read_bytes())
    config = policy.issuers[0].config
    verifier = Verifier(Trust([TrustedIssuer(config, [PinnedKeys({spelling: real})])]))
    wrapped = gh_pktoken(REAL)
    with pytest.raises(KeyNotFoundError, match="is not trusted by this verifier"):
        verifier.identify(wrapped.pktoken, at=gh_at(REAL))
