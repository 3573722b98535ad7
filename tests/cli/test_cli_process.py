"""opkey as a process: a closed pipe, progress on a terminal only, and ``--offline`` meaning
no network at all for bundles (a tripwire on every socket the process opens)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from opkey.cli import EXIT_OUTPUT_CLOSED
from opkey.cosign import OPKEY_PKTOKEN
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import list_signatures
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.registry import LocalRegistry, seed_image
from tests.cli.conftest import REPO_ID, clean_env, fake_browser, run_opkey

DIGEST = "sha256:" + "c3" * 32


def _closed_stdout(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run opkey with standard output a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return run_opkey(args, env=env, cwd=cwd, stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)


@pytest.fixture
def signed(dev_idp: DevIdP, tmp_path: Path) -> Path:
    """``app.tar.gz`` in ``tmp_path``, signed by the dev provider's GitHub-style job."""
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release 1.0")
    result = run_opkey(["sign", "--file", str(artifact)], env=dev_idp.env())
    assert result.returncode == 0, result.stderr
    return artifact


def _verify(idp: DevIdP, artifact: Path, *extra: str) -> list[str]:
    return [
        "verify", "--file", str(artifact), "--issuer", idp.issuer,
        "--github-repository-id", REPO_ID, *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("command", ["inspect", "verify", "verify-json", "sign", "completion"])
def test_a_reader_that_goes_away_ends_opkey_quietly_with_141(
    command: str, dev_idp: DevIdP, signed: Path
) -> None:
    """``opkey verify … | true``: no traceback, and not 0 (the output is incomplete) nor 1
    (nothing was rejected): 141, as a shell reports a program stopped by SIGPIPE."""
    argv = {
        "inspect": ["inspect", f"{signed}.opkey.json"],
        "verify": _verify(dev_idp, signed),
        "verify-json": _verify(dev_idp, signed, "--json"),
        "sign": ["sign", "--digest", DIGEST],
        "completion": ["completion", "bash"],
    }[command]
    result = _closed_stdout(argv, env=dev_idp.env())
    assert result.returncode == EXIT_OUTPUT_CLOSED == 141
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr
    assert "Exception ignored" not in result.stderr


def test_a_closed_standard_error_is_quiet_too(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)
    try:
        result = run_opkey(
            ["inspect", str(tmp_path / "missing")], stdout=subprocess.PIPE, stderr=write
        )
    finally:
        os.close(write)
    assert result.returncode == EXIT_OUTPUT_CLOSED
    assert result.stdout == ""


# -- progress on a terminal --------------------------------------------------------------


def _run_on_a_terminal(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> tuple[int, str]:
    """Run opkey with standard error on a pseudo-terminal; its exit status and what the
    terminal showed."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "opkey", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=clean_env(env),
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the terminal's other end is closed
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
    return code, shown.decode("utf-8", "replace")


def test_progress_is_shown_on_a_terminal_only(dev_idp: DevIdP) -> None:
    code, shown = _run_on_a_terminal(["sign", "--digest", DIGEST], dev_idp.env())
    assert code == 0, shown
    assert f"opkey: requesting an ID token from {dev_idp.issuer}…" in shown
    assert "opkey: signed " in shown
    piped = run_opkey(["sign", "--digest", DIGEST], env=dev_idp.env())
    assert piped.returncode == 0, piped.stderr
    assert "requesting" not in piped.stderr
    assert piped.stderr.startswith("opkey: signed ")


def test_progress_says_a_browser_login_is_awaited(dev_idp: DevIdP, tmp_path: Path) -> None:
    browser, marker = fake_browser(tmp_path)
    login = ["--provider", "browser", "--issuer", dev_idp.issuer, "--client-id", "opkey-dev"]
    code, shown = _run_on_a_terminal(
        ["sign", "--digest", DIGEST, *login], {"BROWSER": str(browser)}
    )
    assert code == 0, shown
    assert f"opkey: waiting for the browser login at {dev_idp.issuer}…" in shown
    assert marker.exists()


# -- --offline: no request at all ---------------------------------------------------------

#: Runs opkey with an audit hook on every socket operation: each one is written to standard
#: error, and a request (a connection, a datagram, a name lookup) to anything but the allowed
#: ports ends the process at once (status 99), so no code path can catch it and carry on.
TRIPWIRE = """\
import os, sys
allowed = {int(p) for p in os.environ.get("TRIPWIRE_ALLOWED_PORTS", "").split(",") if p}
requests = ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
            "socket.gethostbyname", "socket.gethostbyaddr", "socket.gethostbyname_ex")
def hook(event, args):
    if not event.startswith("socket."):
        return
    sys.stderr.write(f"TRIPWIRE {event} {args!r}\\n")
    sys.stderr.flush()
    if event not in requests:
        return
    port = None
    if event in ("socket.connect", "socket.sendto") and isinstance(args[1], tuple):
        port = args[1][1]
    elif event == "socket.getaddrinfo":
        port = args[1]
    if port is None or int(port or 0) not in allowed:
        os._exit(99)
sys.addaudithook(hook)
from opkey.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _with_tripwire(
    args: list[str], allowed: tuple[int, ...] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    ports = ",".join(str(p) for p in allowed)
    return run_opkey(args, python=("-c", TRIPWIRE), env={"TRIPWIRE_ALLOWED_PORTS": ports, **env})


def _jwks_file(idp: DevIdP, directory: Path) -> Path:
    path = directory / "jwks.json"
    with urllib.request.urlopen(f"{idp.issuer}/.well-known/jwks", timeout=5) as response:
        path.write_bytes(response.read())
    return path


def test_offline_bundle_verification_opens_no_socket(
    dev_idp: DevIdP, signed: Path, tmp_path: Path
) -> None:
    jwks = _jwks_file(dev_idp, tmp_path)
    # The control: without --offline, the keys are fetched, and the tripwire fires.
    online = _with_tripwire(_verify(dev_idp, signed))
    assert online.returncode == 99, online.stderr
    assert "TRIPWIRE socket." in online.stderr
    # Pinned keys and an archive, offline: not one socket operation.
    pinned = _with_tripwire(_verify(dev_idp, signed, "--jwks", str(jwks), "--offline"))
    assert pinned.returncode == 0, pinned.stderr
    assert "TRIPWIRE" not in pinned.stderr
    archive = tmp_path / "keys.sqlite"
    imported = run_opkey(["jwks", "--archive", str(archive), "import", dev_idp.issuer, str(jwks)])
    assert imported.returncode == 0, imported.stderr
    offline = _with_tripwire(
        _verify(dev_idp, signed, "--jwks-archive", str(archive), "--offline", "--json")
    )
    assert offline.returncode == 0, offline.stderr
    assert "TRIPWIRE" not in offline.stderr
    assert json.loads(offline.stdout)["signatures"][0]["key_source"] == "archive"


@pytest.mark.registry
def test_offline_image_verification_reads_only_the_registry(
    make_dev_idp: Callable[..., DevIdP],
    registry_server: LocalRegistry,
    registry_image: ImageReference,
    tmp_path: Path,
) -> None:
    idp = make_dev_idp()
    env = {**idp.env(), "DOCKER_CONFIG": str(tmp_path / "no-docker-config")}
    image = str(registry_image)
    signed = run_opkey(["sign", image], env=env)
    assert signed.returncode == 0, signed.stderr
    jwks = _jwks_file(idp, tmp_path)
    verify = ["verify", image, "--issuer", idp.issuer, "--github-repository-id", REPO_ID]
    registry_port = int(registry_server.host.rpartition(":")[2])
    offline = _with_tripwire(
        [*verify, "--jwks", str(jwks), "--offline"],
        allowed=(registry_port,),
        DOCKER_CONFIG=env["DOCKER_CONFIG"],
    )
    # Every request went to the registry (any other port ends the process with 99)...
    assert offline.returncode == 0, offline.stderr
    connects = [line for line in offline.stderr.splitlines() if "socket.connect " in line]
    assert connects
    assert all(f", {registry_port})" in line for line in connects), connects
    online = _with_tripwire(verify, allowed=(registry_port,), DOCKER_CONFIG=env["DOCKER_CONFIG"])
    # ...and without --offline the identity provider's keys are fetched: the control.
    assert online.returncode == 99, online.stderr


@pytest.mark.registry
def test_several_images_signed_on_a_terminal_with_one_pk_token(
    make_dev_idp: Callable[..., DevIdP],
    registry_server: LocalRegistry,
    registry_client: RegistryClient,
    tmp_path: Path,
) -> None:
    idp = make_dev_idp()
    env = {**idp.env(), "DOCKER_CONFIG": str(tmp_path / "no-docker-config")}
    images = []
    for name in ("app", "worker"):
        ref = ImageReference.parse(f"{registry_server.host}/several/{name}-{os.getpid()}:v1")
        images.append(seed_image(registry_client, ref))
    code, shown = _run_on_a_terminal(["sign", *(str(i) for i in images)], env)
    assert code == 0, shown
    assert f"opkey: requesting an ID token from {idp.issuer}…" in shown
    for image in images:
        assert f"opkey: signing {image} in its registry…" in shown
    pktokens = {
        layer.annotations[OPKEY_PKTOKEN]
        for image in images
        for layer in list_signatures(registry_client, image)
    }
    assert len(pktokens) == 1  # one ID token for both images
    verify = ["verify", *(str(i) for i in images), "--issuer", idp.issuer]
    verified = run_opkey([*verify, "--github-repository-id", REPO_ID, "--json"], env=env)
    assert verified.returncode == 0, verified.stderr
    assert [t["verified"] for t in json.loads(verified.stdout)["targets"]] == [True, True]
