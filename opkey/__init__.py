"""opkey: keyless signing with OpenID Connect, wire-compatible with OpenPubkey."""

from opkey._version import __version__

__all__ = ["__version__"]
