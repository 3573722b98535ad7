"""spec/protocol.md's worked examples are exactly what the code produces."""

from __future__ import annotations

from tests.spec_examples import SPEC, build_examples, spec_blocks


def test_every_example_in_the_spec_is_regenerated_exactly() -> None:
    examples = build_examples()
    text = SPEC.read_text()
    blocks = spec_blocks(text)
    assert len(blocks) == text.count("<!-- example: "), "an example block is malformed"
    assert set(blocks) == set(examples), "spec examples and generated examples differ in names"
    for name, body in examples.items():
        assert blocks[name] == body, (
            f"spec example {name!r} is stale; run: python -m tests.spec_examples --write"
        )


def test_examples_are_deterministic() -> None:
    assert build_examples() == build_examples()
