"""Shared fixtures. Tests that need ../shared skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ATOMBENCH_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The team's ../shared folder (fixtures, weights, experimental data)."""
    if not (SHARED / "SPEC-models.md").exists():
        pytest.skip(f"../shared is not present at {SHARED} (a user's clone); CI always has it")
    return SHARED


@pytest.fixture(scope="session")
def experimental_dir(shared_dir) -> Path:
    path = shared_dir / "data" / "experimental"
    if not (path / "cases.csv").exists():
        pytest.skip(f"no experimental dataset at {path}")
    return path
