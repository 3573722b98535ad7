"""The ``opkey`` command line: a thin shell over the library.

Each subcommand lives in its own module under :mod:`opkey.cli`: its docstring is its help (the
first line) and description, ``configure(parser)`` adds its options (cheap: no heavy
imports), and ``run(args) -> int`` runs it. This module only
parses arguments, dispatches, and turns :class:`~opkey.errors.OpkeyError` into a one-line
message and an exit code:

* 0: success (verified);
* 1: verification rejected;
* 2: usage or input error (also every other :class:`~opkey.errors.OpkeyError`);
* 130: interrupted (Ctrl-C);
* 141: the reader of standard output went away (``opkey … | head``): 128 + SIGPIPE, what a
  shell reports for a program that a closed pipe stops. Nothing more is written, and no
  traceback: the output is incomplete, so the command did not do all it was asked.

``--debug`` (before or after the subcommand) shows the traceback instead. Under ``--json`` an
error also prints a JSON document on standard output (``{"error": …, "kind": …,
"exit_code": …}``), so a program reading standard output always gets an answer.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from opkey._version import __version__

__all__ = [
    "COMMANDS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTPUT_CLOSED",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141

#: Subcommand modules, in the order ``opkey --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "sign",
    "verify",
    "attest",
    "verify_attestation",
    "tree",
    "monitor",
    "inspect",
    "login",
    "jwks",
    "demo",
    "dev_idp",
    "admission",
    "completion",
)


class UsageError(Exception):
    """A command line argparse refused (raised instead of exiting, so :func:`main` decides
    what to print: the usage on standard error, and a JSON document too under ``--json``)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _StoreOnce(argparse._StoreAction):
    """An option that takes one value refuses a second one: argparse would keep the last and
    drop the first silently (``--issuer A --issuer B`` verifying against B only)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if option_string is not None:
            given: set[str] = namespace.__dict__.setdefault("_opkey_given", set())
            if self.dest in given:
                raise argparse.ArgumentError(self, "given more than once; give it once")
            given.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class _Wrapping(argparse.HelpFormatter):
    """Help wrapped at spaces only: never inside a URL or an option name at its hyphens
    (``https://github.com/opkey-`` / ``dev/opkey/…`` cannot be followed)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap  # only when help is shown, as argparse itself does

        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.fill(
            text,
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
            break_long_words=False,
        )


class _RawDescription(_Wrapping):
    """:class:`_Wrapping` for option help, descriptions kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


class _Parser(argparse.ArgumentParser):
    """argparse, with errors raised as :class:`UsageError`, single-valued options refusing
    repetition, and help wrapped at spaces only (subparsers inherit the class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raw = kwargs.get("formatter_class") is argparse.RawDescriptionHelpFormatter
        kwargs["formatter_class"] = _RawDescription if raw else _Wrapping
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


def _add_debug(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument(
        "--debug", action="store_true", default=default, help="show tracebacks on errors"
    )


def walk_parsers(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser under ``parser`` with its command path (``()``, ``("jwks", "list")``…),
    each once (argparse lists aliases as separate choices)."""
    seen: set[int] = set()

    def visit(
        path: tuple[str, ...], node: argparse.ArgumentParser
    ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
        if id(node) in seen:
            return
        seen.add(id(node))
        yield path, node
        for action in node._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from visit((*path, name), child)

    yield from visit((), parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = _Parser(
        prog="opkey",
        description="Keyless signing with OpenID Connect (OpenPubkey-compatible).",
    )
    parser.add_argument("--version", action="version", version=f"opkey {__version__}")
    _add_debug(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        _add_command(subparsers, importlib.import_module(f"opkey.cli.{name}"))
    for path, sub in walk_parsers(parser):
        if path:
            # --debug after the subcommand too; SUPPRESS keeps the top-level value when the
            # subcommand's flag is absent.
            _add_debug(sub, default=argparse.SUPPRESS)
        if sub.description:
            sub.description = plain_text(sub.description)
    return parser


def _add_command(subparsers: Any, module: Any) -> None:
    """One subcommand from its module: the module's docstring is the help (its first line)
    and the description (the whole); ``configure(parser)`` adds its options; ``run(args)``
    runs it; an optional ``FORMATTER`` class formats its help."""
    doc = module.__doc__ or ""
    summary = doc.split("\n", 1)[0].rstrip(".")
    options: dict[str, Any] = {}
    if hasattr(module, "FORMATTER"):
        options["formatter_class"] = module.FORMATTER
    parser = subparsers.add_parser(
        module.__name__.rsplit(".", 1)[1].replace("_", "-"),
        help=summary[:1].lower() + summary[1:],
        description=doc,
        **options,
    )
    configure = getattr(module, "configure", None)
    if configure is not None:
        configure(parser)
    parser.set_defaults(run=module.run)


def plain_text(text: str) -> str:
    """Help text for a terminal: reStructuredText literals and roles from docstrings (a
    description may be a module's docstring) become plain backquoted words."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    return re.sub(r"::$", ":", text, flags=re.M)


def _wants_json(argv: Sequence[str]) -> bool:
    words = list(argv)
    if "--" in words:
        words = words[: words.index("--")]
    return "--json" in words


def _error_document(message: str, kind: str, code: int) -> None:
    from opkey.cli._common import emit_json

    emit_json({"error": message, "kind": kind, "exit_code": code})


def _run(argv: Sequence[str]) -> int:
    if list(argv) == ["--version"]:
        # Answered before the parser is built: building it imports every subcommand's module,
        # and scripts that ask for the version should not pay for that.
        print(f"opkey {__version__}")
        return 0
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc.message}", file=sys.stderr)
        if _wants_json(argv):
            _error_document(exc.message, "UsageError", EXIT_USAGE)
        return EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from opkey.errors import OpkeyError

    try:
        code: int = args.run(args)
    except OpkeyError as exc:
        if args.debug:
            raise
        from opkey.cli._common import with_hint

        message = with_hint(exc, command=args.command)
        print(f"opkey: error: {message}", file=sys.stderr)
        if getattr(args, "json", False):
            _error_document(message, type(exc).__name__, EXIT_USAGE)
        return EXIT_USAGE
    return code


def _quiet_closed_streams() -> None:
    """After a broken pipe: point standard output and error, when their reader is gone, at
    /dev/null, so the interpreter's final flush does not complain about it."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
        else:
            continue
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            continue  # not a real file (captured output in tests)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        code = _run(words)
        sys.stdout.flush()  # a closed pipe is reported here, not at interpreter exit
    except BrokenPipeError:
        _quiet_closed_streams()
        return EXIT_OUTPUT_CLOSED
    except KeyboardInterrupt:
        try:
            print("opkey: interrupted", file=sys.stderr)
        except BrokenPipeError:
            _quiet_closed_streams()
        return EXIT_INTERRUPTED
    return code
