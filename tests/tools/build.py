"""Build the Go programs the interop tests drive, from the Go module proxy, at pinned versions.

Each directory under ``tests/tools/`` and ``tests/interop/`` (or ``tests/interop`` itself) that
holds a ``go.mod`` is a small Go module of its own:
``go.mod`` and ``go.sum`` pin the exact versions, and a ``binaries`` file lists what to build,
one ``<name> <package>`` per line (``#`` starts a comment)::

    cosign github.com/sigstore/cosign/v3/cmd/cosign

Nothing is vendored: ``go build`` fetches the modules named in ``go.sum`` from the module proxy
and checks them against it. Binaries go to a cache outside the checkout
(``$OPKEY_TOOLS_CACHE``, default ``~/.cache/opkey-tools``), in a directory named after the
module and a hash of its ``go.mod``, ``go.sum``, ``binaries`` and the Go version, so a fresh
clone on the same machine builds nothing again and a changed pin builds afresh.

Usage: ``python tests/tools/build.py [--list] [MODULE ...]``. Without Go it prints what to
install and exits 0 (the tests that need the programs then skip, or fail under ``CI=true``).
A build that fails is logged next to where its binaries would be; the tests report that log.
This file uses the standard library only: it runs before the virtual environment matters.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE_PARENTS = (ROOT / "tests" / "tools", ROOT / "tests" / "interop")
EXTRA_MODULES = (ROOT / "tests" / "interop",)
BUILD_TIMEOUT = 40 * 60


@dataclass(frozen=True)
class GoModule:
    """One pinned Go module of ours and the programs it builds."""

    name: str
    path: Path
    binaries: tuple[tuple[str, str], ...]

    def key(self, go_version: str) -> str:
        """Hash of everything that decides the build's output."""
        digest = hashlib.sha256(go_version.encode())
        for part in ("go.mod", "go.sum", "binaries"):
            file = self.path / part
            digest.update(part.encode() + b"\0")
            digest.update(file.read_bytes() if file.exists() else b"")
        # The harness builds from its own sources too.
        for source in sorted(self.path.glob("*.go")):
            digest.update(source.name.encode() + b"\0" + source.read_bytes())
        return digest.hexdigest()[:16]


def cache_root() -> Path:
    """Where built binaries are kept."""
    configured = os.environ.get("OPKEY_TOOLS_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opkey-tools"


def go_version() -> str | None:
    """``go version`` output, or ``None`` without Go."""
    go = shutil.which("go")
    if go is None:
        return None
    result = subprocess.run(
        [go, "version"], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


def read_binaries(path: Path) -> tuple[tuple[str, str], ...]:
    """The ``<name> <package>`` lines of a ``binaries`` file."""
    entries = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, package = line.split()
        entries.append((name, package))
    return tuple(entries)


def modules() -> list[GoModule]:
    """Every module with a ``binaries`` file."""
    found = []
    candidates = [d for parent in MODULE_PARENTS if parent.is_dir() for d in parent.iterdir()]
    candidates += [d for d in EXTRA_MODULES if d.is_dir()]
    for directory in sorted(candidates):
        listing = directory / "binaries"
        if listing.is_file() and (directory / "go.mod").is_file():
            found.append(GoModule(directory.name, directory, read_binaries(listing)))
    return found


def output_dir(module: GoModule, version: str) -> Path:
    """Where ``module``'s binaries are (or will be) for this Go version."""
    return cache_root() / f"{module.name}-{module.key(version)}"


def build(module: GoModule, version: str) -> bool:
    """Build every binary of ``module`` unless already built; ``True`` on success."""
    out = output_dir(module, version)
    if all((out / name).is_file() for name, _ in module.binaries):
        return True
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    env = dict(os.environ, CGO_ENABLED=os.environ.get("CGO_ENABLED", "0"))
    started = time.monotonic()
    with log.open("w") as handle:
        for name, package in module.binaries:
            target = out / f".{name}.partial"
            print(f"[tools] building {module.name}: {name} ({package})", file=sys.stderr)
            try:
                result = subprocess.run(
                    ["go", "build", "-trimpath", "-o", str(target), package],
                    cwd=module.path,
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    timeout=BUILD_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                handle.write(f"\nbuild of {package} timed out after {BUILD_TIMEOUT} s\n")
                return False
            if result.returncode != 0:
                print(f"[tools] {module.name}: {name} failed; see {log}", file=sys.stderr)
                return False
            target.replace(out / name)
        handle.write(f"built in {time.monotonic() - started:.0f} s\n")
    return True


def main(argv: list[str] | None = None) -> int:
    """Build the requested modules (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module directory names (default: all)")
    parser.add_argument("--list", action="store_true", help="print where each binary is")
    args = parser.parse_args(argv)
    version = go_version()
    if version is None:
        print(
            "[tools] Go is not installed: the interop tests need it (https://go.dev/dl/, "
            "or apt-get install golang); they will skip (and fail under CI=true)",
            file=sys.stderr,
        )
        return 0
    selected = [m for m in modules() if not args.modules or m.name in args.modules]
    unknown = set(args.modules) - {m.name for m in selected}
    if unknown:
        print(f"[tools] unknown modules: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    failed = []
    for module in selected:
        if args.list:
            out = output_dir(module, version)
            for name, _ in module.binaries:
                state = "built" if (out / name).is_file() else "missing"
                print(f"{module.name}/{name}\t{out / name}\t{state}")
            continue
        if not build(module, version):
            failed.append(module.name)
    if failed:
        print(f"[tools] failed to build: {', '.join(failed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
