"""Bounded fuzzing in the normal test run: the fuzz harness's targets under Hypothesis.

Each test draws a seed input of a target (``fuzz/targets.py``) and a mutation seed, applies
the harness's structure-aware mutators and runs the target, whose oracle raises a
:class:`~fuzz.targets.Finding` for any defect: an exception outside the opkey error hierarchy,
a round trip that changes a value, or (``verifier``) a mutated bundle accepted although its
signed content differs from every valid seed. Hypothesis-native strategies add inputs the
mutators do not make (arbitrary text with lone surrogates, arbitrary JSON in every slot).

The long runs are ``python -m fuzz``; these keep every target exercised on each test run in a
few seconds.
"""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.mutators import mutate, mutate_json, mutate_segment, mutate_toml
from fuzz.targets import TARGETS, Target, make_targets
from fuzz.world import DIGEST, World, build_world
from opkey.bundle import Bundle
from opkey.errors import OpkeyError
from opkey.pktoken import PKToken
from opkey.policy.file import parse_policy_file, policy_file_from_dict

WORLD: World = build_world()
HARNESS: dict[str, Target] = make_targets(WORLD)
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def test_every_seed_behaves() -> None:
    """Valid seeds are accepted (and decoys refused) before any mutation."""
    assert set(HARNESS) == set(TARGETS)
    for name, target in HARNESS.items():
        outcomes = [target.run(seed) for seed in target.seeds]
        assert "accepted" in " ".join(outcomes), name
    verifier = HARNESS["verifier"]
    for bundle in WORLD.bundles:
        assert verifier.run(bundle.to_json()) == "accepted"
    for decoy in WORLD.decoys:
        assert verifier.run(decoy.to_json()) != "accepted"


@pytest.mark.parametrize("name", TARGETS)
def test_mutants_never_expose_a_defect(name: str) -> None:
    target = HARNESS[name]

    @FUZZ
    @given(st.integers(0, 2**32 - 1), st.integers(0, 1000))
    def check(seed: int, pick: int) -> None:
        rng = random.Random(seed)
        data = mutate(target.seeds[pick % len(target.seeds)], rng, target.seeds)
        target.run(data)  # raises Finding on a defect

    check()


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 1000))
def test_signed_bundle_headers_mutated_inside_their_base64(seed: int, pick: int) -> None:
    """Mutations aimed at the protected headers, payload and OSM of valid bundles only."""
    rng = random.Random(seed)
    bundle = WORLD.bundles[pick % len(WORLD.bundles)]
    data = bundle.to_json()
    for _ in range(rng.randint(1, 3)):
        data = mutate_segment(data, rng) or data
    HARNESS["verifier"].run(data)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_never_escapes_the_error_hierarchy(text: str) -> None:
    """Includes lone surrogates, which only ``str`` input can carry."""
    for parse in (PKToken.from_json, PKToken.from_compact, PKToken.parse, Bundle.from_json):
        with contextlib.suppress(OpkeyError):
            parse(text)
    with contextlib.suppress(OpkeyError):
        parse_policy_file(text)


def _slots(document: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(document, dict):
        for key, value in document.items():
            found += _slots(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _slots(value, (*path, index))
    return found


@FUZZ
@given(st.integers(0, 10**6), JSON)
def test_arbitrary_json_in_any_slot_of_a_bundle(pick: int, value: Any) -> None:
    """Every member of a valid bundle document replaced by arbitrary JSON."""
    document = WORLD.bundles[pick % len(WORLD.bundles)].to_dict()
    slots = _slots(document)
    path = slots[pick % len(slots)]
    if path:
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = value
    else:
        document = value
    try:
        bundle = Bundle.from_json(json.dumps(document))
        WORLD.verifier.verify_bundle(bundle, DIGEST, policy=WORLD.policy)
    except OpkeyError:
        return
    assert (bundle.pktoken.to_json(), bundle.signature) in WORLD.accepted_content()


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 1000))
def test_policy_file_structure_mutants(seed: int, pick: int) -> None:
    rng = random.Random(seed)
    text = WORLD.policy_files[pick % len(WORLD.policy_files)]
    for _ in range(rng.randint(1, 4)):
        text = mutate_toml(text, rng) or text
    HARNESS["policy-file"].run(text)


@FUZZ
@given(JSON)
def test_arbitrary_policy_data_is_a_config_error_or_a_policy_file(value: Any) -> None:
    with contextlib.suppress(OpkeyError):
        policy_file_from_dict({"version": 1, "signers": [{"name": "s", "all_of": [value]}]})
    with contextlib.suppress(OpkeyError):
        policy_file_from_dict(value if isinstance(value, dict) else {"signers": value})


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 1000))
def test_jwks_and_discovery_structure_mutants(seed: int, pick: int) -> None:
    rng = random.Random(seed)
    for name in ("jwks", "discovery"):
        target = HARNESS[name]
        data = target.seeds[pick % len(target.seeds)]
        data = mutate_json(data, rng) or data
        target.run(data)


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 1000))
def test_registry_answer_structure_mutants(seed: int, pick: int) -> None:
    """Manifests, tag pages, token and error bodies with their JSON structure mutated."""
    rng = random.Random(seed)
    for name in ("registry-manifest", "registry-tags", "registry-token", "registry-errors"):
        target = HARNESS[name]
        data = target.seeds[pick % len(target.seeds)]
        data = mutate_json(data, rng) or data
        target.run(data)
