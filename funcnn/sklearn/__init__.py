"""scikit-learn estimators computed by funcnn.

- ``MLPClassifier`` and ``MLPRegressor``: scikit-learn's own multilayer perceptrons,
  drop-in: the same parameters, defaults, fitted attributes and algorithm, so changing
  the import is the whole migration (:mod:`funcnn.sklearn.mlp`).
- ``NeuralNetClassifier`` and ``NeuralNetRegressor``: any funcnn model as a
  scikit-learn estimator (:mod:`funcnn.sklearn.neuralnet`).

All are full scikit-learn citizens (``Pipeline``, ``GridSearchCV``, ``clone``, pickle)
and pass ``check_estimator``. Needs scikit-learn (``pip install 'funcnn[sklearn]'``).
"""

from funcnn.sklearn.mlp import MLPClassifier, MLPRegressor
from funcnn.sklearn.neuralnet import ACTIVATIONS, NeuralNetClassifier, NeuralNetRegressor

__all__ = [
    "ACTIVATIONS",
    "MLPClassifier",
    "MLPRegressor",
    "NeuralNetClassifier",
    "NeuralNetRegressor",
]
