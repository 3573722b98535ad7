"""opkey's fuzz harness: mutation fuzzing of every parser and of the verifier.

Run it from the repository root::

    python -m fuzz --list
    python -m fuzz --target pktoken-json --seconds 600
    python -m fuzz --target verifier --seconds 600 --engine atheris   # needs `pip install .[fuzz]`
    python -m fuzz --target verifier --replay fuzz/findings/verifier/<file>.bin

Targets: ``pktoken-json``, ``pktoken-compact``, ``bundle``, ``policy-file``, ``verifier``,
``jwks``, ``discovery``, ``tlog-entry``, ``tlog-checkpoint``, ``tlog-bundle``,
``tlog-monitor``. The seed corpus is built from the
real data in ``tests/data`` (GitHub Actions tokens and JWKS, the discovery document, the
policy-file spec examples, recorded Rekor answers) and from valid PK tokens and bundles minted
by a local provider key (:mod:`fuzz.world`).

A **finding** is any exception that is not an :class:`~opkey.errors.OpkeyError`, an input that
takes longer than the per-input budget, a parse/serialize round trip that changes meaning, or
(for ``verifier``) a mutated bundle that is *accepted* although its signed content differs
from every valid seed. Findings are written to ``fuzz/findings/<target>/`` (ignored by git);
the ones worth keeping become tests in ``tests/security/test_sec_regressions.py``.

Two engines: ``random`` (default, no dependencies) is a structure-aware mutation fuzzer
(:mod:`fuzz.mutators`) whose corpus grows with every new *outcome* (error class and message
shape); ``atheris`` runs the same mutators as a custom mutator under libFuzzer with coverage
feedback.
"""
