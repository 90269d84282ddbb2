"""Learning-rate schedules. They live in :mod:`funcnn.optim.schedules`; ``funcnn.schedules``
is the same module under its older name."""

import sys

from funcnn.optim import schedules

sys.modules[__name__] = schedules
