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


@pytest.fixture(autouse=True)
def _fresh_conv_select():
    """The autotune flag and the conv algorithm table are process-wide: every test starts from, and leaves, the
    defaults (autotune off, no table)."""
    from numcnn.nn.functional import conv_select

    conv_select.set_autotune(False)
    conv_select.clear_algorithm_table()
    yield
    conv_select.set_autotune(False)
    conv_select.clear_algorithm_table()
