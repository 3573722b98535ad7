"""Real Rekor logs on the tests' own loopback: Rekor v1 (rekor-server on Trillian and MariaDB)
and Rekor v2 (rekor-tiles' POSIX server), each inside a :class:`NetworkNamespace`.

Rekor v1 is four processes: a private MariaDB (``mariadb-install-db`` into a temporary
directory, reached over a Unix socket only, ``--skip-networking``), Trillian's log server and
log signer (``--force_master``, no etcd), and rekor-server, with a P-256 PEM key we generate as
its signer for checkpoints and entry timestamps. Trillian's schema is read at run time from the
Trillian module in the Go module cache (``storage/mysql/schema/storage.sql``), the module the
``tests/tools/rekor`` build pinned; nothing of it is copied here. ``createtree`` makes the tree
rekor-server is pointed at, so its ID (part of the checkpoint origin) is known.

Rekor v2 is one process writing C2SP tiles under a directory, signing checkpoints with an
Ed25519 PEM key we generate; it publishes a checkpoint every 200 ms, and an upload returns once
a checkpoint covers it.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from opkey.tlog import LogPublicKey, TrustedLog
from tests.tlog.netns import NetworkNamespace, ServerProcess, start_process, wait_until
from tests.toolchain import go_tool, missing, system_tool

__all__ = [
    "REKOR_V1_PORT",
    "REKOR_V2_PORT",
    "RekorV1",
    "RekorV2",
    "b64",
    "post_json",
    "start_rekor_v1",
    "start_rekor_v2",
    "stop_rekor_v1",
]

# Fixed ports inside the namespace (nothing else lives there).
REKOR_V1_PORT = 3000
REKOR_V2_PORT = 3003
_TRILLIAN_RPC, _TRILLIAN_HTTP = 8090, 8091
_SIGNER_RPC, _SIGNER_HTTP = 8190, 8191
_REKOR_V2_GRPC, _REKOR_V2_METRICS = 3001, 2113
# A throwaway database on a private socket.
_DB_PASSWORD = "opkey-test"
_TOOLS = Path(__file__).resolve().parents[1] / "tools"
_STARTUP_TIMEOUT = 60.0


def _pem_private(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_public(key: LogPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def go_module_dir(tool_module: str, module: str) -> Path:
    """Where the Go module cache holds ``module`` at the version ``tests/tools/<tool_module>``
    pins; skips (fails under CI=true) when it has not been downloaded."""
    go = shutil.which("go")
    if go is None:
        missing("Go is not installed, so the Trillian schema cannot be found")
    assert go is not None
    result = subprocess.run(
        [go, "list", "-m", "-f", "{{.Dir}}", module],
        cwd=_TOOLS / tool_module,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off"},
    )
    directory = result.stdout.strip()
    if result.returncode != 0 or not directory:
        missing(
            f"{module} is not in the Go module cache (run: python tests/tools/build.py "
            f"{tool_module}): {result.stderr.strip()[:300]}"
        )
    return Path(directory)


@dataclass
class RekorV1:
    """A running Rekor v1 log; ``url`` is reachable from the host's loopback."""

    url: str
    hostname: str
    tree_id: int
    public_key: ec.EllipticCurvePublicKey
    cli: Path
    workdir: Path
    mariadb_socket: Path
    processes: list[ServerProcess] = field(default_factory=list)
    #: The log's private key (PEM), for tests that play a compromised log.
    signer_key_file: Path | None = None

    @property
    def public_key_pem(self) -> bytes:
        """The log's public key as PEM (what ``/api/v1/log/publicKey`` serves)."""
        return _pem_public(self.public_key)

    @property
    def trusted_log(self) -> TrustedLog:
        """The pin a verifier of this log holds."""
        return TrustedLog.rekor_v1(self.hostname, self.tree_id, self.public_key)

    @property
    def log_id(self) -> bytes:
        """SHA-256 of the log key's SPKI DER."""
        return self.trusted_log.log_id

    def sql(self, statement: str) -> str:
        """Run SQL on Trillian's database with the ``mariadb`` client (tab-separated rows)."""
        client = system_tool("mariadb", "mariadb-client-core")
        result = subprocess.run(
            [client, f"--socket={self.mariadb_socket}", "-uroot", "--batch", "-N", "trillian"],
            input=statement,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"mariadb: {result.stderr.strip()}")
        return result.stdout


@dataclass
class RekorV2:
    """A running Rekor v2 (rekor-tiles POSIX) log; ``url`` is reachable from host loopback."""

    url: str
    origin: str
    public_key: ed25519.Ed25519PublicKey
    storage: Path
    process: ServerProcess

    @property
    def trusted_log(self) -> TrustedLog:
        """The pin a verifier of this log holds."""
        return TrustedLog.rekor_v2(self.origin, self.public_key)

    @property
    def log_id(self) -> bytes:
        """The full C2SP checkpoint key hash."""
        return self.trusted_log.log_id

    def published_checkpoint(self) -> bytes:
        """The checkpoint the log last published (``<storage>/checkpoint``, tlog-tiles)."""
        return (self.storage / "checkpoint").read_bytes()


def _user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _start_mariadb(workdir: Path) -> tuple[ServerProcess, Path]:
    install_db = system_tool("mariadb-install-db", "mariadb-server-core")
    mariadbd = system_tool("mariadbd", "mariadb-server-core")
    trillian = go_module_dir("rekor", "github.com/google/trillian")
    schema = trillian / "storage" / "mysql" / "schema" / "storage.sql"
    data, socket_path = workdir / "mysql", workdir / "mysql.sock"
    install = subprocess.run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={data}",
            f"--user={_user()}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            "--skip-name-resolve",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if install.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed:\n{install.stdout}\n{install.stderr}")
    grants = "".join(
        f"CREATE DATABASE IF NOT EXISTS {db};\nGRANT ALL ON {db}.* TO 'trillian'@'localhost';\n"
        for db in ("trillian", "rekor")
    )
    init = workdir / "init.sql"
    init.write_text(
        f"CREATE USER IF NOT EXISTS 'trillian'@'localhost' IDENTIFIED BY '{_DB_PASSWORD}';\n"
        + grants
        + "USE trillian;\n"
        + schema.read_text()
    )
    error_log = workdir / "mariadb-error.log"
    server = start_process(
        "mariadbd",
        [
            mariadbd,
            "--no-defaults",
            f"--datadir={data}",
            f"--user={_user()}",
            "--skip-networking",
            f"--socket={socket_path}",
            f"--pid-file={workdir / 'mariadb.pid'}",
            f"--init-file={init}",
            f"--log-error={error_log}",
            "--innodb-buffer-pool-size=32M",
            "--skip-log-bin",
        ],
        workdir,
    )

    def ready() -> bool:
        return socket_path.exists() and "ready for connections" in error_log.read_text()

    try:
        wait_until(ready, timeout=_STARTUP_TIMEOUT, what="MariaDB", process=server)
    except RuntimeError:
        server.stop()
        tail = error_log.read_text()[-2000:] if error_log.exists() else ""
        raise RuntimeError(f"MariaDB did not start:\n{tail}") from None
    return server, socket_path


def _create_tree(netns: NetworkNamespace, createtree: Path, log_server: ServerProcess) -> int:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while True:
        log_server.check_alive()
        result = netns.run(
            [
                str(createtree),
                f"--admin_server=127.0.0.1:{_TRILLIAN_RPC}",
                "--display_name=opkey-test",
                "--rpc_deadline=5s",
            ],
            timeout=30,
        )
        if result.returncode == 0 and result.stdout.strip().isdigit():
            return int(result.stdout.strip())
        if time.monotonic() > deadline:
            raise RuntimeError(f"createtree failed: {result.stdout}{result.stderr}")
        time.sleep(0.2)


def start_rekor_v1(netns: NetworkNamespace, workdir: Path) -> RekorV1:
    """Start the whole Rekor v1 stack in ``netns`` (see the module docstring)."""
    binaries = {
        name: go_tool("rekor", name)
        for name in (
            "rekor-server",
            "rekor-cli",
            "trillian_log_server",
            "trillian_log_signer",
            "createtree",
        )
    }
    # A Unix socket path must stay under ~100 bytes: pytest's tmp paths can be longer.
    short = Path(tempfile.mkdtemp(prefix="opkey-rekor1-"))
    started: list[ServerProcess] = []
    try:
        mariadb, socket_path = _start_mariadb(short)
        started.append(mariadb)
        uri = (
            f"trillian:{_DB_PASSWORD}@unix({socket_path})/trillian"
            "?parseTime=true&interpolateParams=true"
        )
        storage = ["--storage_system=mysql", "--quota_system=noop", f"--mysql_uri={uri}"]
        log_server = netns.popen(
            "trillian_log_server",
            [
                str(binaries["trillian_log_server"]),
                *storage,
                f"--rpc_endpoint=127.0.0.1:{_TRILLIAN_RPC}",
                f"--http_endpoint=127.0.0.1:{_TRILLIAN_HTTP}",
                "--tree_gc=false",
            ],
            workdir,
        )
        started.append(log_server)
        signer = netns.popen(
            "trillian_log_signer",
            [
                str(binaries["trillian_log_signer"]),
                *storage,
                "--force_master",
                "--sequencer_interval=20ms",
                f"--rpc_endpoint=127.0.0.1:{_SIGNER_RPC}",
                f"--http_endpoint=127.0.0.1:{_SIGNER_HTTP}",
            ],
            workdir,
        )
        started.append(signer)
        tree_id = _create_tree(netns, binaries["createtree"], log_server)
        key = ec.generate_private_key(ec.SECP256R1())
        key_file = workdir / "rekor-v1-signer.pem"
        key_file.write_bytes(_pem_private(key))
        hostname = "rekor-v1.opkey.test"
        rekor = netns.popen(
            "rekor-server",
            [
                str(binaries["rekor-server"]),
                "serve",
                "--host=127.0.0.1",
                f"--port={REKOR_V1_PORT}",
                "--rekor_server.address=127.0.0.1",
                f"--rekor_server.hostname={hostname}",
                f"--rekor_server.signer={key_file}",
                "--trillian_log_server.address=127.0.0.1",
                f"--trillian_log_server.port={_TRILLIAN_RPC}",
                f"--trillian_log_server.tlog_id={tree_id}",
                "--search_index.storage_provider=mysql",
                f"--search_index.mysql.dsn=trillian:{_DB_PASSWORD}@unix({socket_path})/rekor"
                "?parseTime=true",
                "--enabled_entry_types=hashedrekord,dsse",
                "--log_type=prod",
                "--graceful-timeout=1s",
            ],
            workdir,
        )
        started.append(rekor)
        url = netns.url(REKOR_V1_PORT)
        wait_until(
            lambda: requests.get(f"{url}/ping", timeout=2).status_code == 200,
            timeout=_STARTUP_TIMEOUT,
            what="rekor-server",
            process=rekor,
        )
        return RekorV1(
            url=url,
            hostname=hostname,
            tree_id=tree_id,
            public_key=key.public_key(),
            cli=binaries["rekor-cli"],
            workdir=short,
            mariadb_socket=socket_path,
            processes=started,
            signer_key_file=key_file,
        )
    except BaseException:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(short, ignore_errors=True)
        raise


def stop_rekor_v1(rekor: RekorV1) -> None:
    """Stop what :func:`start_rekor_v1` started (the front first), and remove its files."""
    for process in reversed(rekor.processes):
        process.stop()
    shutil.rmtree(rekor.workdir, ignore_errors=True)


def start_rekor_v2(
    netns: NetworkNamespace,
    workdir: Path,
    key: ed25519.Ed25519PrivateKey | None = None,
    storage: Path | None = None,
) -> RekorV2:
    """Start rekor-tiles' POSIX server in ``netns`` with a fresh Ed25519 checkpoint key (or
    ``key``), writing its tiles under ``storage`` (default: a new directory in ``workdir``)."""
    binary = go_tool("rekor-tiles", "rekor-server-posix")
    key = key or ed25519.Ed25519PrivateKey.generate()
    key_file = workdir / "rekor-v2-signer.pem"
    key_file.write_bytes(_pem_private(key))
    storage = storage or workdir / "rekor-v2-tiles"
    storage.mkdir()
    origin = "rekor-v2.opkey.test"
    server = netns.popen(
        "rekor-server-posix",
        [
            str(binary),
            "serve",
            f"--hostname={origin}",
            f"--storage-dir={storage}",
            f"--signer-filepath={key_file}",
            "--checkpoint-interval=200ms",
            "--batch-max-age=20ms",
            "--http-address=127.0.0.1",
            f"--http-port={REKOR_V2_PORT}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={_REKOR_V2_GRPC}",
            f"--http-metrics-port={_REKOR_V2_METRICS}",
        ],
        workdir,
    )
    url = netns.url(REKOR_V2_PORT)
    wait_until(
        lambda: requests.get(f"{url}/healthz", timeout=2).status_code == 200,
        timeout=_STARTUP_TIMEOUT,
        what="rekor-server-posix",
        process=server,
    )
    return RekorV2(
        url=url, origin=origin, public_key=key.public_key(), storage=storage, process=server
    )


def b64(data: bytes) -> str:
    """Standard base64, as Rekor's JSON wants bytes."""
    return base64.b64encode(data).decode("ascii")


def post_json(url: str, document: dict[str, Any], *, timeout: float = 30) -> requests.Response:
    """POST ``document`` as JSON (bounded in time)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    return requests.post(url, data=json.dumps(document), timeout=timeout, headers=headers)
