"""Run the development OpenID provider on loopback.

Run opkey's development OpenID provider on 127.0.0.1 (only) until interrupted. With
``--env-file`` it writes, once the server accepts connections, ``NAME=value`` lines (written to
a temporary file and renamed, so a reader never sees half a file) that point opkey's GitHub
Actions and GitLab CI providers at it::

    opkey dev-idp --port 0 --env-file dev.env &
    set -a; . ./dev.env; set +a
    opkey sign ...        # GITHUB_ACTIONS=true, ACTIONS_ID_TOKEN_REQUEST_URL=..., ...

SIGINT or SIGTERM stops it cleanly (exit status 0).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

__all__ = ["configure", "run", "write_env_file"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``dev-idp`` options."""
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument(
        "--env-file", metavar="FILE", help="write NAME=value lines for the CI providers here"
    )
    parser.add_argument("--user-sub", help="sub of the development user")
    parser.add_argument("--user-email", help="email of the development user")
    parser.add_argument(
        "--github-repository", metavar="OWNER/REPO", help="repository of GitHub-style tokens"
    )
    parser.add_argument(
        "--github-ref", default="refs/heads/main", help="ref of GitHub-style tokens"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write ``NAME=value`` lines atomically (:func:`opkey.files.write_file_atomically`), mode
    0600: they include the request token and a GitLab-style ID token."""
    from opkey.files import write_file_atomically

    for name, value in values.items():
        if "\n" in value or "\n" in name:
            raise ValueError(f"environment value for {name} contains a newline")
    text = "".join(f"{name}={value}\n" for name, value in values.items())
    write_file_atomically(path, text.encode("utf-8"), what="environment file", private=True)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM."""
    import signal
    import threading
    from dataclasses import replace
    from pathlib import Path

    from opkey.errors import ConfigError
    from opkey.sandbox.devidp import DevIdP, DevIdPSettings, GitHubWorkload

    settings = DevIdPSettings()
    user_changes = {
        name: value
        for name, value in (("sub", args.user_sub), ("email", args.user_email))
        if value is not None
    }
    if user_changes:
        settings = replace(settings, user=replace(settings.user, **user_changes))
    if args.github_repository:
        try:
            workload = GitHubWorkload.for_repository(args.github_repository, ref=args.github_ref)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        settings = replace(settings, github=workload)
    elif args.github_ref != "refs/heads/main":
        settings = replace(
            settings,
            github=GitHubWorkload.for_repository(settings.github.repository, ref=args.github_ref),
        )

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            idp = DevIdP(port=args.port, settings=settings, verbose=args.verbose).start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
        try:
            env = idp.env()
            env["OPENPUBKEY_JWT"] = idp.mint_gitlab_token()
            if args.env_file is not None:
                write_env_file(Path(args.env_file), env)
            print(f"opkey dev-idp: serving {idp.issuer}", file=sys.stderr, flush=True)
            if args.env_file is not None:
                print(f"opkey dev-idp: environment written to {args.env_file}", file=sys.stderr)
            while not stop.wait(0.5):
                pass
        finally:
            idp.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("opkey dev-idp: stopped", file=sys.stderr, flush=True)
    return 0
