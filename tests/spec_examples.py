"""Worked examples for spec/protocol.md, regenerated from the code.

Every example in the spec sits between ``<!-- example: NAME -->`` and ``<!-- /example -->``
markers. ``tests/test_spec.py`` rebuilds each one here, from fixed keys and fixed randomness,
and fails if the spec text differs, so the spec and the code cannot drift apart.

Run ``python -m tests.spec_examples --write`` to rewrite the examples in place after an
intentional format change.

The keys below are test keys published in the spec; they protect nothing.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from opkey import gq
from opkey.cic import ClientInstanceClaims
from opkey.jose import b64url_decode, b64url_encode, go_json
from opkey.keys import PublicJWK, SigningKey
from opkey.message import sign_message
from opkey.pktoken import PKToken

SPEC = Path(__file__).resolve().parent.parent / "spec" / "protocol.md"
ISSUER = "https://op.example.test"

OP_PRIVATE_KEY_PEM = b"""\
-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQDLEzNjR3nGUzyK
WSXAEpqX6EuWUG4bWSkVIXM74LC4FgBFeoc7pYTxngAisRp6YkE49iwDWWeikES4
XciNkCbT5asRtLk7ss1sxWiyi8HsF+QPZbJuvYJO2UlvIrXunzC6NY7sJh7gk+Cl
INpJdxulKOMAzwa9rL/Bn/uTO7htHNhCoV1PUnqm5oaHYkcn/ZnWlPFkMwEhRF6n
FQ1gM62RDQIEBpqV89zaosr0xdI6aLHZzAZiww4/RWzFjS3loF93o4AfNPZlL1Sx
7TelGfFVmHoc0MoSvialu8D+Ic/pAp2Za5cScWlyrgNmqt4UJum3iVAI/RLceG4n
752UStW9AgMBAAECggEALA+c8TgDZHQP6SahibSfpUEKEXGfCkEEqGiLE51TSoW/
hlOo/tiRaUkyV1Sc3Zvu8dh7wThHQ57Qwj3a81gpDIXC4cMYA6tuZeDJMCAhscOX
QH38wolMuiXsCHh8B+uzS1uuiG9W+LwtHDbuFc2JioK+CiFhIYtXScAX+iCVidq6
1C77ugsUv3gdPtrJlBMvvUvLUb57ubkzOKcex6vHvW0LCs4k0NPRZ8JqrTEsnXEY
5SQO+Ra7EDsCIItnEamtRhexF10I/Pv2Ri6lqnzKUMun21aXzXzGmhLqO0g+tI70
8Kp66t69QMxBEmflAonjctpzP4rhBU5HgNH2UROGkwKBgQDrtcUt2q2WyV29RWxW
pb5q2ngYy6qyqab7wJ2+jpKvv5SaWs48kNqcr+r9EnTpdLqzxbbXR6cSSraQPbAb
Om+OjuMWXLM0jFQqakx0FE2z/PbSWGyK6TuMisvtsmkRQKEcO16Hm4ud2VCGvC6G
lXsdJYIfy09XvjmRJ7pcI7olAwKBgQDcjkSLQTYzHZog7Q5Moof+KOeW/ZbfMXc4
UyNAQgFbRTo2bKBRJeFopW7D8bYw7YtiQRw2WYFuTg1IwepGwrCUIjptnI2mspKb
SziZRenLu+KOFdldmHR6BpoD9J8UwPYv09umAMGWkbtJitPG61nI3cnUs9nY5Hwv
u94ZNdc+PwKBgQDoPUR2FYwLkYPmxMwl41Bmf7Ls217ogfeg/PtvkZI9z4lfPDEP
w7lhwILLrq+6heSe1CN+oX6fqzWNkPo/Gaho0ag1lEiNceZLlEiX5plYydl3DuCD
TaH6q5aaMLsM4Jzc8DIHct5xPHj3B9rfh9Cxuw8mvG8EiMy3lGkt95WkeQKBgQCJ
hoiFEI+cRewSdd6BuKL1v0nRI6UM3QpK68RCUCYKZFtNDmTU1Lr+BpHPyothbO2J
wbG2zg7f2fl8kbXkk4eJhuJJ8OF+vUCfZsMPB8Il0K0PDd6w9txCLpWgu8rqJPwd
jIwcscIEgjB3RgKRubUNhAZTBCZlkOtC1HFD5Qem/wKBgQDC3/JB8OUlvDOsk722
2sDC/ZEYawBKbh3PVWi72aCEMRInO/opS/8CwXww68zBdXJxAV48HoOctmvifP0r
w/rYfN1LXFtT9w/6c36PbKD8RSzy570sx1oWiJHbFIpM+lqVY/Idqdqr51b2fuhS
3c2Phv5Ew6hLdKMg6LDhQ3z4hw==
-----END PRIVATE KEY-----

"""


def _op_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(OP_PRIVATE_KEY_PEM, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _user_key() -> SigningKey:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = PublicJWK.from_key(private.public_key(), alg="EdDSA")
    return SigningKey(alg="EdDSA", private_key=private, public_jwk=public)


def _mint(claims: dict[str, object]) -> str:
    """RS256 ID token; PKCS#1 v1.5 signatures are deterministic, so the example is stable."""
    header = b64url_encode(go_json({"alg": "RS256", "kid": "example-key-1", "typ": "JWT"}))
    payload = b64url_encode(go_json(claims))
    signing_input = f"{header}.{payload}".encode()
    signature = _op_key().sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64url_encode(signature)}"


def _pretty(data: bytes | str) -> str:
    return json.dumps(json.loads(data), indent=2)


def build_examples() -> dict[str, str]:
    """Every example of the spec, by name."""
    user = _user_key()
    op_jwk = PublicJWK.from_key(_op_key().public_key(), alg="RS256", kid="example-key-1")
    cic = ClientInstanceClaims.create(user.public_jwk, rz=bytes(range(100, 132)))
    commitment = cic.commitment()
    claims: dict[str, object] = {
        "aud": "example-client",
        "exp": 1767225900,
        "iat": 1767225600,
        "iss": ISSUER,
        "nonce": commitment,
        "sub": "user-1234",
    }
    id_token = _mint(claims)
    pkt = PKToken.create(id_token, cic, user)
    aud_claims = {**claims, "aud": commitment}
    del aud_claims["nonce"]
    gq_token = gq.sign_jwt(_mint(aud_claims), op_jwk, randbelow=random.Random(7).randrange)
    gq_pkt = PKToken.create(gq_token, cic, user)
    osm = sign_message(b"hello, opkey", pkt, user)
    return {
        "op-jwk": _pretty(go_json(op_jwk.to_dict())),
        "upk": _pretty(go_json(user.public_jwk.to_dict())),
        "cic-header": cic.header_bytes().decode(),
        "commitment": commitment,
        "id-token-claims": _pretty(go_json(claims)),
        "id-token": id_token,
        "pktoken-json": pkt.to_json().decode(),
        "pktoken-compact": pkt.to_compact(),
        "pktoken-hash": pkt.hash(),
        "gq-header": b64url_decode(gq_token.split(".")[0]).decode(),
        "gq-token": gq_token,
        "gq-pktoken-hash": gq_pkt.hash(),
        "osm-header": b64url_decode(osm.split(".")[0]).decode(),
        "osm": osm,
    }


_BLOCK = re.compile(
    r"(<!-- example: (?P<name>[a-z0-9-]+) -->\n```[a-z]*\n)(?P<body>.*?)(\n```\n<!-- /example -->)",
    re.DOTALL,
)


def spec_blocks(text: str) -> dict[str, str]:
    """The example bodies present in the spec text, by name."""
    return {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}


def rewrite(text: str, examples: dict[str, str]) -> str:
    """``text`` with every example body replaced by the regenerated one."""
    return _BLOCK.sub(lambda m: m.group(1) + examples[m.group("name")] + m.group(4), text)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        SPEC.write_text(rewrite(SPEC.read_text(), build_examples()))
    else:
        for name, body in build_examples().items():
            print(f"== {name}\n{body}\n")
