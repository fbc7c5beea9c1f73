"""The organism for integration tests: the shipped one, or LENS_TEST_ORGANISM=FOLDER."""

from __future__ import annotations

import os

import pytest

import lens
from lens import organism

FOLDER = os.environ.get("LENS_TEST_ORGANISM")


def require_organism() -> None:
    """Skip the calling test module when no organism is available."""
    if FOLDER is None and not (organism.SHIPPED / "config.json").is_file():
        pytest.skip("the organism is not shipped", allow_module_level=True)


@pytest.fixture(scope="session")
def model():
    """The organism, loaded once for the session (studies never edit it permanently)."""
    require_organism()
    return lens.load_model("organism", folder=FOLDER)
