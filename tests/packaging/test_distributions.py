"""The sdist and the wheel, as a packager and a user get them.

Both are built once per module with ``python -m build`` (isolated, as a packager builds, with
the build backend taken from the locked wheels) from a copy of the project, checked with
``twine check --strict``, and the wheel is installed into a fresh virtual environment with
nothing but its declared dependencies, where ``opkey --help`` and ``opkey demo`` must work.
The sdist must carry the whole test suite, and a part of that suite is run from it.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.packaging.conftest import ROOT, offline_pip_env

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.slow

#: Not part of the project: local state that a checkout may hold.
_LOCAL = (
    ".git",
    ".venv",
    "__pycache__",
    "*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "*.egg-info",
    "build",
    "dist",
    "corpus",
    "findings",
    ".peer-venv",
)
REPOSITORY = "https://github.com/opkey-dev/opkey"


@dataclass(frozen=True)
class Built:
    source: Path
    sdist: Path
    wheel: Path


def _run(*command: str | Path, **options: object) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        **options,  # type: ignore[call-overload]
    )
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result


def _project_files(root: Path) -> set[str]:
    """Every file of the project tree (what the sdist must hold), relative to ``root``."""
    ignored = shutil.ignore_patterns(*_LOCAL)
    found = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not ignored(directory, [d])]
        for name in files:
            if not ignored(directory, [name]):
                found.add(str((Path(directory) / name).relative_to(root)))
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, dependency_wheels: Path) -> Built:
    """The sdist and the wheel built from the sdist, from a copy of the project."""
    base = tmp_path_factory.mktemp("distributions")
    source = base / "opkey"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_LOCAL), symlinks=True)
    out = base / "dist"
    _run(
        sys.executable,
        "-m",
        "build",
        "--outdir",
        out,
        source,
        env=offline_pip_env(dependency_wheels),
    )
    (sdist,) = out.glob("opkey-*.tar.gz")
    (wheel,) = out.glob("opkey-*-py3-none-any.whl")
    return Built(source, sdist, wheel)


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(name).decode("utf-8")
    parsed: Message = email.parser.Parser(policy=email.policy.compat32).parsestr(text)
    return parsed


def test_twine_check_strict_passes_on_both(built: Built) -> None:
    result = _run(sys.executable, "-m", "twine", "check", "--strict", built.sdist, built.wheel)
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_metadata_license_urls_and_dependencies(built: Built) -> None:
    metadata = _metadata(built.wheel)
    assert metadata["Metadata-Version"] in ("2.4", "2.5")
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the expression says it
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert urls["Homepage"] == REPOSITORY
    assert all(url.startswith(REPOSITORY) for url in urls.values())
    assert metadata["Author"] == "opkey-dev"
    assert metadata["Requires-Python"] == ">=3.10"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {str(Requirement(r)) for r in metadata.get_all("Requires-Dist") or []}
    for requirement in pyproject["dependencies"]:
        assert str(Requirement(requirement)) in declared


def test_long_description_links_work_on_a_package_index(built: Built) -> None:
    description = _metadata(built.wheel).get_payload()
    assert isinstance(description, str)
    assert "## Signing in GitHub Actions" in description
    links = re.findall(r"\]\(([^)\s]+)\)", description)
    assert links
    for link in links:
        assert link.startswith(REPOSITORY + "/"), f"relative or foreign link {link!r}"
        path = link.removeprefix(REPOSITORY + "/").split("/", 2)
        assert path[0] in ("blob", "tree"), link
        assert path[1] == "main", link
        assert (ROOT / path[2]).exists(), f"{link} names a file the project does not have"


def test_wheel_holds_the_package_and_its_license_only(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"opkey", built.wheel.name.split("-py3")[0] + ".dist-info"}
    assert "opkey/py.typed" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    packaged = {n for n in names if n.startswith("opkey/") and n.endswith(".py")}
    on_disk = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "opkey").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert packaged == on_disk


def test_sdist_ships_the_whole_project_with_its_tests(built: Built) -> None:
    with tarfile.open(built.sdist) as archive:
        members = {m.name.split("/", 1)[1]: m for m in archive.getmembers() if "/" in m.name}
    files = {name for name, member in members.items() if member.isfile()}
    expected = _project_files(built.source)
    assert expected - files == set(), "files the sdist leaves out"
    for name in ("tests/conftest.py", "tests/helpers.py", "tests/data/SOURCES.md", "LICENSE"):
        assert name in files
    assert any(name.startswith("tests/data/github-actions/") for name in files)
    for script in ("dev", ".ci/run"):
        assert members[script].mode & stat.S_IXUSR, f"{script} lost its executable bit"
    extra = files - expected - {"PKG-INFO", "setup.cfg"}
    assert all(name.startswith("opkey.egg-info/") for name in extra), extra


def test_tests_run_from_the_unpacked_sdist(built: Built, tmp_path: Path) -> None:
    with tarfile.open(built.sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.iterdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ACTIONS_"))}
    found = _run(sys.executable, "-c", "import opkey; print(opkey.__file__)", cwd=unpacked, env=env)
    assert Path(found.stdout.strip()).is_relative_to(unpacked)  # the sdist's code is tested
    result = _run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow and not registry",
        "tests/test_github_tokens.py",  # conftest fixtures and the real tokens in tests/data
        "tests/test_examples.py",  # examples/, README and action.yml
        "-k",
        "not test_sign_and_verify and not test_verify_offline and not one_bit_change",
        "tests/test_quickstart.py",  # dev and .ci/run
        "tests/packaging/test_action.py::test_inputs_reach_scripts_only_through_env",
        cwd=unpacked,
        env=env,
    )
    assert re.search(r"\d+ passed", result.stdout), result.stdout
    assert "failed" not in result.stdout
    assert "error" not in result.stdout.lower()


def test_the_wheel_works_in_a_fresh_environment(
    built: Built, dependency_wheels: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # pip from outside the environment (--python), from the locked wheels only
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        built.wheel,
        env=offline_pip_env(dependency_wheels),
    )
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    where = _run(python, "-c", "import opkey; print(opkey.__file__)", cwd=tmp_path, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv)
    help_text = _run(venv / "bin" / "opkey", "--help", cwd=tmp_path, env=env).stdout
    assert "sign" in help_text
    assert "verify" in help_text
    verify_help = _run(venv / "bin" / "opkey", "verify", "--help", cwd=tmp_path, env=env).stdout
    assert f"{REPOSITORY}/blob/main/spec/policy-file.md" in re.sub(r"\s+", "", verify_help)
    demo = _run(venv / "bin" / "opkey", "demo", cwd=tmp_path, env=env)
    assert "Demo complete: 2 signatures verified, 3 forgeries rejected" in demo.stdout
