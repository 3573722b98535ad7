"""Identity policies: *who* must have signed, checked against verified ID token claims.

A signature that verifies only proves that *someone* with an ID token from a trusted issuer
signed. A :class:`Policy` says who that someone must be. Policies are small frozen values with
one method, :meth:`Policy.check`, which returns ``None`` or raises
:class:`~opkey.errors.PolicyError` naming the claim, the expected and the found value::

    from opkey.policy.claims import AllOf, ClaimGlob
    from opkey.policy.workloads import GitHubWorkflow

    policy = AllOf([
        GitHubWorkflow(repository_id="433903792", repository_owner_id="25015917"),
        ClaimGlob("ref", "refs/tags/v*"),
    ])
    policy.check(verified.claims)  # raises PolicyError if the signer is someone else

Matching rules, the same for every policy (they are the point of this module):

* **Exact.** Claims are compared as they are in the token: no Unicode normalisation (NFC and
  NFD spellings of ``é`` differ), no case folding, no trimming, no trailing-slash tolerance.
* **Typed.** A claim compared with a string must be a string; a missing claim or one of
  another JSON type fails. Non-string values compare type-exactly: ``true`` is not ``1`` and
  ``"1"`` is not ``1``. Arrays (``aud``, ``groups``) match only through :class:`ClaimContains`,
  by membership, never by substring.
* **Anchored.** :class:`ClaimRegex` always matches the whole claim (``re.fullmatch``): ``foo``
  does not match ``xfoo`` or ``foox``. cosign's unanchored regexes are a known trap.
* **Globs that respect paths.** In :class:`ClaimGlob`, ``*`` and ``?`` never match ``/`` and
  ``**`` matches anything, so ``octo-org/*`` cannot match ``octo-org/repo/../evil``-like
  values with more path segments. Matching is case-sensitive like ``fnmatch.fnmatchcase``.
* **ASCII unless asked.** Wildcard leaves (:class:`ClaimGlob`, :class:`ClaimRegex`) only match
  printable-ASCII values unless built with ``allow_non_ascii=True``: GitHub and GitLab
  identifiers are ASCII, so a Cyrillic ``а`` in ``octo-org/аpp`` is an attack, not a repository
  that ``octo-org/*`` should accept. Exact leaves need no such rule: an ASCII expected value
  can never equal a value containing a confusable character.
* **No empty compositions.** ``AllOf([])`` and ``AnyOf([])`` are :class:`ConfigError`: an
  empty AND would accept everyone, an empty OR no one; both are mistakes.

Identities should be pinned on **stable IDs**: :class:`GitHubWorkflow` prefers
``repository_id`` and ``repository_owner_id`` because a renamed or deleted repository's name can
be registered again by someone else, and because owners can customise the ``sub`` template, so a
policy on ``sub`` or on names alone may match the wrong workload.

:class:`UnsafeNoPolicy` accepts every signer. It exists so that skipping identity checks is
visible in code and configuration; never use it to protect anything.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeAlias, runtime_checkable

from opkey.errors import ConfigError, PolicyError
from opkey.jose import thaw_json
from opkey.tables import json_type_name

__all__ = [
    "AllOf",
    "AnyOf",
    "ClaimContains",
    "ClaimEquals",
    "ClaimGlob",
    "ClaimRegex",
    "ClaimValue",
    "Issuer",
    "PinsIssuer",
    "Policy",
    "Subject",
    "UnsafeNoPolicy",
    "accepts_any_signer",
    "json_type_name",
    "pinned_issuers",
]


#: The JSON scalar types a policy may compare a claim with. Floats are excluded: a JSON number
#: with a fraction has no single exact spelling, and no identity claim uses one.
ClaimValue: TypeAlias = str | int | bool

_MISSING: Any = object()
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_MAX_RENDERED = 200


@runtime_checkable
class PinsIssuer(Protocol):
    """A policy that accepts tokens of exactly one issuer (see :func:`pinned_issuers`)."""

    @property
    def pinned_issuer(self) -> str:
        """The issuer URL every accepted token must carry in ``iss``."""
        ...


@runtime_checkable
class Policy(Protocol):
    """Anything that can decide whether verified claims identify an acceptable signer."""

    def check(self, claims: Mapping[str, Any]) -> None:
        """Return if ``claims`` satisfy the policy; raise :class:`PolicyError` otherwise."""

    def describe(self) -> str:
        """A one-line, human-readable statement of what the policy requires."""


# -- rendering values in messages --------------------------------------------------------------


def _render(value: Any) -> str:
    """A value as JSON with non-ASCII escaped, so confusables are visible (``\\u0430``)."""
    try:
        text = json.dumps(thaw_json(value), ensure_ascii=True, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _MAX_RENDERED:
        text = text[: _MAX_RENDERED - 3] + "..."
    return text


def _non_ascii_note(value: str) -> str:
    for index, char in enumerate(value):
        if not 0x20 <= ord(char) <= 0x7E:
            name = unicodedata.name(char, "control character" if ord(char) < 0x80 else "unnamed")
            return f" (contains U+{ord(char):04X} {name} at index {index})"
    return ""


def _describe_found(value: Any) -> str:
    if value is _MISSING:
        return "nothing (the claim is missing)"
    note = _non_ascii_note(value) if isinstance(value, str) else ""
    return f"{json_type_name(value)} {_render(value)}{note}"


def _fail(name: str, expectation: str, value: Any, expected: Any) -> PolicyError:
    return PolicyError(
        f"claim {name!r}: expected {expectation}, found {_describe_found(value)}",
        expected=expected,
        found=None if value is _MISSING else value,
    )


# -- validation helpers (construction time) ----------------------------------------------------


def _require_name(what: str, name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"{what}: claim name must be a non-empty string, found {json_type_name(name)}"
            f" {_render(name)}",
            found=name,
        )


def _require_text(what: str, value: object, *, strip_check: bool = False) -> None:
    if not isinstance(value, str):
        raise ConfigError(
            f"{what}: expected a string, found {json_type_name(value)} {_render(value)}",
            found=value,
        )
    if not value:
        raise ConfigError(f"{what}: must not be empty", found=value)
    if strip_check and value != value.strip():
        raise ConfigError(
            f"{what}: {_render(value)} has leading or trailing whitespace, which no token carries",
            found=value,
        )


def _require_claim_value(what: str, value: object) -> None:
    if not isinstance(value, (str, int)):
        raise ConfigError(
            f"{what}: expected a string, integer or boolean, found {json_type_name(value)}"
            f" {_render(value)}",
            found=value,
        )


def _same(found: Any, expected: ClaimValue) -> bool:
    """Type-exact equality: ``True`` is not ``1`` and ``"1"`` is not ``1``."""
    return type(found) is type(expected) and found == expected


def _check_equal(claims: Mapping[str, Any], name: str, expected: ClaimValue) -> None:
    value = claims.get(name, _MISSING)
    if not _same(value, expected):
        raise _fail(name, f"{json_type_name(expected)} {_render(expected)}", value, expected)


def _string_claim(claims: Mapping[str, Any], name: str, expectation: str, expected: Any) -> str:
    value = claims.get(name, _MISSING)
    if not isinstance(value, str):
        raise _fail(name, expectation, value, expected)
    return value


# -- leaves ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issuer:
    """The ``iss`` claim equals ``url`` exactly (no trailing-slash or scheme tolerance)."""

    url: str

    def __post_init__(self) -> None:
        _require_text("Issuer url", self.url, strip_check=True)

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`PolicyError` unless ``iss`` is exactly :attr:`url`."""
        _check_equal(claims, "iss", self.url)

    def describe(self) -> str:
        """``iss == "<url>"``."""
        return f"iss == {_render(self.url)}"

    @property
    def pinned_issuer(self) -> str:
        """See :class:`PinsIssuer`."""
        return self.url


@dataclass(frozen=True, slots=True)
class Subject:
    """The ``sub`` claim equals ``value`` exactly.

    Prefer stable-ID claims for CI workloads: GitHub lets owners change the ``sub`` template.
    """

    value: str

    def __post_init__(self) -> None:
        _require_text("Subject value", self.value)

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`PolicyError` unless ``sub`` is exactly :attr:`value`."""
        _check_equal(claims, "sub", self.value)

    def describe(self) -> str:
        """``sub == "<value>"``."""
        return f"sub == {_render(self.value)}"


@dataclass(frozen=True, slots=True)
class _ValueRule:
    """What the equality and membership rules share: claim ``name`` compared, type-exactly,
    with one configured ``value``, both checked at construction (named by the rule's class)."""

    name: str
    value: ClaimValue

    def __post_init__(self) -> None:
        kind = type(self).__name__
        _require_name(kind, self.name)
        _require_claim_value(f"{kind}({self.name!r}) value", self.value)


@dataclass(frozen=True, slots=True)
class ClaimEquals(_ValueRule):
    """Claim ``name`` equals ``value``, type-exactly (``"1"`` ≠ ``1`` ≠ ``true``).

    An array claim never equals a scalar; use :class:`ClaimContains` for membership.
    """

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`PolicyError` unless the claim is exactly :attr:`value`."""
        _check_equal(claims, self.name, self.value)

    def describe(self) -> str:
        """``<name> == <value>``."""
        return f"{self.name} == {_render(self.value)}"


@dataclass(frozen=True, slots=True)
class ClaimContains(_ValueRule):
    """Array claim ``name`` has an element equal (type-exactly) to ``value``.

    A string claim counts as a one-element array, because RFC 7519 lets ``aud`` be either a
    string or an array; it is never searched for substrings. Any other type fails.
    """

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`PolicyError` unless the claim contains :attr:`value`."""
        value = claims.get(self.name, _MISSING)
        if isinstance(value, str):
            items: Sequence[Any] = (value,)
        elif isinstance(value, (list, tuple)):
            items = value
        else:
            raise _fail(self.name, f"an array containing {_render(self.value)}", value, self.value)
        if not any(_same(item, self.value) for item in items):
            raise _fail(self.name, f"an array containing {_render(self.value)}", value, self.value)

    def describe(self) -> str:
        """``<value> in <name>``."""
        return f"{_render(self.value)} in {self.name}"


def _glob_to_regex(pattern: str) -> str:
    """Translate a path-aware glob to a regular expression (see :class:`ClaimGlob`)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                while i < n and pattern[i] == "*":
                    i += 1
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            j = i + 1
            negate = j < n and pattern[j] == "!"
            if negate:
                j += 1
            start = j
            if j < n and pattern[j] == "]":  # a leading ']' is a literal member
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                raise ConfigError(
                    f"glob {_render(pattern)}: '[' at index {i} is never closed "
                    "(write [[] for a literal '[')",
                    found=pattern,
                )
            out.append(_glob_class(pattern, pattern[start:j], negate))
            i = j
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _glob_class(pattern: str, body: str, negate: bool) -> str:
    members: list[str] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            low, high = body[k], body[k + 2]
            if low > high:
                raise ConfigError(
                    f"glob {_render(pattern)}: range {low}-{high} is reversed", found=pattern
                )
            members.append(f"{re.escape(low)}-{re.escape(high)}")
            k += 3
        else:
            members.append(re.escape(body[k]))
            k += 1
    # A negated class must still not match '/': '*' and '?' never cross path separators.
    return f"[^/{''.join(members)}]" if negate else f"[{''.join(members)}]"


def _check_pattern_rule(kind: str, name: str, pattern: str, allow_non_ascii: bool) -> None:
    """The checks a wildcard rule (glob or regex) makes before compiling its pattern."""
    _require_name(kind, name)
    _require_text(f"{kind}({name!r}) pattern", pattern)
    _check_pattern_ascii(f"{kind}({name!r})", pattern, allow_non_ascii)


def _check_pattern_ascii(what: str, pattern: str, allow_non_ascii: bool) -> None:
    if not isinstance(allow_non_ascii, bool):
        raise ConfigError(f"{what}: allow_non_ascii must be a boolean", found=allow_non_ascii)
    if not allow_non_ascii and _PRINTABLE_ASCII.fullmatch(pattern) is None:
        raise ConfigError(
            f"{what}: pattern {_render(pattern)} has non-ASCII or control characters"
            f"{_non_ascii_note(pattern)}; set allow_non_ascii to match such values",
            found=pattern,
        )


def _wildcard_value(
    claims: Mapping[str, Any], name: str, expectation: str, allow_non_ascii: bool, expected: str
) -> str:
    value = _string_claim(claims, name, expectation, expected)
    if not allow_non_ascii and _PRINTABLE_ASCII.fullmatch(value) is None:
        raise _fail(name, f"printable ASCII ({expectation})", value, expected)
    return value


@dataclass(frozen=True, slots=True)
class _PatternRule:
    """What the glob and the regex rules share: string claim ``name`` matched in full by the
    compiled ``pattern``, printable ASCII unless ``allow_non_ascii``. Only how the pattern is
    compiled, and how the match is phrased, differ."""

    name: str
    pattern: str
    allow_non_ascii: bool = False
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False, hash=False)
    #: The match, as a failure expects it and as :meth:`describe` says it.
    _EXPECTATION: ClassVar[str]
    _DESCRIPTION: ClassVar[str]

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`PolicyError` unless the whole claim matches :attr:`pattern`."""
        expectation = f"{self._EXPECTATION} {_render(self.pattern)}"
        value = _wildcard_value(claims, self.name, expectation, self.allow_non_ascii, self.pattern)
        if self._regex.fullmatch(value) is None:
            raise _fail(self.name, expectation, value, self.pattern)

    def describe(self) -> str:
        """``<name> matches glob "<pattern>"``, ``<name> fully matches regex "<pattern>"``."""
        return f"{self.name} {self._DESCRIPTION} {_render(self.pattern)}"


@dataclass(frozen=True, slots=True)
class ClaimGlob(_PatternRule):
    """String claim ``name`` matches the glob ``pattern`` in full, case-sensitively.

    * ``*`` matches any run of characters **except** ``/`` (``refs/heads/*`` matches
      ``refs/heads/main`` but not ``refs/heads/feature/x``);
    * ``**`` matches any run of characters including ``/``;
    * ``?`` matches one character except ``/``;
    * ``[abc]``, ``[a-z]`` match one listed character, ``[!abc]`` one unlisted character other
      than ``/``; ``[*]``, ``[?]``, ``[[]`` match the literal character.

    Everything else is literal. Values must be printable ASCII unless ``allow_non_ascii``.
    """

    _EXPECTATION: ClassVar[str] = "a match for glob"
    _DESCRIPTION: ClassVar[str] = "matches glob"

    def __post_init__(self) -> None:
        _check_pattern_rule("ClaimGlob", self.name, self.pattern, self.allow_non_ascii)
        regex = re.compile(_glob_to_regex(self.pattern), re.DOTALL)
        object.__setattr__(self, "_regex", regex)


@dataclass(frozen=True, slots=True)
class ClaimRegex(_PatternRule):
    """String claim ``name`` matches the regular expression ``pattern`` **in full**.

    The pattern is always anchored (``re.fullmatch``), whether or not it says ``^…$``. Without
    ``allow_non_ascii`` values must be printable ASCII and the pattern is compiled with
    ``re.ASCII`` (``\\d`` is ``[0-9]``, not every Unicode digit). Patterns come from the
    verifier's own configuration, never from tokens; keep them simple (no nested quantifiers)
    to avoid catastrophic backtracking. An invalid pattern is a :class:`ConfigError` here, at
    construction, not at verification time.
    """

    _EXPECTATION: ClassVar[str] = "a full match for regex"
    _DESCRIPTION: ClassVar[str] = "fully matches regex"

    def __post_init__(self) -> None:
        _check_pattern_rule("ClaimRegex", self.name, self.pattern, self.allow_non_ascii)
        try:
            regex = re.compile(self.pattern, 0 if self.allow_non_ascii else re.ASCII)
        except (re.error, ValueError, OverflowError, RecursionError) as exc:
            raise ConfigError(
                f"ClaimRegex({self.name!r}): invalid regular expression {_render(self.pattern)}"
                f" ({exc})",
                found=self.pattern,
            ) from None
        object.__setattr__(self, "_regex", regex)


# -- composition -------------------------------------------------------------------------------


def _members(kind: str, policies: object) -> tuple[Policy, ...]:
    if isinstance(policies, (str, bytes)) or not isinstance(policies, Sequence):
        raise TypeError(f"{kind} takes a list of policies, not {type(policies).__name__}")
    members = tuple(policies)
    if not members:
        raise ConfigError(
            f"{kind}([]) is empty: an empty {kind} is almost certainly a mistake "
            f"({'it would accept every signer' if kind == 'AllOf' else 'it could never match'})"
        )
    for index, member in enumerate(members):
        if not isinstance(member, Policy):
            raise TypeError(f"{kind} member {index} is not a policy: {type(member).__name__}")
    return members


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every member policy holds (AND). Raises the first member's failure.

    An empty ``AllOf`` is rejected with :class:`ConfigError`: vacuously true, it would accept
    every signer.
    """

    policies: Sequence[Policy]

    def __post_init__(self) -> None:
        object.__setattr__(self, "policies", _members("AllOf", self.policies))

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise the first member's :class:`PolicyError`, if any."""
        for policy in self.policies:
            policy.check(claims)

    def describe(self) -> str:
        """``all of (a; b; …)``."""
        return "all of (" + "; ".join(p.describe() for p in self.policies) + ")"


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one member policy holds (OR). The error lists why each member failed.

    An empty ``AnyOf`` is rejected with :class:`ConfigError` rather than silently never
    matching (as sigstore's does): it is a mistake either way, better caught when the policy is
    written than when a deployment is blocked.
    """

    policies: Sequence[Policy]

    def __post_init__(self) -> None:
        object.__setattr__(self, "policies", _members("AnyOf", self.policies))

    def check(self, claims: Mapping[str, Any]) -> None:
        """Return at the first member that holds; otherwise raise with every reason."""
        reasons: list[str] = []
        for policy in self.policies:
            try:
                policy.check(claims)
            except PolicyError as exc:
                reasons.append(str(exc))
            else:
                return
        listed = "; ".join(f"({i}) {reason}" for i, reason in enumerate(reasons, 1))
        raise PolicyError(
            f"none of {len(reasons)} alternatives holds: {listed}",
            expected=self.describe(),
            found=reasons,
        )

    def describe(self) -> str:
        """``any of (a; b; …)``."""
        return "any of (" + "; ".join(p.describe() for p in self.policies) + ")"


@dataclass(frozen=True, slots=True)
class UnsafeNoPolicy:
    """UNSAFE: accepts every signer. No identity is checked at all.

    Only signature validity, the commitment and expiry are then enforced, so *anyone* able to
    get an ID token from a trusted issuer (any GitHub repository, for GitHub Actions) passes.
    It exists so that skipping identity checks is explicit and greppable; use it only in tests
    and demos. :func:`accepts_any_signer` detects it inside compositions.
    """

    def check(self, claims: Mapping[str, Any]) -> None:
        """Accept any claims."""

    def describe(self) -> str:
        """A loud statement that nothing is checked."""
        return "UNSAFE: no identity policy, any signer is accepted"


# -- analysis ----------------------------------------------------------------------------------


def accepts_any_signer(policy: Policy) -> bool:
    """Whether ``policy`` may accept every signer (it is, or hinges on, :class:`UnsafeNoPolicy`).

    Front ends use this to warn loudly before verifying with such a policy.
    """
    if isinstance(policy, UnsafeNoPolicy):
        return True
    if isinstance(policy, AnyOf):
        return any(accepts_any_signer(p) for p in policy.policies)
    if isinstance(policy, AllOf):
        return all(accepts_any_signer(p) for p in policy.policies)
    return False


def pinned_issuers(policy: Policy) -> frozenset[str] | None:
    """The issuers ``policy`` can accept, or ``None`` when it does not constrain ``iss``.

    An :class:`AllOf` pins what all its pinning members agree on; an :class:`AnyOf` pins only if
    every alternative does. A result of ``frozenset()`` means no issuer can ever satisfy it.
    """
    if isinstance(policy, PinsIssuer):
        return frozenset({policy.pinned_issuer})
    if isinstance(policy, ClaimEquals) and policy.name == "iss" and isinstance(policy.value, str):
        return frozenset({policy.value})
    if isinstance(policy, AllOf):
        result: frozenset[str] | None = None
        for member in policy.policies:
            pinned = pinned_issuers(member)
            if pinned is not None:
                result = pinned if result is None else result & pinned
        return result
    if isinstance(policy, AnyOf):
        union: set[str] = set()
        for member in policy.policies:
            pinned = pinned_issuers(member)
            if pinned is None:
                return None
            union |= pinned
        return frozenset(union)
    return None
