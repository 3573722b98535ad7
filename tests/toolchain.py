"""Finding the external programs the interop tests drive: Go tools we build, Debian packages.

Go programs (cosign, crane, the OpenPubkey harness…) are built by ``tests/tools/build.py``
(``./dev test`` runs it first) into a cache outside the checkout. A test that needs one calls
:func:`go_tool`; a Debian program, :func:`system_tool`. When the program is missing the test
skips with a message naming what to install, except under ``CI=true``, where it fails: CI must
run every interop test.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

__all__ = ["go_tool", "missing", "system_tool"]

_BUILD = Path(__file__).parent / "tools" / "build.py"


def missing(message: str) -> None:
    """Skip the test for a missing dependency; under ``CI=true``, fail it instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: interop tests must run)")
    pytest.skip(message)


@cache
def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("opkey_tools_build", _BUILD)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _go_version() -> str | None:
    version: str | None = _build_module().go_version()
    return version


def go_tool(module: str, binary: str | None = None) -> Path:
    """The path of ``binary`` (default: the module's name) built from ``tests/tools/<module>``
    (or ``tests/interop/<module>``); skips or fails the test when it is not built."""
    build = _build_module()
    name = binary or module
    version = _go_version()
    if version is None:
        missing(f"Go is not installed, so {name} cannot be built (install Go 1.26 or newer)")
    assert version is not None
    found = {m.name: m for m in build.modules()}
    if module not in found:
        raise LookupError(f"no Go tool module {module!r} under tests/tools")
    path: Path = build.output_dir(found[module], version) / name
    if not path.is_file():
        log = path.parent / "build.log"
        detail = f"; its build failed, see {log}" if log.is_file() else ""
        missing(f"{name} is not built (run: python tests/tools/build.py {module}){detail}")
    return path


def system_tool(name: str, package: str) -> str:
    """The path of a program from a Debian package; skips or fails the test when missing."""
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None
    )
    if found is None:
        missing(f"{name} is not installed (apt-get install {package})")
    assert found is not None
    return found
