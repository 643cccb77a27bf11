"""Shared fixtures: paths to the bundled sample tree and to ../shared."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "instafilters" / "data" / "sample"
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_photo() -> Path:
    return SAMPLE / "val" / "n03877845" / "china.JPEG"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    assert SHARED.is_dir(), f"reference data expected at {SHARED}"
    return SHARED
