"""scikit-learn estimators around any funcnn model: ``NeuralNetClassifier`` and
``NeuralNetRegressor``.

They are full scikit-learn citizens (``Pipeline``, ``GridSearchCV``,
``cross_val_score``, ``clone``): parameters are set in ``__init__`` and checked in
``fit``; ``random_state`` (0 by default) fixes the bits, so two fits with the same
parameters give the same model on any machine and thread count.

>>> from sklearn.model_selection import GridSearchCV
>>> search = GridSearchCV(NeuralNetClassifier(epochs=50), {"hidden_layer_sizes": [(16,), (64,)]})
>>> search.fit(X, y).best_params_

The network is ``model`` (any funcnn layer: the hidden part) followed by a ``Dense``
output layer sized from the data: one logit per class (softmax cross-entropy) for
the classifier, one output per target (mean squared error) for the regressor.
Without ``model`` it is a multilayer perceptron of ``hidden_layer_sizes`` units
and ``activation``, as scikit-learn's ``MLPClassifier``.

Needs scikit-learn (``pip install 'funcnn[sklearn]'``).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from types import FunctionType
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from funcnn import batching, losses, nn, optim, train, tree
from funcnn import callbacks as C
from funcnn import layers as L
from funcnn import validate as check
from funcnn.layers.base import Layer
from funcnn.random import as_generator

ACTIVATIONS = {"relu": L.Relu, "tanh": L.Tanh, "logistic": L.Sigmoid, "identity": L.Identity}

__all__ = ["NeuralNetClassifier", "NeuralNetRegressor"]


_OPTIMIZERS = sorted(
    name
    for name, f in vars(optim.aliases).items()
    if isinstance(f, FunctionType) and f.__module__ == optim.aliases.__name__
)  # what ``optimizer`` may name: funcnn.optim's optimizers, each with a learning rate

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_float32(a: np.ndarray, name: str) -> np.ndarray:
    """``a`` in the network's float32; a ValueError for values float32 cannot hold (they
    would become inf and every prediction NaN)."""
    big = float(max(a.max(), -a.min())) if a.size else 0.0  # no copy of a
    if big > _FLOAT32_MAX:
        raise ValueError(
            f"{name} holds values up to {big:.3g}, beyond float32's range (about 3.4e38) in "
            "which the network computes; scale it first (e.g. sklearn's StandardScaler)"
        )
    return a.astype(np.float32, copy=False)


def _sample_weights(sample_weight: Any, n: int) -> np.ndarray:
    """``sample_weight`` as ``n`` finite weights >= 0 (ones for None; a number for all)."""
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:  # one number for every sample
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must hold finite numbers >= 0")
    if not np.any(w > 0):
        raise ValueError("sample_weight needs a positive weight somewhere: every weight is zero")
    return w


_PARAMETERS_DOC = """
    Parameters
    ----------
    model : funcnn Layer or None, default=None
        The network's hidden part; the output layer is added to it. None: an MLP of
        ``hidden_layer_sizes`` units and ``activation`` ("relu", "tanh", "logistic",
        "identity"), as scikit-learn's ``MLPClassifier`` (which is also here, drop-in:
        ``funcnn.sklearn.MLPClassifier``).
    hidden_layer_sizes : sequence of int, default=(100,)
        The MLP's hidden widths (when ``model`` is None).
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        The MLP's activation (when ``model`` is None).
    optimizer : str or GradientTransformation, default="adam"
        A name in ``funcnn.optim`` ("adam", "sgd", "rmsprop", ...), called with
        ``learning_rate``; or an optimizer object, which holds its own rate (then
        ``learning_rate`` must be None).
    learning_rate : float, schedule or None, default=None
        The named optimizer's rate: a number or a schedule ``step -> rate``
        (``funcnn.schedules``); None is 1e-3.
    alpha : float, default=0.0
        The L2 penalty on the weights (not the biases), as scikit-learn's.
    epochs : int, default=200
        Passes over the data at most.
    batch_size : int, default=32
        Examples per update.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (a seeded split, stratified for the
        classifier) and stop when its loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, keeping the best epoch's params. Without it the
        training loss is watched the same way.
    validation_fraction : float, default=0.1
        The share held out by ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without an improvement by ``tol`` before stopping (0: never stop early).
    tol : float, default=1e-4
        The improvement of the watched loss that counts.
    warm_start : bool, default=False
        A second ``fit`` continues from the fitted params and optimizer state.
    callbacks : list of funcnn callbacks or None, default=None
        Run during each ``fit``.
    random_state : int or None, default=0
        Seeds the initialization, the shuffles, dropout and the validation split (None: a
        fresh seed each fit). The same seed gives the same bits on any machine.
    verbose : int, default=0
        0 silent, 1 or 2 one line per epoch.
"""


class _NeuralNet(BaseEstimator):
    """What the classifier and the regressor share; see the module's docstring."""

    def __init__(
        self,
        model: Layer | None = None,
        *,
        hidden_layer_sizes: Sequence[int] = (100,),
        activation: str = "relu",
        optimizer: Any = "adam",
        learning_rate: Any = None,
        alpha: float = 0.0,
        epochs: int = 200,
        batch_size: int = 32,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        warm_start: bool = False,
        callbacks: Sequence[Any] | None = None,
        random_state: int | None = 0,
        verbose: int = 0,
    ) -> None:
        self.model = model
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.epochs = epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose

    # -- what the subclasses say

    def _outputs(self, y: np.ndarray) -> int:
        raise NotImplementedError

    def _loss(self) -> losses.Loss:
        raise NotImplementedError

    def _encode(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _stratify(self, y: np.ndarray) -> np.ndarray | None:
        return None

    # -- building

    def _sizes(self) -> tuple[int, ...]:
        given: Any = self.hidden_layer_sizes
        if isinstance(given, (int, np.integer)):
            given = (given,)
        return tuple(check.positive_int("hidden_layer_sizes[i]", n) for n in given)

    def _hidden(self) -> Layer:
        if self.model is not None:
            if not isinstance(self.model, Layer):
                raise TypeError(f"model must be a funcnn Layer, got {type(self.model).__name__}")
            return self.model
        sizes = self._sizes()
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}, "
                f"got {self.activation!r}"
            )
        act = ACTIVATIONS[self.activation]
        return L.serial(*[layer for n in sizes for layer in (L.Dense(n), act)])

    def _optimizer(self) -> optim.GradientTransformation:
        if isinstance(self.optimizer, optim.GradientTransformation):
            if self.learning_rate is not None:
                raise ValueError(
                    f"learning_rate={self.learning_rate!r} would not be used: the optimizer "
                    "object holds its own rate. Pass learning_rate=None, or name the "
                    "optimizer (optimizer='adam', learning_rate=...)"
                )
            return self.optimizer
        if not isinstance(self.optimizer, str) or self.optimizer.startswith("_"):
            raise TypeError(
                "optimizer must be a name in funcnn.optim such as 'adam' or a "
                f"GradientTransformation, got {self.optimizer!r}"
            )
        make = getattr(optim.aliases, self.optimizer, None)
        if not isinstance(make, FunctionType) or make.__module__ != optim.aliases.__name__:
            # building blocks (scale_by_adam, trace, clip_by_global_norm...) have no
            # learning rate and no descent sign: given one, training would climb
            what = (
                "a building block without a learning rate, not an optimizer"
                if callable(getattr(optim, self.optimizer, None))
                else "not in funcnn.optim"
            )
            raise ValueError(
                f"optimizer {self.optimizer!r} is {what}; use one of {', '.join(_OPTIMIZERS)} "
                "or pass a GradientTransformation"
            )
        rate = 1e-3 if self.learning_rate is None else self.learning_rate
        if not callable(rate):  # a schedule step -> rate is checked at each step
            rate = check.positive("learning_rate", rate)
        return make(rate)

    def _check_settings(self) -> None:
        check.positive_int("epochs", self.epochs)
        check.positive_int("batch_size", self.batch_size)
        check.non_negative("alpha", self.alpha)
        check.boolean("early_stopping", self.early_stopping)
        check.boolean("warm_start", self.warm_start)
        check.non_negative_int("n_iter_no_change", self.n_iter_no_change)
        check.non_negative("tol", self.tol)
        check.non_negative_int("verbose", self.verbose)
        fraction = check.number("validation_fraction", self.validation_fraction)
        if self.early_stopping and not 0 < fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
        if self.random_state is not None:
            check.non_negative_int("random_state", self.random_state)

    def _seed(self) -> int:
        if self.random_state is None:  # a fresh seed, drawn from the OS, never NumPy's global
            return int(np.random.default_rng().integers(2**31))
        return int(self.random_state)

    # -- training

    def _prepare(
        self, X: Any, y: Any, sample_weight: Any, *, reset: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X, y = validate_data(
            self, X, y, reset=reset, dtype=(np.float32, np.float64), multi_output=self._multi
        )
        return _as_float32(X, "X"), y, _sample_weights(sample_weight, len(X))

    _multi = False

    def _start(self, X: np.ndarray, y: np.ndarray, seed: int) -> None:
        """A fresh network, params and optimizer state for this data."""
        if self.model is None:  # the size of what fit will hold, before any of it exists
            widths = [X.shape[1], *self._sizes(), self._outputs(y)]
            count = sum((a + 1) * b for a, b in itertools.pairwise(widths))
            check.fits_in_memory(  # params, gradients, two moments, updates, new params
                f"training a network of {count:,} params (layer widths {widths})",
                6 * 4 * count + 3 * 4 * min(self.batch_size, len(X)) * sum(widths),
                ": are hidden_layer_sizes what you meant?",
            )
        self.network_ = L.serial(self._hidden(), L.Dense(self._outputs(y)))
        self.params_ = self.network_.init(as_generator(seed), (X.shape[1],))
        self.state_ = self.network_.init_state((X.shape[1],))
        self.opt_state_ = self._optimizer().init(self.params_)
        self.history_: dict[str, list[float]] = {}
        self.n_iter_ = 0
        self.loss_curve_: list[float] = []

    def _train(
        self, X: np.ndarray, y: np.ndarray, weights: np.ndarray, epochs: int, seed: int
    ) -> None:
        target = self._encode(y)
        loss = losses.weighted(self._loss())
        validation, callbacks = None, list(self.callbacks or [])
        if self.early_stopping:
            X, target, weights, validation = self._hold_out(X, target, weights, y, seed)
        monitor = "val_loss" if validation is not None else "loss"
        if self.n_iter_no_change:
            callbacks.append(
                C.EarlyStopping(
                    monitor, patience=self.n_iter_no_change, min_delta=self.tol,
                    mode="min", restore_best=validation is not None,
                )
            )  # fmt: skip
        penalty = losses.l2_penalty(self.alpha, tree.kernel_mask) if self.alpha else None
        result = train.fit(
            self.network_, self.params_, loss, self._optimizer(), X, (target, weights),
            epochs=epochs, batch_size=min(self.batch_size, len(X)), rng=seed,
            validation_data=validation, callbacks=callbacks, verbose=min(self.verbose, 2),
            penalty=penalty, state=self.state_, opt_state=self.opt_state_,
        )  # fmt: skip
        self.params_, self.state_, self.opt_state_ = result.params, result.state, result.opt_state
        history = result.history
        for name, values in history.history.items():
            self.history_.setdefault(name, []).extend(values)
        ran = len(history.epochs)
        self.n_iter_ += ran
        self.loss_curve_ = list(self.history_["loss"])
        if ran == epochs and epochs > 1 and history.stopped_reason is None:
            warnings.warn(
                f"{type(self).__name__} ran all {epochs} epochs and the loss was still "
                "improving; more epochs may give a better model",
                ConvergenceWarning,
                stacklevel=batching.user_stacklevel(),
            )

    def _hold_out(
        self, X: np.ndarray, target: np.ndarray, weights: np.ndarray, y: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[Any, Any]]:
        from sklearn.model_selection import train_test_split

        rows = np.arange(len(X))
        stratify = self._stratify(y)
        train_rows, val_rows = train_test_split(
            rows, test_size=self.validation_fraction, random_state=seed, stratify=stratify
        )
        if len(train_rows) == 0 or len(val_rows) == 0:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves no training or no "
                f"validation examples out of {len(X)}"
            )
        validation = (X[val_rows], (target[val_rows], weights[val_rows]))
        return X[train_rows], target[train_rows], weights[train_rows], validation

    def _fit(self, X: Any, y: Any, sample_weight: Any) -> _NeuralNet:
        self._check_settings()
        warm = self.warm_start and hasattr(self, "params_")
        X, y, weights = self._prepare(X, y, sample_weight, reset=not warm)
        self._learn_targets(y, warm)
        seed = self._seed()
        if not warm:
            self._start(X, y, seed)
        self._train(X, y, self._weights(y, weights), self.epochs, seed + self.n_iter_)
        return self

    def _partial_fit(self, X: Any, y: Any, sample_weight: Any, classes: Any = None) -> _NeuralNet:
        self._check_settings()
        first = not hasattr(self, "params_")
        X, y, weights = self._prepare(X, y, sample_weight, reset=first)
        if first:
            self._learn_targets(y, False, classes)
            self._start(X, y, self._seed())
        else:
            self._learn_targets(y, True, classes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._train(
                X, y, self._weights(y, weights, whole=False), 1, self._seed() + self.n_iter_
            )
        return self

    def _learn_targets(self, y: np.ndarray, warm: bool, classes: Any = None) -> None:
        pass

    def _weights(self, y: np.ndarray, weights: np.ndarray, whole: bool = True) -> np.ndarray:
        """Each example's weight; ``whole``: the data are all there is (not a partial_fit)."""
        return weights

    def _outputs_of(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float32, np.float64))
        return train.predict(self.network_, self.params_, _as_float32(X, "X"), state=self.state_)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


class NeuralNetClassifier(ClassifierMixin, _NeuralNet):
    __doc__ = (
        """A funcnn network as a scikit-learn classifier (softmax cross-entropy on the logits).

    Takes every parameter of the module's estimators, and ``class_weight``: None,
    "balanced" (weights inversely proportional to class frequencies) or a dict
    ``{class: weight}``, multiplied into ``sample_weight``.

    Attributes after ``fit``: ``classes_``, ``n_features_in_``, ``network_`` (the whole
    funcnn model, output layer included), ``params_``, ``state_``, ``opt_state_``,
    ``history_`` (a dict of per-epoch logs), ``loss_curve_``, ``n_iter_`` (epochs run).
    """
        + _PARAMETERS_DOC
        + """
    class_weight : None, "balanced" or dict, default=None
        Multiplied into ``sample_weight``.
    """
    )

    classes_: np.ndarray

    def __init__(
        self,
        model: Layer | None = None,
        *,
        hidden_layer_sizes: Sequence[int] = (100,),
        activation: str = "relu",
        optimizer: Any = "adam",
        learning_rate: Any = None,
        alpha: float = 0.0,
        epochs: int = 200,
        batch_size: int = 32,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        warm_start: bool = False,
        callbacks: Sequence[Any] | None = None,
        random_state: int | None = 0,
        verbose: int = 0,
        class_weight: dict[Any, float] | str | None = None,
    ) -> None:
        super().__init__(
            model, hidden_layer_sizes=hidden_layer_sizes, activation=activation,
            optimizer=optimizer, learning_rate=learning_rate, alpha=alpha, epochs=epochs,
            batch_size=batch_size, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            tol=tol, warm_start=warm_start, callbacks=callbacks, random_state=random_state,
            verbose=verbose,
        )  # fmt: skip
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NeuralNetClassifier:
        """Train on ``X (n_samples, n_features)`` and class labels ``y (n_samples,)``."""
        return self._fit(X, y, sample_weight)

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> NeuralNetClassifier:
        """One epoch on ``(X, y)``; the first call needs every class in ``classes``."""
        return self._partial_fit(X, y, sample_weight, classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        return nn.softmax(self._outputs_of(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log-probabilities ``(n_samples, n_classes)``, computed stably from the logits."""
        return nn.log_softmax(self._outputs_of(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample ``(n_samples,)``."""
        scores = self._outputs_of(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def _learn_targets(self, y: np.ndarray, warm: bool, classes: Any = None) -> None:
        check_classification_targets(y)
        if warm:
            unseen = np.setdiff1d(y, self.classes_)
            if len(unseen):
                raise ValueError(
                    f"y holds classes {unseen.tolist()} that the fitted model does not know "
                    f"(it knows {self.classes_.tolist()})"
                )
            return
        found = np.unique(y) if classes is None else np.unique(np.asarray(classes))
        if classes is not None and len(np.setdiff1d(y, found)):
            raise ValueError(f"y holds classes not in classes={found.tolist()}")
        if len(found) < 2:
            raise ValueError(
                f"a classifier needs at least 2 classes to tell apart, got {len(found)} class"
            )
        self.classes_ = found

    def _partial_fit(self, X: Any, y: Any, sample_weight: Any, classes: Any = None) -> Any:
        if not hasattr(self, "params_") and classes is None:
            raise ValueError("the first call to partial_fit needs classes=[every class]")
        return super()._partial_fit(X, y, sample_weight, classes)

    def _weights(self, y: np.ndarray, weights: np.ndarray, whole: bool = True) -> np.ndarray:
        if self.class_weight is not None:
            if not (self.class_weight == "balanced" or isinstance(self.class_weight, dict)):
                raise ValueError(
                    "class_weight must be None, 'balanced' or a dict {class: weight}, got "
                    f"{self.class_weight!r}"
                )
            weights = weights * compute_sample_weight(self.class_weight, y)
        kept = np.unique(y[weights > 0])
        if whole and len(kept) < 2:
            raise ValueError(
                "the examples with a positive weight hold only "
                f"{len(kept)} class; a classifier needs at least 2 classes"
            )
        return weights

    def _outputs(self, y: np.ndarray) -> int:
        return len(self.classes_)

    def _loss(self) -> losses.Loss:
        return losses.softmax_cross_entropy

    def _encode(self, y: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _stratify(self, y: np.ndarray) -> np.ndarray | None:
        counts = np.unique(y, return_counts=True)[1]
        test = math.ceil(self.validation_fraction * len(y))
        return y if counts.min() >= 2 and test >= len(counts) else None


class NeuralNetRegressor(RegressorMixin, _NeuralNet):
    __doc__ = (
        """A funcnn network as a scikit-learn regressor (mean squared error, linear outputs).

    ``y`` may be ``(n_samples,)`` or ``(n_samples, n_targets)``; ``predict`` returns
    the same shape. Attributes as :class:`NeuralNetClassifier`'s, without ``classes_``.
    """
        + _PARAMETERS_DOC
    )

    _multi = True
    _one_target: bool

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NeuralNetRegressor:
        """Train on ``X (n_samples, n_features)`` and targets ``y``."""
        return self._fit(X, y, sample_weight)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> NeuralNetRegressor:
        """One epoch on ``(X, y)``, starting a model on the first call."""
        return self._partial_fit(X, y, sample_weight)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n_samples,)``, or ``(n_samples, n_targets)`` for 2-D targets."""
        out = self._outputs_of(X).astype(np.float64)
        return out[:, 0] if self._one_target else out

    def _learn_targets(self, y: np.ndarray, warm: bool, classes: Any = None) -> None:
        one = y.ndim == 1
        if warm and one != self._one_target:
            raise ValueError("y has a different number of targets than the fitted model")
        self._one_target = one

    def _outputs(self, y: np.ndarray) -> int:
        return 1 if y.ndim == 1 else y.shape[1]

    def _loss(self) -> losses.Loss:
        return losses.mean_squared_error

    def _encode(self, y: np.ndarray) -> np.ndarray:
        return _as_float32(y.reshape(len(y), -1), "y")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
