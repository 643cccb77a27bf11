"""Settings read from the environment, each in one place.

INSTAFILTERS_SHARED: the folder of reference data (calibration pairs, labelled photos) that
calibration, `make recipes`, `instafilters fidelity` and the tests read. Default: `shared`
beside the source checkout (../shared from the repository root), where CI puts it.
"""
from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "INSTAFILTERS_SHARED"
_CHECKOUT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The reference-data folder: $INSTAFILTERS_SHARED, else ../shared from the checkout."""
    return Path(os.environ.get(SHARED_ENV) or _CHECKOUT.parent / "shared")


def calibration_dir() -> Path:
    """The calibration pairs: <shared>/calibration (instagram/, hald/)."""
    return shared_dir() / "calibration"
