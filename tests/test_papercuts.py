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
