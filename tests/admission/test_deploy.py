"""deploy/make-serving-cert.sh makes a serving certificate the API server can trust."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.toolchain import system_tool

SCRIPT = Path(__file__).parents[2] / "deploy" / "make-serving-cert.sh"


def test_make_serving_cert_names_the_service_and_chains_to_its_ca(tmp_path: Path) -> None:
    system_tool("openssl", "openssl")
    out = tmp_path / "tls"
    result = subprocess.run(
        ["sh", str(SCRIPT), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NAMESPACE": "gate-ns", "SERVICE": "gate"},
    )
    assert result.returncode == 0, result.stderr
    assert "serving certificate for gate.gate-ns.svc" in result.stdout
    ca = x509.load_pem_x509_certificate((out / "ca.pem").read_bytes())
    leaf = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "gate.gate-ns.svc",
        "gate.gate-ns.svc.cluster.local",
    ]
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.days == 90
    for secret in ("ca.key", "tls.key"):
        assert (out / secret).stat().st_mode & 0o077 == 0, secret
    assert (out / "tls.key").read_text().startswith("-----BEGIN PRIVATE KEY-----")
