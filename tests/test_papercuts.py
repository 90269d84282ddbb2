"""What a new user hits first: errors that say the fix, warnings that point at the caller."""

import numpy as np
import pytest

from funcnn import datasets
from funcnn import layers as L


@pytest.mark.parametrize(("given", "layer"), [("relu", "Relu"), ("softmax", "Softmax")])
def test_dense_with_keras_activation_says_how_to_write_it(given, layer):
    with pytest.raises(TypeError, match=rf"serial\(Dense\(10\), {layer}\).*keras\.layers\.Dense"):
        L.Dense(10, activation=given)
    assert L.Dense(10) == L.Dense(units=10)  # the usual forms still work


def test_standardizer_fits_in_either_spelling_and_refuses_unfitted_use():
    x = np.arange(12.0).reshape(6, 2)
    by_class, by_instance = datasets.Standardizer.fit(x), datasets.Standardizer().fit(x)
    np.testing.assert_array_equal(by_class.transform(x), by_instance.transform(x))
    with pytest.raises(ValueError, match=r"not fitted: .*scaler = Standardizer\.fit\(x_train\)"):
        datasets.Standardizer().transform(x)


def test_fits_warning_about_sorted_data_points_at_the_callers_line():
    from funcnn import fit, losses, optim

    x, y = np.zeros((40, 2), np.float32), np.repeat([0, 1], 20)  # sorted by class
    model = L.serial(L.Dense(2))
    with pytest.warns(UserWarning, match="look sorted by class") as caught:
        fit(model, model.init(0, (2,)), losses.softmax_cross_entropy, optim.sgd(0.1), x, y,
            epochs=1, validation_split=0.25, verbose=0)  # fmt: skip
    assert caught[0].filename == __file__
