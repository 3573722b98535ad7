"""``opkey admission serve`` as a process, over HTTPS: what the API server and an operator see.

The gate runs as a Deployment runs it (a subprocess with a serving certificate of the test CA),
against the real registry and the real dev IdP, and is sent real AdmissionReview bodies.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opkey.registry.reference import ImageReference
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.registry import LocalRegistry, seed_image
from tests.admission.kube import ClusterPKI
from tests.admission.serving import GateProcess, image_in, pod, policy_file, review, sign
from tests.conftest import make_registry_client

pytestmark = pytest.mark.registry

LIMIT = 256 * 1024


@dataclass
class Served:
    gate: GateProcess
    signed: ImageReference
    unsigned: ImageReference


@pytest.fixture(scope="module")
def served(
    registry_server: LocalRegistry,
    dev_idp: DevIdP,
    kube_pki: ClusterPKI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("gate")
    client = make_registry_client()
    signed = seed_image(client, image_in(registry_server.host, "served"))
    sign(client, signed, dev_idp)
    unsigned = seed_image(client, image_in(registry_server.host, "served-unsigned"))
    policy = policy_file(root / "policy.toml", dev_idp)
    args = ["--policy", str(policy), "--max-request-bytes", str(LIMIT), "--deadline", "5"]
    gate = GateProcess(args, kube_pki.webhook, kube_pki.ca_file, root / "gate.log").start()
    try:
        yield Served(gate, signed, unsigned)
    finally:
        gate.stop()


def test_signed_admitted_unsigned_refused_the_uid_echoed(served: Served) -> None:
    uid = str(uuid.uuid4())
    admitted = served.gate.post(review(pod("web", str(served.signed)), uid=uid))
    assert admitted.status == 200
    assert admitted.headers["Content-Type"].startswith("application/json")
    assert admitted.response == {"uid": uid, "allowed": True}
    refused = served.gate.post(review(pod("bad", str(served.unsigned)), uid="other-uid"))
    assert refused.status == 200
    response = refused.response
    assert response["uid"] == "other-uid"
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert response["status"]["message"].startswith(
        f'opkey refused 1 of 1 image: spec.containers[0].image "{served.unsigned}": the image '
        "has no signatures"
    )


def test_malformed_requests_answer_400_and_the_server_keeps_serving(served: Served) -> None:
    for body in (b"{not json", b"[]", b'{"apiVersion":"admission.k8s.io/v1"}', b"\xff\xfe"):
        reply = served.gate.post(body)
        assert reply.status == 400, body
        assert reply.body.startswith(b"opkey cannot read this AdmissionReview: ")
    beta = review(pod("x", str(served.signed))).replace(
        b"admission.k8s.io/v1", b"admission.k8s.io/v1beta1", 1
    )
    assert b"list only v1" in served.gate.post(beta).body
    # A review whose uid was read is answered with a denial that names the problem.
    named = review(pod("x", str(served.signed))).replace(
        b'"operation": "CREATE"', b'"operation": "PATCH"'
    )
    reply = served.gate.post(named)
    assert reply.status == 200
    assert reply.response["allowed"] is False
    assert reply.response["status"]["code"] == 400
    assert "request.operation: expected one of CREATE" in reply.response["status"]["message"]
    assert served.gate.post(review(pod("web", str(served.signed)))).response["allowed"] is True
    assert served.gate.returncode is None


def test_a_request_larger_than_the_limit_is_refused_413_and_serving_goes_on(
    served: Served,
) -> None:
    obj = pod("big", str(served.signed))
    obj["metadata"]["annotations"] = {"padding": "x" * LIMIT}
    reply = served.gate.post(review(obj))
    assert reply.status == 413
    assert f"larger than {LIMIT} bytes".encode() in reply.body
    assert served.gate.post(review(pod("web", str(served.signed)))).response["allowed"] is True


def test_only_json_is_read(served: Served) -> None:
    reply = served.gate.post(review(pod("x", "a")), content_type="text/plain")
    assert reply.status == 415
    assert served.gate.get("/validate").status == 405


def test_health_readiness_and_metrics(served: Served) -> None:
    assert served.gate.get("/healthz").body == b"ok\n"
    assert served.gate.get("/readyz").status == 200
    served.gate.post(review(pod("web", str(served.signed))))
    served.gate.post(review(pod("web", str(served.signed))))
    metrics = served.gate.get("/metrics")
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    text = metrics.body.decode()

    def value(name: str) -> float:
        match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
        assert match is not None, name
        return float(match.group(1))

    assert value('opkey_admission_requests_total{decision="allowed"}') >= 2
    assert value('opkey_admission_images_total{outcome="passed",source="cache"}') >= 1
    assert value("opkey_admission_cache_entries") >= 1
    assert value("opkey_admission_request_seconds_count") >= 2
    assert "opkey_admission_jwks_refresh_total{" in text
    assert "opkey_admission_jwks_last_refresh_timestamp_seconds{" in text


def test_every_admission_is_logged_as_one_json_line(served: Served) -> None:
    uid = f"log-{uuid.uuid4()}"
    served.gate.post(review(pod("logged", str(served.unsigned)), uid=uid))
    for _ in range(50):
        entries = [e for e in served.gate.logs() if e.get("uid") == uid]
        if entries:
            break
        time.sleep(0.1)
    (entry,) = entries
    assert entry["event"] == "admission"
    assert entry["level"] == "info"
    assert entry["decision"] == "denied"
    assert (entry["operation"], entry["kind"], entry["name"]) == ("CREATE", "v1 Pod", "logged")
    (image,) = entry["images"]
    assert image["path"] == "spec.containers[0].image"
    assert image["digest"] == str(served.unsigned.digest)
    assert image["source"] in ("verified", "cache")
    assert "has no signatures" in image["reason"]
    assert isinstance(entry["ms"], float)


def test_audit_mode_and_a_rule_file(
    registry_server: LocalRegistry, dev_idp: DevIdP, kube_pki: ClusterPKI, tmp_path: Path
) -> None:
    client = make_registry_client()
    signed = seed_image(client, image_in(registry_server.host, "ruled"))
    sign(client, signed, dev_idp)
    unsigned = seed_image(client, image_in(registry_server.host, "ruled-unsigned"))
    policy_file(tmp_path / "release.toml", dev_idp)
    (tmp_path / "gate.toml").write_text(
        """version = 1

[[rules]]
name = "prod"
namespaces = ["prod-*"]
images = ["127.0.0.1:*/**"]
policy = "release.toml"
"""
    )
    args = ["--config", str(tmp_path / "gate.toml")]
    gate = GateProcess(args, kube_pki.webhook, kube_pki.ca_file, tmp_path / "a.log").start()
    try:
        assert gate.post(review(pod("a", str(signed), namespace="prod-eu"))).response["allowed"]
        refused = gate.post(review(pod("b", str(unsigned), namespace="prod-eu"))).response
        assert refused["allowed"] is False
        elsewhere = gate.post(review(pod("c", str(signed), namespace="dev"))).response
        assert elsewhere["allowed"] is False
        assert "no rule of the gate covers" in elsewhere["status"]["message"]
    finally:
        gate.stop()
    audit = GateProcess([*args, "--mode", "warn"], kube_pki.webhook, kube_pki.ca_file,
                        tmp_path / "b.log").start()  # fmt: skip
    try:
        response = audit.post(review(pod("b", str(unsigned), namespace="prod-eu"))).response
        assert response["allowed"] is True
        (warning,) = response["warnings"]
        assert warning.startswith("opkey (warn, rule prod): spec.containers[0].image")
        assert "has no signatures" in warning
    finally:
        audit.stop()


def test_a_gate_that_cannot_read_its_policy_does_not_start(
    kube_pki: ClusterPKI, tmp_path: Path
) -> None:
    (tmp_path / "bad.toml").write_text("version = 1\n[[signers]]\nname = 3\n")
    gate = GateProcess(["--policy", str(tmp_path / "bad.toml")], kube_pki.webhook,
                       kube_pki.ca_file, tmp_path / "g.log")  # fmt: skip
    with pytest.raises(RuntimeError, match="exited 2"):
        gate.start(timeout=20)
    assert "opkey: error: policy file" in gate.output()
    assert "signers[0].name" in gate.output()
    assert "Traceback" not in gate.output()


def test_sigterm_stops_the_gate_cleanly(
    dev_idp: DevIdP, kube_pki: ClusterPKI, tmp_path: Path
) -> None:
    policy = policy_file(tmp_path / "policy.toml", dev_idp)
    gate = GateProcess(["--policy", str(policy)], kube_pki.webhook, kube_pki.ca_file,
                       tmp_path / "g.log").start()  # fmt: skip
    assert gate.stop() == 0
    events = [entry.get("event") for entry in gate.logs()]
    assert events[:1] == ["listening"]
    assert "shutdown" in events


def test_the_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    from opkey.cli import main

    with pytest.raises(SystemExit):
        main(["admission", "serve", "--help"])
    text = capsys.readouterr().out
    for option in ("--config", "--policy", "--listen", "--tls-cert", "--tls-key", "--mode",
                   "--deadline", "--cache-ttl", "--jwks-archive", "--offline"):  # fmt: skip
        assert option in text


def test_a_rotated_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    import asyncio
    import shutil
    import socket
    import ssl

    from cryptography.hazmat.primitives.asymmetric import rsa

    from opkey.admission.server import AdmissionServer, ServerSettings
    from opkey.admission.service import ServeOptions, build_gate
    from opkey.keys import PublicJWK
    from opkey.verification.trust import KeyOptions

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        json.dumps({"keys": [PublicJWK.from_key(key.public_key(), alg="RS256", kid="k").to_dict()]})
    )
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'version = 1\n[[issuers]]\nissuer = "https://issuer.example"\ncommitment = "aud"\n'
        '[[signers]]\nname = "s"\nissuer = "https://issuer.example"\n'
    )
    first, second = ClusterPKI(tmp_path / "one"), ClusterPKI(tmp_path / "two")
    cert, cert_key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first.webhook.cert, cert)
    shutil.copy(first.webhook.key, cert_key)
    options = ServeOptions(
        listen="127.0.0.1:0", tls_cert=cert, tls_key=cert_key, policy=policy,
        keys=KeyOptions(jwks_file=jwks, offline=True),
    )  # fmt: skip
    server = AdmissionServer(build_gate(options), ServerSettings("127.0.0.1", 0, cert, cert_key))

    def served_ca(port: int) -> str:
        for pki in (first, second):
            context = ssl.create_default_context(cafile=str(pki.ca_file))
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                    context.wrap_socket(raw, server_hostname="127.0.0.1"),
                ):
                    return str(pki.root)
            except ssl.SSLError:
                continue
        return "neither"

    async def scenario() -> list[object]:
        await server.start()
        loop = asyncio.get_running_loop()
        assert server.port is not None
        seen: list[object] = [await loop.run_in_executor(None, served_ca, server.port)]
        seen.append(server.reload_certificate())  # nothing changed
        cert.write_bytes(b"not a certificate")
        seen.append(server.reload_certificate())  # unreadable: the old one stays
        seen.append(await loop.run_in_executor(None, served_ca, server.port))
        shutil.copy(second.webhook.cert, cert)
        shutil.copy(second.webhook.key, cert_key)
        seen.append(server.reload_certificate())
        seen.append(await loop.run_in_executor(None, served_ca, server.port))
        await server.stop()
        return seen

    one, two = str(first.root), str(second.root)
    assert asyncio.run(scenario()) == [one, False, False, one, True, two]


def test_a_body_that_does_not_arrive_in_time_is_answered_408(
    dev_idp: DevIdP, kube_pki: ClusterPKI, tmp_path: Path
) -> None:
    import socket
    import ssl

    policy = policy_file(tmp_path / "policy.toml", dev_idp)
    gate = GateProcess(["--policy", str(policy), "--deadline", "1"], kube_pki.webhook,
                       kube_pki.ca_file, tmp_path / "g.log").start()  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(kube_pki.ca_file))
        with (
            socket.create_connection(("127.0.0.1", gate.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(
                b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
            started = time.monotonic()
            answer = tls.recv(4096)
            assert time.monotonic() - started < 3
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"request body not received within 1s" in answer
        assert gate.get("/healthz").status == 200
    finally:
        gate.stop()


def test_serve_options_are_checked_before_anything_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from opkey.admission.service import ServeOptions, build_gate, parse_listen
    from opkey.cli import main
    from opkey.errors import ConfigError

    assert parse_listen("0.0.0.0:8443") == ("0.0.0.0", 8443)
    assert parse_listen("[::]:8443") == ("::", 8443)
    for bad in ("8443", ":8443", "host:", "host:99999", "host:https"):
        with pytest.raises(ConfigError, match="--listen"):
            parse_listen(bad)
    config = tmp_path / "gate.toml"
    config.write_text('version = 1\n[[rules]]\nname = "r"\nnamespaces = ["*"]\n'
                      'images = ["**"]\npolicy = "missing.toml"\n')  # fmt: skip
    base = {"listen": "127.0.0.1:0", "tls_cert": tmp_path / "c", "tls_key": tmp_path / "k"}
    with pytest.raises(ConfigError, match="exactly one of --config FILE and --policy FILE"):
        build_gate(ServeOptions(**base))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--allow-tags applies to --policy"):
        build_gate(ServeOptions(**base, config=config, allow_tags=True))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"policy file .*missing.toml \(rule r\)"):
        build_gate(ServeOptions(**base, config=config))  # type: ignore[arg-type]
    assert main(["admission", "serve", "--config", str(config), "--listen", "127.0.0.1:0",
                 "--tls-cert", "c", "--tls-key", "k"]) == 2  # fmt: skip
    capsys.readouterr()
    assert main(["admission", "serve", "--config", str(config), "--listen", "127.0.0.1:0",
                 "--tls-cert", "c", "--tls-key", "k", "--tlog-key", "log.pem"]) == 2  # fmt: skip
    assert "--tlog-key and --tlog-origin go together" in capsys.readouterr().err
    # Times and sizes must be finite numbers: NaN would pass any comparison unnoticed.
    for option, value, message in (
        ("--deadline", "nan", "give a positive number"),
        ("--workers", "0", "give a positive number"),
        ("--cache-ttl", "inf", "give 0 or more seconds"),
        ("--reload-interval", "nan", "give 0 or more seconds"),
    ):
        assert main(["admission", "serve", "--config", str(config), "--listen", "127.0.0.1:0",
                     "--tls-cert", "c", "--tls-key", "k", option, value]) == 2  # fmt: skip
        assert message in capsys.readouterr().err, option


def test_a_changed_policy_file_is_reloaded_and_never_reuses_an_old_verdict(
    registry_server: LocalRegistry, dev_idp: DevIdP, kube_pki: ClusterPKI, tmp_path: Path
) -> None:
    from tests.admission.serving import OTHER_REPO_ID, REPO_ID

    client = make_registry_client()
    image = seed_image(client, image_in(registry_server.host, "reloaded"))
    sign(client, image, dev_idp)
    policy = policy_file(tmp_path / "policy.toml", dev_idp, REPO_ID)
    gate = GateProcess(["--policy", str(policy), "--reload-interval", "0.2"], kube_pki.webhook,
                       kube_pki.ca_file, tmp_path / "g.log").start()  # fmt: skip

    def reloads(ok: bool) -> int:
        return sum(1 for e in gate.logs() if e.get("event") == "reload" and e.get("ok") is ok)

    def wait_for(ok: bool, count: int) -> None:
        for _ in range(100):
            if reloads(ok) >= count:
                return
            time.sleep(0.1)
        raise AssertionError(f"no reload (ok={ok}) logged:\n{gate.output()}")

    def judged() -> dict[str, object]:
        uid = str(uuid.uuid4())
        response = gate.post(review(pod("web", str(image)), uid=uid)).response
        for _ in range(50):
            entries = [e for e in gate.logs() if e.get("uid") == uid]
            if entries:
                return {"allowed": response["allowed"], "source": entries[0]["images"][0]["source"]}
            time.sleep(0.05)
        raise AssertionError("no log line")

    try:
        assert judged() == {"allowed": True, "source": "verified"}
        assert judged() == {"allowed": True, "source": "cache"}
        policy_file(policy, dev_idp, OTHER_REPO_ID)
        wait_for(True, 1)
        assert judged() == {"allowed": False, "source": "verified"}, "the old pass is not reused"
        policy.write_text("version = 1\n[[signers]]\n")
        wait_for(False, 1)
        assert judged() == {"allowed": False, "source": "cache"}, "the running policy stays"
        policy_file(policy, dev_idp, REPO_ID)
        wait_for(True, 2)
        # The same policy and keys, byte for byte: the same fingerprint, the first verdict.
        assert judged() == {"allowed": True, "source": "cache"}
        metrics = gate.get("/metrics").body.decode()
        assert 'opkey_admission_config_reloads_total{outcome="ok"} 2.0' in metrics
        assert 'opkey_admission_config_reloads_total{outcome="failed"} 1.0' in metrics
    finally:
        gate.stop()
