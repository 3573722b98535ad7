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
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from opkey.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


__all__ = [
    "MAX_CONFIG_BYTES",
    "join",
    "json_type_name",
    "parse_toml",
    "read_config_file",
    "reject_unknown",
    "require_array",
    "require_bool",
    "require_int",
    "require_string",
    "require_table",
    "require_version",
    "show",
]


#: Largest configuration file read (policy files, gate configurations): they are hand-written.
MAX_CONFIG_BYTES = 1024 * 1024


def read_config_file(path: str | os.PathLike[str], *, what: str) -> bytes:
    """A configuration file's bytes: a regular file of at most :data:`MAX_CONFIG_BYTES`."""
    from opkey.files import read_regular_file

    return read_regular_file(path, limit=MAX_CONFIG_BYTES, what=what, error=ConfigError)


def parse_toml(text: str | bytes, *, source: str) -> Mapping[str, Any]:
    """Decoded TOML of a configuration: UTF-8, at most :data:`MAX_CONFIG_BYTES`, a table."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    return data


def require_version(table: Mapping[str, Any], version: int) -> None:
    """The table's ``version`` key is present and exactly ``version`` (an integer)."""
    found = table.get("version")
    if found is None:
        raise ConfigError(f"version: required; this opkey reads version = {version}")
    if type(found) is not int or found != version:
        raise ConfigError(
            f"version: expected {version}, found {show(found)}", expected=version, found=found
        )


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
