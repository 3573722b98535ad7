"""Text from a remote party, made safe to put into an error message.

Registries, token services, identity providers and discovery documents all answer with text
that opkey quotes in its errors (a registry's error ``message``, an OAuth
``error_description``, a challenge header, a media type). That text reaches a terminal, a CI
log or a web page as it is, so a hostile server could otherwise:

* draw on the terminal with escape sequences (``ESC[2K`` erases the line, ``ESC[32m`` paints
  a fake green "Verified" line, OSC sequences set the window title or a hyperlink);
* start a new line that looks like opkey's own output (``\\n``, ``\\r``, U+2028);
* reorder what is displayed with bidirectional overrides (U+202E, "Trojan Source").

:func:`printable` is the one sanitiser used wherever remote text goes into a message: every
character that is not printable (Unicode categories C* and Z* other than the space: controls,
format characters such as the bidi overrides, separators, unassigned and private-use code
points) is shown as a visible escape (``\\x1b``, ``\\u202e``), so the message still says what
the server sent, and the whole is cut to a length.
"""

from __future__ import annotations

__all__ = ["DEFAULT_LIMIT", "printable"]

#: Characters of remote text kept in one message by default.
DEFAULT_LIMIT = 200


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object, *, limit: int = DEFAULT_LIMIT) -> str:
    """``text`` with every non-printable character escaped, cut to ``limit`` characters.

    Bytes are decoded as UTF-8 (invalid sequences become U+FFFD); any other value is turned
    into ``str`` first. The result holds at most ``limit`` characters of the original, each
    escaped when needed, and ends with ``…`` when something was dropped.
    """
    dropped = False
    if isinstance(text, bytes | bytearray):
        dropped = len(text) > limit * 4
        value = bytes(text[: limit * 4]).decode("utf-8", "replace")
    else:
        value = text if isinstance(text, str) else str(text)
    cut = dropped or len(value) > limit
    value = value[:limit]
    if value.isprintable():
        safe = value
    else:
        safe = "".join(char if char.isprintable() else _escape(char) for char in value)
    return safe + ("…" if cut else "")
