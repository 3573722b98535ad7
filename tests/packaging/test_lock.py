"""action/requirements.txt locks what pyproject.toml asks for, every entry pinned by hash."""

from __future__ import annotations

import re
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.packaging.conftest import LOCK, ROOT, locked

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _by_name() -> dict[str, list[str]]:
    versions: dict[str, list[str]] = {}
    for entry in locked():
        versions.setdefault(entry.name, []).append(entry.version)
    return versions


def test_every_entry_is_an_exact_version_with_hashes() -> None:
    entries = locked()
    assert len(entries) >= 10
    for entry in entries:
        assert entry.version
        assert entry.hashes, entry.name
        for digest in entry.hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), (entry.name, digest)


def test_runtime_dependencies_and_build_backend_are_locked_within_their_ranges() -> None:
    versions = _by_name()
    wanted = [
        *PYPROJECT["project"]["dependencies"],
        *PYPROJECT["build-system"]["requires"],
    ]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in versions, f"{name} is not in {LOCK.name}"
        for version in versions[name]:
            assert requirement.specifier.contains(version, prereleases=True), (name, version)


def test_the_lock_input_names_the_project_dependencies() -> None:
    text = (ROOT / "action" / "requirements.in").read_text()
    names = {
        canonicalize_name(Requirement(line).name)
        for line in (raw.split("#", 1)[0].strip() for raw in text.splitlines())
        if line
    }
    declared = {
        canonicalize_name(Requirement(r).name)
        for r in [*PYPROJECT["project"]["dependencies"], *PYPROJECT["build-system"]["requires"]]
    }
    assert names == declared
