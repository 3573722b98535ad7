"""The layout of ``spec/architecture.md``, checked against the code's own imports.

Every import statement in ``opkey/`` counts, at module level or inside a function, under
``TYPE_CHECKING`` or not: an arrow is an arrow, whenever it is followed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "opkey"

#: The protocol core: pure, no network, no clock, no files (except ``files``, the one seam to
#: local files, which ``Digest.of_file`` uses). It imports only itself.
CORE = {
    "opkey._version",
    "opkey.errors",
    "opkey.files",
    "opkey.jose",
    "opkey.keys",
    "opkey.cic",
    "opkey.pktoken",
    "opkey.gq",
    "opkey.message",
    "opkey.digest",
    "opkey.artifact",
    "opkey.bundle",
    "opkey.expiry",
    "opkey.tables",
    "opkey.issuers",
    "opkey.verify",
    "opkey.cosign",
    "opkey.dsse",
    "opkey.intoto",
    "opkey.attestation",
    "opkey.provenance",
    "opkey.policy.predicates",
    "opkey.jwks.keyset",
    "opkey.policy.claims",
    "opkey.policy.workloads",
    "opkey.policy.signoff",
    # Transparency logs, checked offline (the client and the monitor are the I/O edge).
    "opkey.tlog",
    "opkey.tlog._encoding",
    "opkey.tlog.certificate",
    "opkey.tlog.checkpoint",
    "opkey.tlog.entry",
    "opkey.tlog.entry_timestamp",
    "opkey.tlog.log",
    "opkey.tlog.merkle",
    "opkey.tlog.note",
    "opkey.tlog.rekor",
    "opkey.tlog.signature_entry",
}
#: What the command line's verification front ends must leave to the library.
WIRING = {
    "opkey.jwks.sources",
    "opkey.jwks.archive",
    "opkey.jwks.client",
}
WIRING_NAMES = {"evaluate_signers", "FallbackKeys", "PinnedKeys", "LiveKeys", "ArchiveKeys"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, known: set[str]) -> Iterator[tuple[str, set[str]]]:
    """``(module, names)`` for every opkey import in ``path`` (names for ``from`` imports)."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("opkey"):
                    yield alias.name, set()
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            module = node.module
            if node.level:
                assert package is not None
                module = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{module}.{node.module}"
            if not module.startswith("opkey"):
                continue
            names = {alias.name for alias in node.names}
            # ``from opkey import issuers`` imports a module.
            submodules = {f"{module}.{n}" for n in names if f"{module}.{n}" in known}
            for submodule in submodules:
                yield submodule, set()
            if not submodules or names - {s.rsplit(".", 1)[1] for s in submodules}:
                yield module, names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _ in _imports(path, known):
            if target in known and target != name and target != "opkey":
                graph[name].add(target)
    return graph


def test_no_import_cycle_anywhere_in_opkey() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_protocol_core_imports_only_the_core() -> None:
    graph = _graph()
    for module in sorted(CORE):
        assert module in graph, f"{module} is listed as core but does not exist"
        outside = graph[module] - CORE
        assert not outside, f"core module {module} imports {sorted(outside)}"


def test_command_line_verification_leaves_wiring_to_the_library() -> None:
    """No CLI module builds key sources, opens archives or evaluates sign-off itself.

    ``opkey jwks`` (``cli/jwks.py``) is the front end of the archive itself: managing it is
    its whole job.
    """
    modules = _modules()
    known = set(modules)
    for name, path in sorted(modules.items()):
        if not name.startswith("opkey.cli") or name == "opkey.cli.jwks":
            continue
        for target, names in _imports(path, known):
            assert target not in WIRING, f"{name} imports {target}"
            assert not names & WIRING_NAMES, f"{name} imports {sorted(names & WIRING_NAMES)}"


def test_the_sandbox_is_used_only_by_the_cli() -> None:
    """The dev IdP, local registry and demo are never part of what a verifier deploys."""
    graph = _graph()
    for module, targets in sorted(graph.items()):
        if module.startswith(("opkey.sandbox", "opkey.cli")):
            continue
        sandbox = {t for t in targets if t.startswith("opkey.sandbox")}
        assert not sandbox, f"{module} imports {sorted(sandbox)}"


def test_every_error_class_is_defined_in_errors_py() -> None:
    """One error tree: no module defines an :class:`OpkeyError` of its own."""
    import importlib

    from opkey.errors import OpkeyError

    for name in sorted(_modules()):
        if name == "opkey.__main__":  # runs the command line when imported
            continue
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, OpkeyError):
                assert value.__module__ == "opkey.errors", f"{name} defines {value.__name__}"
