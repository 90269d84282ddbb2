import os

import numpy as np
import pytest
from hypothesis import settings

# Property tests are seeded like every other test: the same examples on every run and
# machine, so CI cannot fail on a draw it never saw before. HYPOTHESIS_PROFILE=explore
# draws fresh examples when hunting for new failures.
settings.register_profile("seeded", derandomize=True, database=None)
settings.register_profile("explore", database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "seeded"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
