"""Fixtures for the distribution tests: the locked dependency wheels, downloaded once.

``dependency_wheels`` is a directory holding, for this interpreter, a wheel of every
requirement in ``action/requirements.txt`` (opkey's runtime dependencies and the build
backend), fetched by pip with hash checking into a cache outside the checkout
(``$OPKEY_WHEEL_CACHE``, default ``~/.cache/opkey-tests/wheels``) under a name derived from
the lock file and the interpreter. Installs in the tests then run with ``--no-index
--find-links`` that directory: fast, and without the network after the first run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.toolchain import missing

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "action" / "requirements.txt"


@dataclass(frozen=True)
class Locked:
    """One entry of the lock file."""

    requirement: Requirement
    hashes: tuple[str, ...]

    @property
    def name(self) -> str:
        """The canonical project name."""
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> str:
        """The pinned version."""
        (specifier,) = self.requirement.specifier
        assert specifier.operator == "==", self.requirement
        return specifier.version

    def applies(self) -> bool:
        """Whether this entry is installed on this interpreter (its marker holds)."""
        marker = self.requirement.marker
        return marker is None or marker.evaluate()


def locked() -> list[Locked]:
    """The entries of action/requirements.txt."""
    entries = []
    text = LOCK.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *hashes = line.split(" --hash=")
        entries.append(Locked(Requirement(spec.strip()), tuple(h.strip() for h in hashes)))
    return entries


def _cache_root() -> Path:
    configured = os.environ.get("OPKEY_WHEEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "opkey-tests" / "wheels"


def offline_pip_env(wheels: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment in which pip installs only from ``wheels`` and ignores user config."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(wheels),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
        }
    )
    return env


@pytest.fixture(scope="session")
def dependency_wheels() -> Path:
    """Wheels of everything in action/requirements.txt for this interpreter (see module doc)."""
    tag = f"{sys.implementation.cache_tag}-{sys.platform}"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    target = _cache_root() / f"{tag}-{digest}"
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "--require-hashes",
                "--only-binary",
                ":all:",
                "--dest",
                str(staging),
                "-r",
                str(LOCK),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            missing(
                "cannot download the locked dependency wheels (is the package index "
                f"reachable?): {result.stderr.strip()[-500:]}"
            )
        (staging / ".complete").write_text(LOCK.name + "\n")
        try:
            staging.rename(target)
        except OSError:  # another run finished first: use its copy
            if not (target / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
