"""Print a shell completion script (bash or zsh).

Print a completion script for SHELL on standard output. bash: save it as
~/.local/share/bash-completion/completions/opkey (or source it from ~/.bashrc). zsh: save it as
_opkey in a directory on $fpath, before compinit runs::

    opkey completion bash > ~/.local/share/bash-completion/completions/opkey
    opkey completion zsh > "${fpath[1]}/_opkey"      # a directory on $fpath; then compinit

The script is written from the same argparse parsers the command runs with, so it always
offers exactly the subcommands, options and choices this opkey accepts. Options whose value is
a path (FILE, PATH, DIR, OUT in their metavar) complete file names, options with choices
complete the choices, and other values (digests, URLs, ids) complete nothing rather than
something wrong.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["SHELLS", "configure", "run"]

SHELLS = ("bash", "zsh")


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``completion`` options."""
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete for")


def run(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``."""
    from opkey.cli import build_parser
    from opkey.cli.completion_scripts import bash_script, command_specs, zsh_script

    specs = command_specs(build_parser())
    script = bash_script(specs) if args.shell == "bash" else zsh_script(specs)
    sys.stdout.write(script)
    return 0
