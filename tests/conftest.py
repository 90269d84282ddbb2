import os

import numpy as np
import pytest
from hypothesis import settings

from funcnn.testing import poisoned_empty

# Property tests are seeded like every other test: the same examples on every run and
# machine, so CI cannot fail on a draw it never saw before. HYPOTHESIS_PROFILE=explore
# draws fresh examples when hunting for new failures.
settings.register_profile("seeded", derandomize=True, database=None)
settings.register_profile("explore", database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "seeded"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- memory no one wrote: the "nan" run of the layer tests ---------------------------------
#
# A module that says ``pytestmark = pytest.mark.usefixtures("empty_memory")`` runs every
# test twice: as it is, and inside funcnn.testing.poisoned_empty(), where every array that
# funcnn's own code takes from np.empty or np.empty_like is filled with NaN (ints: their
# largest value; bools: True) first. A path that reads memory it never wrote then gives
# NaN or nonsense every time, not only when the allocator hands out garbage.


def pytest_generate_tests(metafunc):
    if "empty_memory" in metafunc.fixturenames:
        metafunc.parametrize("empty_memory", ["fresh", "nan"], indirect=True)


@pytest.fixture
def empty_memory(request):
    """The "fresh" run takes np.empty as it is; the "nan" run, poisoned for funcnn."""
    if request.param == "fresh":
        yield request.param
        return
    with poisoned_empty():
        yield request.param


# -- one short fit, as the training tests call it -------------------------------------------


@pytest.fixture
def quick_fit():
    """``quick_fit(model, x, y, epochs=1, **changes)``: ``funcnn.fit`` from ``model.init(0,
    x's sample shape)`` with softmax cross-entropy, Adam at 0.01 and ``verbose=0``, any of
    which ``changes`` may replace (``loss=``, ``optimizer=``, ``params=``, ``verbose=``)."""
    from funcnn import fit, losses, optim

    def run(model, x, y, *, epochs=1, loss=None, optimizer=None, params=None, **changes):
        params = model.init(0, np.shape(x)[1:]) if params is None else params
        loss = losses.softmax_cross_entropy if loss is None else loss
        optimizer = optim.adam(0.01) if optimizer is None else optimizer
        return fit(model, params, loss, optimizer, x, y, epochs=epochs, **{"verbose": 0, **changes})

    return run
