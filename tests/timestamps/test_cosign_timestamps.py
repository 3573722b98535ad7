"""The real cosign checks the RFC 3161 timestamp of an opkey image signature.

opkey writes the token in cosign's own ``dev.sigstore.cosign/rfc3161timestamp`` annotation,
over the raw bytes of cosign's signature, so ``cosign verify --key <ephemeral public key>``
checks it against the authority it is given:

* cosign v2.6.5: ``--insecure-ignore-tlog --timestamp-certificate-chain CHAIN`` (the issue's
  command);
* cosign v3.1.3, which has no ``--timestamp-certificate-chain`` any more: the same chain as
  the ``timestampAuthorities`` of a Sigstore trusted root (``--trusted-root``) with
  ``--use-signed-timestamps``.

Each accepts the signature with the authority's chain and rejects it with another chain (and
when the token was tampered with), for both authorities. cosign runs with a home of the test's
own and its proxies pointing at a closed port, so it reaches nothing but the loopback registry.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from opkey import Signer, TimestampClient, TimestampToken, sign_image
from opkey.cosign import COSIGN_SIGNATURE, COSIGN_TIMESTAMP_ANNOTATION, simple_signing_payload
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import attach_signature
from opkey.sandbox.registry import seed_image
from tests.helpers import MiniOP
from tests.timestamps.authorities import Pki
from tests.timestamps.conftest import RunningTsa
from tests.toolchain import go_tool

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


def _closed_port() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


class Cosign:
    """One cosign binary in a sandbox home; outside traffic goes to a closed port."""

    def __init__(self, module: str, home: Path) -> None:
        self.binary = go_tool(module, "cosign")
        self.major = int(module.rsplit("-v", 1)[1])
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        proxy = _closed_port()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "DOCKER_CONFIG": str(home / "docker"),
            "TUF_ROOT": str(home / "tuf"),
            "HTTPS_PROXY": proxy,
            "HTTP_PROXY": proxy,
        }

    def verify(
        self, public_key: Path, image: str, chain: list[x509.Certificate]
    ) -> subprocess.CompletedProcess[str]:
        """``cosign verify --key`` with ``chain`` (leaf first) as the only TSA trusted."""
        args = ["verify", "--key", str(public_key), "--insecure-ignore-tlog=true"]
        if self.major == 2:
            pem = self.home / "tsa-chain.pem"
            pem.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
            args += ["--timestamp-certificate-chain", str(pem)]
        else:
            args += ["--trusted-root", str(self._trusted_root(chain))]
            args += ["--use-signed-timestamps", "--new-bundle-format=false"]
        return subprocess.run(
            [str(self.binary), *args, image],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=120,
            check=False,
        )

    def _trusted_root(self, chain: list[x509.Certificate]) -> Path:
        """A Sigstore trusted root with ``chain`` as its one time-stamping authority (or none)."""
        document: dict[str, object] = {"mediaType": TRUSTED_ROOT_MEDIA_TYPE}
        if chain:
            start = min(c.not_valid_before_utc for c in chain) - timedelta(seconds=1)
            document["timestampAuthorities"] = [
                {
                    "subject": {"organization": "opkey tests", "commonName": "test TSA"},
                    "uri": "http://127.0.0.1/",
                    "certChain": {
                        "certificates": [
                            {
                                "rawBytes": base64.b64encode(
                                    c.public_bytes(serialization.Encoding.DER)
                                ).decode()
                            }
                            for c in chain
                        ]
                    },
                    "validFor": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ")},
                }
            ]
        path = self.home / "trusted_root.json"
        path.write_text(json.dumps(document))
        return path


def _leaf_first(chain_pem: bytes) -> list[x509.Certificate]:
    """A PEM chain ordered TSA certificate, intermediates, root (as cosign and sigstore want)."""
    certs = x509.load_pem_x509_certificates(chain_pem)
    ordered = [c for c in certs if c.subject != c.issuer]
    by_issuer = {c.issuer: c for c in ordered}
    roots = [c for c in certs if c.subject == c.issuer]
    chain = [roots[0]]
    while chain[-1].subject in by_issuer:
        chain.append(by_issuer[chain[-1].subject])
    return list(reversed(chain))


@pytest.fixture(params=["cosign-v2", "cosign-v3"])
def cosign(request: pytest.FixtureRequest, tmp_path: Path) -> Cosign:
    return Cosign(request.param, tmp_path / request.param)


def _signed_image(
    tsa: RunningTsa, client: RegistryClient, image: ImageReference, directory: Path
) -> tuple[ImageReference, Path, Signer]:
    now = datetime.now(timezone.utc)
    op = MiniOP()
    pkt, key = op.pktoken(
        iat=int(now.timestamp()) - 30,
        nbf=int(now.timestamp()) - 35,
        exp=int((now + timedelta(minutes=5)).timestamp()),
    )
    signer = Signer(pkt, key, [TimestampClient(tsa.url)])
    signed = sign_image(client, image, signer)
    public = directory / "ephemeral.pub"
    public.write_bytes(
        key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return signed, public, signer


def test_cosign_accepts_the_timestamp_with_the_authoritys_chain_and_rejects_another(
    cosign: Cosign,
    tsa: RunningTsa,
    other_pki: Pki,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    tmp_path: Path,
) -> None:
    signed, public, _ = _signed_image(tsa, registry_client, registry_image, tmp_path)
    good = cosign.verify(public, str(signed), _leaf_first(tsa.chain_pem))
    assert good.returncode == 0, good.stderr[-2000:]
    wrong = cosign.verify(public, str(signed), _leaf_first(other_pki.chain_pem))
    assert wrong.returncode != 0
    assert "timestamp" in wrong.stderr.lower(), wrong.stderr[-2000:]


def _attach_layer(
    client: RegistryClient, image: ImageReference, signer: Signer, token: TimestampToken
) -> None:
    """A cosign-style layer by ``signer``'s key with ``token`` in the timestamp annotation."""
    payload = simple_signing_payload(image.cosign_name, image.require_digest())
    signature = signer.signing_key.sign_der(payload)
    annotations = {
        COSIGN_SIGNATURE: base64.b64encode(signature).decode("ascii"),
        COSIGN_TIMESTAMP_ANNOTATION: token.to_cosign_annotation(),
    }
    attach_signature(client, image, payload, annotations)


def test_cosign_rejects_a_timestamp_of_another_signature(
    cosign: Cosign,
    tsa: RunningTsa,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    tmp_path: Path,
) -> None:
    """The same layer with a token over other bytes fails cosign's check under the right
    chain: cosign really reads the annotation, and checks it over the signature opkey says."""
    _, public, signer = _signed_image(tsa, registry_client, registry_image, tmp_path)
    base = f"{registry_image.registry}/{registry_image.repository}"
    stranger = TimestampClient(tsa.url).stamp(b"another signature entirely")
    tampered = seed_image(registry_client, ImageReference.parse(f"{base}-tampered:v1"))
    _attach_layer(registry_client, tampered, signer, stranger)
    result = cosign.verify(public, str(tampered), _leaf_first(tsa.chain_pem))
    assert result.returncode != 0
    assert "timestamp" in result.stderr.lower(), result.stderr[-2000:]
