"""Options several commands take are declared once, so they read alike in each command.

``sign`` and ``attest`` differ only in what is signed, ``verify`` and ``verify-attestation``
only in what is checked: each pair takes the same options, in the same groups and order, with
the same help but for the words naming the command's own act (sign/attest,
signature/attestation, their bundle files). The provider keys read as ``verify``'s in
``monitor``, and the registry options are the same wherever they are taken.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from opkey.cli import build_parser, walk_parsers

#: An attesting command's own words, as the signing one says them (longest first); what
#: ``sign`` writes is a "bundle", what ``verify`` reads a "signature bundle".
_OWN_WORDS = (
    (".att.opkey.json", ".opkey.json"),
    ("DSSE signature", "signature"),
    ("attestations", "signatures"),
    ("attestation", "signature"),
    ("an attestation layer", "an image signature"),
    ("attesting", "signing"),
    (".att tag", ".sig tag"),
    ("attest ", "sign "),
)


def _parsers() -> dict[str, argparse.ArgumentParser]:
    return {" ".join(path): parser for path, parser in walk_parsers(build_parser()) if path}


@dataclass(frozen=True)
class _Option:
    """One option as its help shows it."""

    group: str | None
    names: tuple[str, ...]
    metavar: object
    choices: object
    default: object
    help: str


def _options(
    parser: argparse.ArgumentParser, *, own_words: tuple[tuple[str, str], ...] = ()
) -> list[_Option]:
    """Every option, in help order, its help in the signing command's words (``own_words``)."""
    rows = []
    for group in parser._action_groups:
        for action in group._group_actions:
            if action.dest in ("help", "debug"):
                continue
            text = action.help or ""
            for theirs, ours in own_words:
                text = text.replace(theirs, ours)
            names = tuple(action.option_strings) or (action.dest,)
            rows.append(
                _Option(group.title, names, action.metavar, action.choices, action.default, text)
            )
    return rows


@pytest.mark.parametrize(
    ("ours", "theirs", "only_theirs", "bundle"),
    [
        (
            "sign",
            "attest",
            {"--type", "--predicate"},
            (("an attestation bundle", "a bundle"), ("attestation bundle", "bundle")),
        ),
        ("verify", "verify-attestation", {"--type"}, ()),
    ],
)
def test_the_attesting_command_takes_the_signing_commands_options(
    ours: str, theirs: str, only_theirs: set[str], bundle: tuple[tuple[str, str], ...]
) -> None:
    parsers = _parsers()
    signing = _options(parsers[ours])
    attesting = [
        row
        for row in _options(parsers[theirs], own_words=(*bundle, *_OWN_WORDS))
        if not only_theirs & set(row.names)
    ]
    assert attesting == signing


def test_the_provider_keys_read_alike_in_verify_and_monitor() -> None:
    parsers = _parsers()

    def keys(command: str) -> dict[tuple[str, ...], str]:
        rows = _options(parsers[command])
        return {row.names: row.help for row in rows if row.group == "provider keys"}

    verify, monitor = keys("verify"), keys("monitor")
    assert (
        list(verify)
        == list(monitor)
        == [
            ("--jwks",),
            ("--jwks-archive",),
            ("--offline",),
            ("--trust-policy-anchors",),
        ]
    )
    # --offline says in verify what stays on the network there (images); the rest is equal.
    offline = ("--offline",)
    assert verify.pop(offline).startswith(monitor.pop(offline) + " (")
    assert verify == monitor


def test_the_registry_options_are_the_same_wherever_they_are_taken() -> None:
    groups = {
        command: [row for row in _options(parser) if row.group == "registry (images)"]
        for command, parser in _parsers().items()
    }
    taken = {command: rows for command, rows in groups.items() if rows}
    assert set(taken) >= {"sign", "attest", "verify", "verify-attestation", "tree", "inspect"}
    first = taken["sign"]
    assert len(first) == 5
    assert all(rows == first for rows in taken.values())
