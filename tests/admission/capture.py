"""Make the admission test data again: kubectl objects and the reviews a real API server sends.

Run from the repository root, after ``python tests/tools/build.py kube-apiserver``::

    .venv/bin/python -m tests.admission.capture [tests/data/admission]

It starts etcd and kube-apiserver on loopback (as the tests do), registers a webhook that admits
everything and records what it receives, then

1. makes each workload object with ``kubectl … --dry-run=client -o json`` (generators where
   kubectl has one, ``kubectl create -f manifests/<kind>.yaml`` otherwise, init containers added
   with ``kubectl patch --local``) into ``objects/<kind>.json``;
2. creates each object for real and writes the AdmissionReview the API server sent for it to
   ``captured/<kind>-create.json``, byte for byte;
3. captures an UPDATE (``kubectl set image`` on the Deployment) and a ``pods/ephemeralcontainers``
   UPDATE (``kubectl debug`` on the Pod).

``SOURCES.md`` in that directory says which command made which file.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from tests.admission.conftest import create_namespace, webhook_configuration
from tests.admission.kube import ClusterPKI, Etcd, KubeApiServer, Kubectl, WebhookServer
from tests.toolchain import go_tool, system_tool

DIGEST = "sha256:4c1e997385b8fb4ad4d1d3c7e5af7ff3f882e04d1fc45ee6a0d22b1c4b0d1c8c"
#: kubectl generators (``--dry-run=client -o json``), and init containers patched in locally.
GENERATED: dict[str, list[str]] = {
    "pod": [
        "run",
        "web",
        f"--image=ghcr.io/acme/web@{DIGEST}",
        "--overrides="
        + json.dumps(
            {
                "apiVersion": "v1",
                "spec": {
                    "initContainers": [
                        {"name": "fetch-config", "image": "ghcr.io/acme/config-fetcher:1.4"}
                    ]
                },
            }
        ),
    ],
    "deployment": [
        "create",
        "deployment",
        "api",
        "--image=registry.example/acme/api:2.1",
        f"--image=docker.io/library/nginx@{DIGEST}",
    ],
    "job": ["create", "job", "backup", "--image=ghcr.io/acme/backup:7", "--", "backup", "--all"],
    "cronjob": [
        "create",
        "cronjob",
        "nightly",
        f"--image=ghcr.io/acme/report@{DIGEST}",
        "--schedule=0 3 * * *",
    ],
}
#: Init containers added with ``kubectl patch --local`` (JSON patch), by object.
INIT_PATCHES: dict[str, tuple[str, str]] = {
    "deployment": ("/spec/template/spec/initContainers", "registry.example/acme/api-migrate:2.1"),
    "job": ("/spec/template/spec/initContainers", "alpine:3.20"),
    "cronjob": (
        "/spec/jobTemplate/spec/template/spec/initContainers",
        "quay.io/acme/report-init:0.9",
    ),
}
MANIFESTS = ("replicaset", "statefulset", "daemonset", "replicationcontroller")


def allow_everything(body: bytes) -> bytes:
    """Admit every request (the capture must not change what is created)."""
    request = json.loads(body)["request"]
    response = {"uid": request["uid"], "allowed": True}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    return json.dumps(review).encode()


def make_objects(kubectl: Kubectl, out: Path, scratch: Path) -> dict[str, Path]:
    """Every workload object, made by kubectl (client-side dry run)."""
    (out / "objects").mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    for name, args in GENERATED.items():
        # Flags go before a "--" that starts the container's command.
        cut = args.index("--") if "--" in args else len(args)
        flags = ["--dry-run=client", "-o", "json"]
        text = kubectl.run(*args[:cut], *flags, *args[cut:]).stdout
        if name in INIT_PATCHES:
            path, image = INIT_PATCHES[name]
            draft = scratch / f"{name}.json"
            draft.write_text(text)
            patch = [{"op": "add", "path": path, "value": [{"name": "init", "image": image}]}]
            text = kubectl.run(
                "patch",
                "--local",
                "-f",
                str(draft),
                "--type=json",
                f"-p={json.dumps(patch)}",
                "-o",
                "json",
            ).stdout
        made[name] = out / "objects" / f"{name}.json"
        made[name].write_text(text)
    for name in MANIFESTS:
        manifest = out / "manifests" / f"{name}.yaml"
        text = kubectl.run("create", "-f", str(manifest), "--dry-run=client", "-o", "json").stdout
        # kubectl fills in its context's namespace ("default"); the objects are namespace-free.
        obj = json.loads(text)
        obj["metadata"].pop("namespace", None)
        made[name] = out / "objects" / f"{name}.json"
        made[name].write_text(json.dumps(obj, indent=4) + "\n")
    return made


def _save_one(webhook: WebhookServer, path: Path, what: str) -> None:
    received = webhook.take()
    if len(received) != 1:
        raise RuntimeError(f"{what}: expected one review, received {len(received)}")
    path.write_bytes(received[0][1])
    print(f"[capture] {path}", file=sys.stderr)


def capture(out: Path) -> None:
    """Start a cluster, make and create every object, and save what the webhook received."""
    with tempfile.TemporaryDirectory(prefix="opkey-capture-") as tmp:
        root = Path(tmp)
        pki = ClusterPKI(root / "pki")
        etcd = Etcd(system_tool("etcd", "etcd-server"), root / "etcd")
        etcd.start()
        server = KubeApiServer(go_tool("kube-apiserver"), root / "apiserver", etcd, pki)
        webhook = WebhookServer(pki.webhook, allow_everything).start()
        try:
            server.start()
            kubectl = Kubectl(
                system_tool("kubectl", "kubernetes-client"),
                server.write_kubeconfig(root / "kubeconfig"),
                root / "home",
            )
            made = make_objects(kubectl, out, root)
            config = webhook_configuration(webhook.url(), pki.ca_bundle)
            kubectl.run("create", "-f", "-", stdin=json.dumps(config))
            namespace = create_namespace(kubectl, "capture")
            time.sleep(3)  # the API server loads webhook configurations asynchronously
            webhook.take()
            captured = out / "captured"
            captured.mkdir(exist_ok=True)
            for name, path in made.items():
                kubectl.run("create", "-n", namespace, "-f", str(path))
                _save_one(webhook, captured / f"{name}-create.json", name)
            kubectl.run(
                "set",
                "image",
                "-n",
                namespace,
                "deployment/api",
                "api=registry.example/acme/api:2.2",
            )
            _save_one(webhook, captured / "deployment-update.json", "set image")
            kubectl.run(
                "debug",
                "-n",
                namespace,
                "pod/web",
                "--image=busybox:1.36",
                "--container=debugger",
                "--profile=general",
            )
            _save_one(webhook, captured / "pod-ephemeralcontainers.json", "debug")
            print(f"[capture] kube-apiserver ready in {server.started_in:.1f} s", file=sys.stderr)
        finally:
            webhook.stop()
            server.stop()
            etcd.stop()


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).parents[1] / "data" / "admission"
    capture(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
