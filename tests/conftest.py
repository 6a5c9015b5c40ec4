import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# CI draws the same examples every run (a landing never depends on luck); HYPOTHESIS_PROFILE=dev explores anew.
settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
