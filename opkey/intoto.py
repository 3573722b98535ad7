"""in-toto Statement v1: what an attestation says, about which artifacts.

A statement (``https://in-toto.io/Statement/v1``) names its **subjects** by digest and carries
one **predicate** of a declared **predicate type**: build provenance, a vulnerability scan, an
approval::

    {"_type":"https://in-toto.io/Statement/v1",
     "subject":[{"name":"registry.example/app","digest":{"sha256":"<hex>"}}],
     "predicateType":"https://slsa.dev/provenance/v1",
     "predicate":{…}}

It is the payload (type ``application/vnd.in-toto+json``) of a DSSE envelope
(:mod:`opkey.dsse`). opkey writes it with the members in that order (in-toto's own struct
order, as cosign and GitHub write it), compact, with every object inside the predicate and the
digests sorted by key, Go-escaped. It reads any member order, strictly: exactly those members
(``predicate`` may be absent: an empty predicate), at least one subject, each with a
non-empty digest map of lowercase hex, and a predicate type that is an absolute URI.

Predicate types have cosign's short names too (:func:`predicate_type_uri`):
``slsaprovenance1`` is ``https://slsa.dev/provenance/v1``, ``vuln`` is cosign's
vulnerability-scan type, and so on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from opkey.digest import Digest
from opkey.dsse import MAX_ENVELOPE_BYTES
from opkey.errors import ConfigError, FormatError
from opkey.jose import freeze_json, go_json, parse_json_object, thaw_json

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "PREDICATE_TYPES",
    "SLSA_PROVENANCE_V1",
    "STATEMENT_TYPE",
    "Statement",
    "Subject",
    "parse_predicate",
    "predicate_type_uri",
]

#: The ``_type`` of an in-toto Statement v1.
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
#: The DSSE payload type of an in-toto statement.
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: SLSA provenance v1's predicate type.
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"

#: cosign's short names for predicate types (``cosign attest --type``), with the same meaning.
PREDICATE_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "custom": "https://cosign.sigstore.dev/attestation/v1",
        "slsaprovenance": "https://slsa.dev/provenance/v0.2",
        "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1": SLSA_PROVENANCE_V1,
        "spdx": "https://spdx.dev/Document",
        "spdxjson": "https://spdx.dev/Document",
        "cyclonedx": "https://cyclonedx.org/bom",
        "link": "https://in-toto.io/Link/v1",
        "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex": "https://openvex.dev/ns",
    }
)

_HEX = re.compile(r"[0-9a-f]{1,128}")
_ALGORITHM = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_MAX_SUBJECTS = 1024
_MAX_URI = 2048
#: Predicates nest deeper than tokens (SBOM components, SLSA's dependencies).
_MAX_DEPTH = 32


def predicate_type_uri(name: str) -> str:
    """The predicate type ``name`` stands for: a short name of :data:`PREDICATE_TYPES`, or an
    absolute URI (``scheme:…``) used as it is."""
    if not name:
        raise ConfigError("a predicate type must be a non-empty string")
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    _check_uri(name, what="predicate type", error=ConfigError)
    return name


def _check_uri(text: str, *, what: str, error: type[FormatError] | type[ConfigError]) -> None:
    try:
        parts = urlsplit(text[: _MAX_URI + 1])
    except ValueError:  # an unbalanced "[" in the host, for one
        parts = urlsplit("")
    if (
        len(text) > _MAX_URI
        or not parts.scheme
        or not re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme)
        or not (parts.netloc or parts.path)
        or re.search(r"[\x00-\x20\x7f]", text)
    ):
        names = ", ".join(sorted(PREDICATE_TYPES))
        raise error(
            f"{what} {text[:200]!r} is not an absolute URI (nor one of {names})", found=text
        )


@dataclass(frozen=True, slots=True)
class Subject:
    """One artifact a statement is about: a name and its digests (``{"sha256": "<hex>"}``)."""

    name: str
    digest: Mapping[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", MappingProxyType(dict(self.digest)))

    @classmethod
    def of(cls, name: str, digest: Digest) -> Subject:
        """The subject ``name`` with the SHA-256 ``digest``."""
        return cls(name, {"sha256": digest.hex})

    def names(self, digest: Digest) -> bool:
        """Whether this subject is the artifact with ``digest`` (by its SHA-256)."""
        return self.digest.get("sha256") == digest.hex

    def to_json(self) -> dict[str, Any]:
        """``{"name": …, "digest": {…}}``, digests sorted by algorithm."""
        return {"name": self.name, "digest": dict(sorted(self.digest.items()))}


@dataclass(frozen=True, slots=True)
class Statement:
    """An in-toto Statement v1: subjects, a predicate type, and the predicate (read-only)."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "subjects", tuple(self.subjects))
        if not self.subjects:
            raise FormatError("in-toto statement: at least one subject is required")
        _check_uri(self.predicate_type, what="in-toto predicateType", error=FormatError)
        if not isinstance(self.predicate, Mapping):
            raise FormatError("in-toto statement: predicate must be a JSON object")
        if not isinstance(self.predicate, MappingProxyType):
            # A caller's mapping is copied; a parsed document arrives frozen already.
            object.__setattr__(self, "predicate", freeze_json(thaw_json(self.predicate)))

    @classmethod
    def about(
        cls, subjects: Sequence[Subject], predicate_type: str, predicate: Mapping[str, Any]
    ) -> Statement:
        """A statement of ``predicate_type`` (a URI or cosign's short name) about ``subjects``."""
        return cls(tuple(subjects), predicate_type_uri(predicate_type), predicate)

    def names(self, digest: Digest) -> bool:
        """Whether ``digest`` is one of the statement's subjects."""
        return any(subject.names(digest) for subject in self.subjects)

    def to_json(self) -> bytes:
        """The statement bytes opkey signs (see the module documentation)."""
        members = {
            "_type": STATEMENT_TYPE,
            "subject": [subject.to_json() for subject in self.subjects],
            "predicateType": self.predicate_type,
            "predicate": _sorted(thaw_json(self.predicate)),
        }
        return go_json(members, sort_keys=False)

    @classmethod
    def from_json(cls, data: bytes) -> Statement:
        """Parse a statement strictly (see the module documentation)."""
        document = parse_json_object(
            data, what="in-toto statement", max_length=MAX_ENVELOPE_BYTES, max_depth=_MAX_DEPTH
        )
        allowed = {"_type", "subject", "predicateType", "predicate"}
        if not set(document) <= allowed or not {"_type", "subject", "predicateType"} <= set(
            document
        ):
            raise FormatError(
                f"in-toto statement: expected the members {sorted(allowed)}, found "
                f"{sorted(document)}",
                found=sorted(document),
            )
        if document["_type"] != STATEMENT_TYPE:
            raise FormatError(
                f"not an in-toto Statement v1 (_type {str(document['_type'])[:100]!r})",
                expected=STATEMENT_TYPE,
                found=document["_type"],
            )
        raw_subjects = document["subject"]
        if not isinstance(raw_subjects, list) or not raw_subjects:
            raise FormatError("in-toto statement: subject must be a non-empty array")
        if len(raw_subjects) > _MAX_SUBJECTS:
            raise FormatError(f"in-toto statement: more than {_MAX_SUBJECTS} subjects")
        subjects = tuple(_subject(item, index) for index, item in enumerate(raw_subjects))
        predicate_type = document["predicateType"]
        if not isinstance(predicate_type, str):
            raise FormatError("in-toto statement: predicateType must be a string")
        predicate = document.get("predicate", {})
        if not isinstance(predicate, dict):
            raise FormatError("in-toto statement: predicate must be a JSON object")
        return cls(subjects, predicate_type, freeze_json(predicate))


def _subject(item: Any, index: int) -> Subject:
    what = f"in-toto statement subject[{index}]"
    if not isinstance(item, dict) or set(item) != {"name", "digest"}:
        raise FormatError(f"{what}: expected exactly the members name and digest")
    name, digest = item["name"], item["digest"]
    if not isinstance(name, str):
        raise FormatError(f"{what}: name must be a string")
    if not isinstance(digest, dict) or not digest:
        raise FormatError(f"{what}: digest must be a non-empty object")
    for algorithm, value in digest.items():
        if _ALGORITHM.fullmatch(algorithm) is None:
            raise FormatError(f"{what}: digest algorithm {algorithm[:40]!r} is not valid")
        if not isinstance(value, str) or _HEX.fullmatch(value) is None:
            raise FormatError(f"{what}: digest {algorithm} must be lowercase hex")
    sha256 = digest.get("sha256")
    if sha256 is not None and len(sha256) != 64:
        raise FormatError(f"{what}: a sha256 digest has 64 hex digits")
    return Subject(name, digest)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def parse_predicate(data: bytes, *, what: str = "predicate") -> dict[str, Any]:
    """A predicate file's content: one JSON object, parsed strictly."""
    return parse_json_object(data, what=what, max_length=MAX_ENVELOPE_BYTES, max_depth=_MAX_DEPTH)
