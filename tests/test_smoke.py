"""The package imports and reports its version."""

import opkey


def test_version_is_a_string() -> None:
    assert isinstance(opkey.__version__, str)
    assert opkey.__version__.count(".") == 2
