from typing import Any

import pytest


@pytest.fixture
def small_windows(settings: Any) -> None:
    """Training windows small enough for a test's telemetry: three days, one held out."""
    settings.LEARNING_TRAIN_DAYS = 3
    settings.LEARNING_HOLDOUT_DAYS = 1
    settings.LEARNING_MIN_ROWS = 500
    settings.LEARNING_MIN_HOLDOUT_ROWS = 100
    settings.LEARNING_HASH_BITS = 16
