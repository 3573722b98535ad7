"""Progress lines on standard error for the slow steps of a command, for people watching.

Requesting an ID token, waiting for a browser or device login, and talking to a registry take
from a fraction of a second to minutes; a terminal that shows nothing meanwhile looks hung.
Each such step announces itself with one ``opkey: …`` line, only when standard error is a
terminal: logs, pipes and CI output stay exactly as they were (results and errors only).
"""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Announces slow steps on ``stream`` (default: standard error) when it is a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.enabled = self.stream.isatty()
        except (AttributeError, ValueError):
            self.enabled = False

    def step(self, message: str) -> None:
        """Say that a slow step starts (``message`` without the trailing ellipsis)."""
        if self.enabled:
            print(f"opkey: {message}…", file=self.stream, flush=True)
