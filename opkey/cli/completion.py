"""``opkey completion bash|zsh``: shell completion scripts, generated from the parsers.

The script is written from the same argparse parsers the command runs with, so it always
offers exactly the subcommands, options and choices this opkey accepts: nothing is kept by
hand, and no completion library is needed (the two scripts are plain shell). Options whose
value is a path (``FILE``, ``PATH``, ``DIR``, ``OUT`` in their metavar) complete file names,
options with choices complete the choices, and other values (digests, URLs, ids) complete
nothing rather than something wrong.

Install::

    opkey completion bash > ~/.local/share/bash-completion/completions/opkey
    opkey completion zsh > "${fpath[1]}/_opkey"      # a directory on $fpath; then compinit
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from typing import Any

__all__ = ["SHELLS", "CommandSpec", "OptionSpec", "bash_script", "command_specs", "register", "run"]

SHELLS = ("bash", "zsh")

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*|--?[A-Za-z0-9][A-Za-z0-9_-]*")
_PATH_METAVAR = re.compile(r"FILE|PATH|DIR|OUT")


def register(subparsers: Any) -> None:
    """Add the ``completion`` subcommand."""
    parser = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description=(
            "Print a completion script for SHELL on standard output. bash: save it as "
            "~/.local/share/bash-completion/completions/opkey (or source it from ~/.bashrc). "
            "zsh: save it as _opkey in a directory on $fpath, before compinit runs."
        ),
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete for")
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class OptionSpec:
    """One option as completion sees it."""

    flags: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...] = ()
    paths: bool = False
    metavar: str = ""
    repeatable: bool = False


@dataclass(frozen=True)
class CommandSpec:
    """One parser: its command path (``()`` for ``opkey`` itself, ``("jwks", "list")``…)."""

    path: tuple[str, ...]
    options: tuple[OptionSpec, ...]
    subcommands: tuple[tuple[str, str], ...]
    positionals: tuple[OptionSpec, ...]


def _word(text: str) -> str:
    """A name or choice, checked to need no quoting in either shell."""
    if _WORD.fullmatch(text) is None:
        raise ValueError(f"cannot complete {text!r}: not a plain word")
    return text


def _option(action: argparse.Action) -> OptionSpec:
    takes_value = action.nargs != 0
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    choices = tuple(_word(str(c)) for c in action.choices or ()) if takes_value else ()
    return OptionSpec(
        flags=tuple(_word(f) for f in action.option_strings),
        help=_summary(action.help or ""),
        takes_value=takes_value,
        choices=choices,
        paths=takes_value
        and not choices
        and bool(_PATH_METAVAR.search(metavar or action.dest.upper())),
        metavar=metavar or action.dest.upper(),
        repeatable=isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+"),
    )


def _summary(text: str) -> str:
    """A help text's first clause, short enough for a completion menu."""
    text = text.replace("%(default)s", "").replace("%%", "%")
    first = re.split(r"(?<=[;:(])\s|\s\(", text, maxsplit=1)[0].rstrip(" ;:(")
    return textwrap.shorten(first, 70, placeholder="...")


def command_specs(parser: argparse.ArgumentParser) -> tuple[CommandSpec, ...]:
    """What completion needs from every parser under ``parser``."""
    from opkey.cli import walk_parsers

    specs: list[CommandSpec] = []
    for path, node in walk_parsers(parser):
        options: list[OptionSpec] = []
        positionals: list[OptionSpec] = []
        subcommands: list[tuple[str, str]] = []
        for action in node._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
                subcommands += [
                    (_word(name), _summary(helps.get(name, ""))) for name in action.choices
                ]
            elif action.option_strings:
                if action.help is not argparse.SUPPRESS or action.dest == "debug":
                    options.append(_option(action))
            else:
                positionals.append(_option(action))
        specs.append(CommandSpec(path, tuple(options), tuple(subcommands), tuple(positionals)))
    return tuple(specs)


# -- bash -------------------------------------------------------------------------------------


def bash_script(specs: tuple[CommandSpec, ...]) -> str:
    """A bash completion script (``complete -F _opkey opkey``)."""

    def key(path: tuple[str, ...]) -> str:
        return ":".join(path)

    lines = [
        "# bash completion for opkey (generated by `opkey completion bash`)",
        "_opkey_takes_value() {",
        '    case "$1/$2" in',
    ]
    valued = [
        f"{key(s.path)}/{flag}"
        for s in specs
        for o in s.options
        if o.takes_value
        for flag in o.flags
    ]
    if valued:
        lines.append("        " + "|".join(f'"{v}"' for v in valued) + ") return 0 ;;")
    lines += ["    esac", "    return 1", "}", "", "_opkey() {"]
    lines += [
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="" i w',
        '    (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"',
        "    COMPREPLY=()",
        "    for (( i = 1; i < COMP_CWORD; i++ )); do",
        '        w="${COMP_WORDS[i]}"',
        '        if _opkey_takes_value "$path" "$w"; then (( i++ )); continue; fi',
        '        case "$path/$w" in',
    ]
    for spec in specs:
        for name, _ in spec.subcommands:
            lines.append(
                f'            "{key(spec.path)}/{name}") path="{key((*spec.path, name))}" ;;'
            )
    lines += ["        esac", "    done", '    case "$path/$prev" in']
    for spec in specs:
        for option in spec.options:
            if not option.takes_value:
                continue
            patterns = "|".join(f'"{key(spec.path)}/{flag}"' for flag in option.flags)
            if option.choices:
                action = f'COMPREPLY=($(compgen -W "{" ".join(option.choices)}" -- "$cur")); return'
            elif option.paths:
                action = (
                    'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return'
                )
            else:
                action = "return"
            lines.append(f"        {patterns}) {action} ;;")
    lines += ["    esac", '    local options="" words="" files=0', '    case "$path" in']
    for spec in specs:
        flags = " ".join(flag for option in spec.options for flag in option.flags)
        words = " ".join(name for name, _ in spec.subcommands)
        choices = " ".join(c for p in spec.positionals for c in p.choices)
        files = int(any(p.paths for p in spec.positionals))
        lines.append(
            f'        "{key(spec.path)}") options="{flags}"; words="{words} {choices}"; '
            f"files={files} ;;"
        )
    lines += [
        "    esac",
        '    if [[ "$cur" == -* ]]; then',
        '        COMPREPLY=($(compgen -W "$options" -- "$cur"))',
        '    elif [[ -n "${words// /}" ]]; then',
        '        COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "    elif (( files )); then",
        "        compopt -o filenames 2>/dev/null",
        '        COMPREPLY=($(compgen -f -- "$cur"))',
        "    fi",
        "}",
        "complete -F _opkey opkey",
        "",
    ]
    return "\n".join(lines)


# -- zsh --------------------------------------------------------------------------------------


def _zsh_quote(text: str) -> str:
    """``text`` as one single-quoted zsh word."""
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_describe(text: str) -> str:
    """Text for the ``[…]`` of an ``_arguments`` spec, or after the ``:`` of a value."""
    return re.sub(r"([\\\[\]:])", r"\\\1", text)


def _zsh_value(option: OptionSpec) -> str:
    if not option.takes_value:
        return ""
    label = _zsh_describe(option.metavar.lower())
    if option.choices:
        return f":{label}:({' '.join(option.choices)})"
    if option.paths:
        return f":{label}:_files"
    return f":{label}: "


def _zsh_function(spec: CommandSpec) -> list[str]:
    name = "_opkey" + "".join("_" + part.replace("-", "_") for part in spec.path)
    args: list[str] = []
    for option in spec.options:
        described = f"[{_zsh_describe(option.help)}]{_zsh_value(option)}"
        if option.repeatable:
            args += [_zsh_quote(f"*{flag}{described}") for flag in option.flags]
        elif len(option.flags) > 1:
            exclusive = "(" + " ".join(option.flags) + ")"
            args.append(
                _zsh_quote(exclusive) + "{" + ",".join(option.flags) + "}" + _zsh_quote(described)
            )
        else:
            args.append(_zsh_quote(f"{option.flags[0]}{described}"))
    for position in spec.positionals:
        value = _zsh_value(position).removeprefix(":")
        label, _, action = value.partition(":")
        if not action.strip():
            # Nothing to offer for the argument itself (an image reference), but a word that
            # starts with - is an option: _guard lets _arguments complete the options then.
            action = f'_guard "^-*" "{label}"'
        prefix = "*:" if position.repeatable else ":"
        args.append(_zsh_quote(f"{prefix}{label}:{action}"))
    lines = [f"{name}() {{"]
    if spec.subcommands:
        lines += [
            '    local curcontext="$curcontext" state line',
            "    typeset -A opt_args",
            "    local -a commands",
            "    commands=(",
        ]
        lines += [f"        {_zsh_quote(f'{sub}:{desc}')}" for sub, desc in spec.subcommands]
        lines += ["    )"]
        lines += ["    _arguments -C \\"] + [f"        {a} \\" for a in args]
        lines += ["        '1: :->command' \\", "        '*:: :->argument' && return", ""]
        lines += [
            '    case "$state" in',
            "        command) _describe -t commands 'opkey command' commands ;;",
            "        argument)",
            '            case "$line[1]" in',
        ]
        for sub, _ in spec.subcommands:
            child = name + "_" + sub.replace("-", "_")
            lines.append(f"                {sub}) {child} ;;")
        lines += ["            esac", "            ;;", "    esac"]
    else:
        lines += ["    _arguments \\"] + [f"        {a} \\" for a in args]
        lines[-1] = lines[-1].removesuffix(" \\")
    lines += ["}", ""]
    return lines


def zsh_script(specs: tuple[CommandSpec, ...]) -> str:
    """A zsh completion function file (``#compdef opkey``), for a directory on ``$fpath``."""
    lines = [
        "#compdef opkey",
        "# zsh completion for opkey (generated by `opkey completion zsh`)",
        "",
    ]
    for spec in specs:
        lines += _zsh_function(spec)
    # Autoloaded from $fpath: complete now; sourced (source <(opkey completion zsh)): register.
    lines += [
        'if [ "$funcstack[1]" = "_opkey" ]; then',
        '    _opkey "$@"',
        "else",
        "    compdef _opkey opkey",
        "fi",
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``."""
    from opkey.cli import build_parser

    specs = command_specs(build_parser())
    script = bash_script(specs) if args.shell == "bash" else zsh_script(specs)
    sys.stdout.write(script)
    return 0
