"""opkey → OpenPubkey Go: PK tokens and signed messages made by opkey, checked by the Go library.

Every token comes from the dev IdP (a real OpenID provider on loopback) through opkey's own
providers. Go parses both serializations, must compute the same hash, commitment, compact and
JSON bytes, and must accept the token with ``VerifyPKToken`` configured as its own providers
configure themselves, with the provider keys pinned, then every message with
``VerifySignedMessage``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import pytest

from opkey import gq
from opkey.jose import b64url_encode
from opkey.keys import SigningKey, generate_signing_key
from opkey.message import sign_message
from opkey.pktoken import PKToken
from opkey.providers import (
    BrowserProvider,
    DeviceFlowProvider,
    DevicePrompt,
    GitHubActionsProvider,
    GitLabCIProvider,
    OidcClient,
)
from opkey.providers.forgejo import ForgejoActionsProvider
from opkey.sandbox.devidp import DevIdP
from tests.interop.openpubkey_harness import go_inspect, go_verify

ALGS = ["ES256", "EdDSA", "RS256"]
#: A CIC extra claim with everything Go's JSON encoder escapes or keeps as UTF-8.
AWKWARD = {"note": "<a href='x'>&amp;</a> ünïcødé ✓ line\u2028separator \u2029 end"}


class Made(NamedTuple):
    """A PK token made by opkey, its key, and how Go must verify it."""

    pktoken: PKToken
    key: SigningKey
    style: str
    client_id: str | None = None
    gq_only: bool = False


def github(idp: DevIdP, key: SigningKey, extra: dict[str, str] | None = None) -> Made:
    pktoken = GitHubActionsProvider.from_env(idp.env()).get_pktoken(key, extra_claims=extra)
    return Made(pktoken, key, "github")


def forgejo(idp: DevIdP, key: SigningKey, extra: dict[str, str] | None = None) -> Made:
    provider = ForgejoActionsProvider(
        request_url=idp.github_request_url, request_token=idp.request_token, issuer=idp.issuer
    )
    return Made(provider.get_pktoken(key, extra_claims=extra), key, "github")


def gitlab(idp: DevIdP, key: SigningKey, extra: dict[str, str] | None = None) -> Made:
    provider = GitLabCIProvider(id_token=idp.mint_gitlab_token(), issuer=idp.issuer)
    return Made(provider.get_pktoken(key, extra_claims=extra), key, "gitlab")


def _follow(url: str) -> bool:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        response.read()
    return True


def browser(idp: DevIdP, key: SigningKey, extra: dict[str, str] | None = None) -> Made:
    client = OidcClient(issuer=idp.issuer, client_id=idp.client_id)
    provider = BrowserProvider(client, opener=_follow, timeout=20)
    return Made(provider.get_pktoken(key, extra_claims=extra), key, "standard", idp.client_id)


def device(idp: DevIdP, key: SigningKey, extra: dict[str, str] | None = None) -> Made:
    def approve(prompt: DevicePrompt) -> None:
        threading.Timer(0.1, idp.approve_device, args=(prompt.user_code,)).start()

    client = OidcClient(issuer=idp.issuer, client_id=idp.client_id)
    provider = DeviceFlowProvider(client, on_prompt=approve, sleep=lambda s: None)
    return Made(provider.get_pktoken(key, extra_claims=extra), key, "standard", idp.client_id)


def gq_signed(made: Made, idp: DevIdP) -> Made:
    """The browser token in its GQ256 form, as Go's StandardOp makes it with GQSign."""
    key = idp.keyring.active.public_jwk
    token = gq.sign_jwt(made.pktoken.op_token(), key)
    pktoken = PKToken.create(token, made.pktoken.cic_claims, made.key)
    return made._replace(pktoken=pktoken, gq_only=True)


MAKERS: dict[str, Callable[[DevIdP, SigningKey, dict[str, str] | None], Made]] = {
    "github": github,
    "forgejo": forgejo,
    "gitlab": gitlab,
    "browser": browser,
    "device": device,
    "browser-gq": lambda idp, key, extra: gq_signed(browser(idp, key, extra), idp),
    "device-gq": lambda idp, key, extra: gq_signed(device(idp, key, extra), idp),
}


def check_with_go(made: Made, idp: DevIdP, messages: list[bytes]) -> None:
    """Go computes what opkey computes, and accepts the token and the messages."""
    pktoken = made.pktoken
    for form in ("json", "compact"):
        answer = go_inspect(pktoken, form=form)
        assert answer["ok"], answer
        facts = answer["facts"]
        assert facts["hash"] == pktoken.hash()
        assert facts["commitment"] == pktoken.cic_claims.commitment()
        # The JSON form carries no refreshed ID token, in Go as in opkey.
        carried = pktoken if form == "compact" else replace(pktoken, fresh_id_token=None)
        assert facts["compact"] == carried.to_compact()
        assert facts["json"].encode() == pktoken.to_json()
        assert facts["issuer"] == idp.issuer
        assert facts["provider_alg"] == pktoken.op.alg
    osms = [sign_message(m, pktoken, made.key) for m in messages]
    config: dict[str, Any] = {
        "issuer": idp.issuer,
        "style": made.style,
        "jwks": idp.keyring.jwks(),
        "client_id": made.client_id,
        "gq_only": made.gq_only,
    }
    for form in ("json", "compact"):
        answer = go_verify(pktoken, form=form, messages=osms, **config)
        assert answer["ok"], answer
        assert [m["ok"] for m in answer["messages"]] == [True] * len(messages), answer
        assert [m["content"] for m in answer["messages"]] == messages


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("maker", sorted(MAKERS))
def test_go_accepts_opkey_pktokens(dev_idp: DevIdP, maker: str, alg: str) -> None:
    made = MAKERS[maker](dev_idp, generate_signing_key(alg), None)
    assert made.pktoken.op.alg == ("RS256" if maker in ("browser", "device") else "GQ256")
    check_with_go(made, dev_idp, [b"hello, OpenPubkey", b"\x00\xffbinary"])


@pytest.mark.parametrize("maker", ["github", "gitlab", "browser", "device-gq"])
def test_go_commitment_of_extra_claims_go_escapes(dev_idp: DevIdP, maker: str) -> None:
    made = MAKERS[maker](dev_idp, generate_signing_key("ES256"), AWKWARD)
    assert made.pktoken.cic_claims.extra == AWKWARD
    # The escapes really are in the hashed bytes: this is what Go's encoder must reproduce.
    header = made.pktoken.cic_claims.header_bytes()
    assert b"\\u003ca href='x'\\u003e\\u0026amp;" in header
    assert b"\\u2028" in header
    assert b"\\u2029" in header
    assert "ünïcødé ✓".encode() in header
    check_with_go(made, dev_idp, [b"extra claims"])


def test_go_reads_the_refreshed_id_token_suffix(dev_idp: DevIdP) -> None:
    made = browser(dev_idp, generate_signing_key("ES256"))
    fresh = dev_idp.mint_id_token()
    pktoken = replace(made.pktoken, fresh_id_token=fresh)
    assert pktoken.to_compact().endswith("." + fresh)
    answer = go_inspect(pktoken, form="compact")
    assert answer["ok"], answer
    assert answer["facts"]["fresh_id_token"] == fresh
    assert answer["facts"]["compact"] == pktoken.to_compact()
    # The refreshed token is not part of the hash (Go's JSON form leaves it out too).
    assert answer["facts"]["hash"] == made.pktoken.hash() == pktoken.hash()
    check_with_go(made._replace(pktoken=pktoken), dev_idp, [b"refreshed"])


def test_go_rejects_an_opkey_message_for_another_pktoken(dev_idp: DevIdP) -> None:
    """The harness can fail: a message signed for one PK token is refused with another."""
    key = generate_signing_key()
    first = github(dev_idp, key).pktoken
    second = github(dev_idp, key).pktoken
    osm = sign_message(b"moved", first, key)
    answer = go_verify(
        second, messages=[osm], issuer=dev_idp.issuer, style="github", jwks=dev_idp.keyring.jwks()
    )
    assert answer["ok"], answer
    assert not answer["messages"][0]["ok"]
    assert "kid" in answer["messages"][0]["error"]


@pytest.mark.registry
def test_go_accepts_opkey_image_signature_messages(
    dev_idp: DevIdP, registry_client: Any, registry_image: Any
) -> None:
    """An image signature layer's OSM, stored detached, re-attached to the layer's payload."""
    from opkey.cosign import OPKEY_OSM, OPKEY_PKTOKEN
    from opkey.images import sign_image
    from opkey.registry.signatures import list_signatures
    from opkey.signer import Signer

    for alg in ALGS:
        signer = Signer.from_provider(GitHubActionsProvider.from_env(dev_idp.env()), alg=alg)
        signed = sign_image(registry_client, registry_image, signer)
        layers = [
            layer
            for layer in list_signatures(registry_client, signed)
            if layer.annotations.get(OPKEY_PKTOKEN) == signer.pktoken.to_compact()
        ]
        assert len(layers) == 1
        layer = layers[0]
        header, empty, signature = layer.annotations[OPKEY_OSM].split(".")
        assert empty == ""
        osm = f"{header}.{b64url_encode(layer.payload)}.{signature}"
        answer = go_verify(
            layer.annotations[OPKEY_PKTOKEN],
            form="compact",
            messages=[osm],
            issuer=dev_idp.issuer,
            style="github",
            jwks=dev_idp.keyring.jwks(),
        )
        assert answer["ok"], answer
        assert answer["messages"][0] == {"ok": True, "content": layer.payload}
