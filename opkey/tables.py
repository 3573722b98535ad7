"""Strict reading of configuration tables: policy files, issuer settings, admission configs.

Configuration arrives as decoded TOML (or JSON, or command-line flags turned into a table).
Every reader of such tables in opkey follows the same rules, so that a mistake is reported the
same way everywhere: unknown keys are refused (a misspelt key must not silently mean "use the
default"), every value is type-checked, and every message begins with the key path of the
value, e.g. ``signers[1].github.repository_id: expected a string, found integer 123`` (indices
count from 0). All of them raise :class:`~opkey.errors.ConfigError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opkey.errors import ConfigError

__all__ = [
    "join",
    "json_type_name",
    "reject_unknown",
    "require_array",
    "require_bool",
    "require_int",
    "require_string",
    "require_table",
    "show",
]


def json_type_name(value: Any) -> str:
    """The JSON name of a value's type (``string``, ``integer``, ``boolean``, ``array``…)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def show(value: Any) -> str:
    """A found value in an error message: ``integer 123``, ``string "x"``, ``a table``."""
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    return f"{json_type_name(value)} {value}"


def join(path: str, key: str) -> str:
    """The key path of ``key`` inside the table at ``path``."""
    return f"{path}.{key}" if path else key


def require_table(value: Any, path: str) -> Mapping[str, Any]:
    """``value`` if it is a table."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a table, found {show(value)}", found=value)
    return value


def require_array(value: Any, path: str) -> list[Any]:
    """``value`` if it is an array."""
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected an array, found {show(value)}", found=value)
    return value


def require_string(value: Any, path: str) -> str:
    """``value`` if it is a non-empty string."""
    if not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, found {show(value)}", found=value)
    if not value:
        raise ConfigError(f"{path}: must not be empty", found=value)
    return value


def require_bool(value: Any, path: str) -> bool:
    """``value`` if it is a boolean."""
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: expected a boolean, found {show(value)}", found=value)
    return value


def require_int(value: Any, path: str) -> int:
    """``value`` if it is an integer (booleans are not integers here)."""
    if type(value) is not int:
        raise ConfigError(f"{path}: expected an integer, found {show(value)}", found=value)
    return value


def reject_unknown(table: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    """Refuse any key of ``table`` that is not in ``allowed``."""
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{join(path, key)}: unknown key; expected one of {', '.join(allowed)}",
                found=key,
            )
