"""Shared pytest fixtures: real data copied from public sources (see tests/data/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Directory of the real fixtures (tokens, JWKS snapshots, vectors)."""
    return DATA
