r"""Conditions on an attestation's predicate: fields named by a JSON pointer, matched exactly.

A signer requirement that names a predicate type may also say what the predicate must say: a
scan's result must be ``PASSED``, an approval's ticket must match ``CHG-[0-9]+``. Each
:class:`PredicateCondition` names one field with a JSON pointer (RFC 6901: ``/a/b/0``, ``~0``
for ``~`` and ``~1`` for ``/`` in names; ``""`` is the whole predicate) and matches it with
the claim matchers of :mod:`opkey.policy.claims`, with their rules: exact and typed
(``"1"`` ≠ ``1`` ≠ ``true``), globs whose ``*`` stops at ``/``, regexes always anchored,
printable ASCII unless ``allow_non_ascii``. A field that is missing, or of another type, fails.

Conditions are checked on the statement the envelope signature covers, never on anything
beside it (an annotation, an index entry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from opkey.errors import ConfigError, PolicyError
from opkey.policy.claims import ClaimEquals, ClaimGlob, ClaimRegex, ClaimValue

__all__ = ["Matcher", "PredicateCondition", "resolve_pointer"]

Matcher = Literal["equals", "glob", "regex"]
_MISSING: Any = object()
_MAX_POINTER = 1024


def _tokens(pointer: str) -> list[str]:
    if not isinstance(pointer, str):
        raise ConfigError(f"a JSON pointer must be a string, found {type(pointer).__name__}")
    if len(pointer) > _MAX_POINTER:
        raise ConfigError(f"JSON pointer longer than {_MAX_POINTER} characters")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ConfigError(f"JSON pointer {pointer!r} must be empty or start with '/' (RFC 6901)")
    tokens = []
    for token in pointer[1:].split("/"):
        stripped = token.replace("~0", "").replace("~1", "")
        if "~" in stripped:
            raise ConfigError(f"JSON pointer {pointer!r}: '~' must be written ~0 (or ~1 for '/')")
        tokens.append(token.replace("~1", "/").replace("~0", "~"))
    return tokens


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value ``pointer`` names in ``document``, or a sentinel that no matcher accepts.

    Array indices are decimal without leading zeros (``-`` names nothing).
    """
    node = document
    for token in _tokens(pointer):
        if isinstance(node, Mapping):
            if token not in node:
                return _MISSING
            node = node[token]
        elif isinstance(node, (list, tuple)):
            if not token.isdigit() or (token != "0" and token.startswith("0")):  # noqa: S105
                return _MISSING
            index = int(token)
            if index >= len(node):
                return _MISSING
            node = node[index]
        else:
            return _MISSING
    return node


@dataclass(frozen=True, slots=True)
class PredicateCondition:
    """The predicate field at ``pointer`` matches ``value`` (``equals``, ``glob`` or ``regex``)."""

    pointer: str
    matcher: Matcher
    value: ClaimValue
    allow_non_ascii: bool = False
    _matcher: ClaimEquals | ClaimGlob | ClaimRegex = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        _tokens(self.pointer)
        # Patterns are checked (and compiled) when the policy is made, not when it is used.
        object.__setattr__(self, "_matcher", self._leaf())

    def _leaf(self) -> ClaimEquals | ClaimGlob | ClaimRegex:
        name = self.pointer or "/"
        if self.matcher == "equals":
            if self.allow_non_ascii:
                raise ConfigError("allow_non_ascii applies to glob and regex conditions")
            return ClaimEquals(name, self.value)
        if not isinstance(self.value, str):
            raise ConfigError(f"a {self.matcher} condition takes a string pattern")
        if self.matcher == "glob":
            return ClaimGlob(name, self.value, allow_non_ascii=self.allow_non_ascii)
        if self.matcher == "regex":
            return ClaimRegex(name, self.value, allow_non_ascii=self.allow_non_ascii)
        raise ConfigError(f"unknown predicate matcher {self.matcher!r}; use equals, glob or regex")

    def check(self, predicate: Mapping[str, Any]) -> None:
        """Raise :class:`PolicyError` unless the predicate field matches."""
        leaf = self._matcher
        found = resolve_pointer(predicate, self.pointer)
        fields = {} if found is _MISSING else {leaf.name: found}
        try:
            leaf.check(fields)
        except PolicyError as exc:
            message = str(exc).replace("claim ", "predicate field ", 1)
            message = message.replace("(the claim is missing)", "(the field is missing)", 1)
            raise PolicyError(message, expected=exc.expected, found=exc.found) from None

    def describe(self) -> str:
        """``predicate <pointer> == "PASSED"`` and the like."""
        return "predicate " + self._matcher.describe()
