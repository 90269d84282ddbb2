"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn's multilayer perceptrons, drop-in.

They take scikit-learn's parameters with its defaults, run its algorithm and expose
its fitted attributes, so that changing ``from sklearn.neural_network import
MLPClassifier`` to ``from funcnn.sklearn import MLPClassifier`` is the whole migration:

- the same network (``hidden_layer_sizes`` of ``activation`` units, then softmax for
  several classes, one logistic unit for two classes or per label, identity or exp for
  regression), initialised from the same ``random_state`` draws (Glorot uniform, biases
  too), shuffled the same way, in S.batches of ``min(200, n_samples)`` for "auto";
- the same loss (log loss, or half the squared error / Poisson deviance) plus
  ``alpha / 2 * sum(w**2)`` over each batch's weight, and its gradient;
- the same solvers: "adam", "sgd" with ``momentum``, ``nesterovs_momentum`` and the
  "constant", "invscaling" and "adaptive" learning rates, "lbfgs" (SciPy's L-BFGS-B);
- the same stopping rule (``tol`` and ``n_iter_no_change`` on the training loss, or on
  the validation score with ``early_stopping``, keeping the best epoch's weights).

What differs: the network computes in float32 (lbfgs: float64) through funcnn's layers and
products, so its bits do not depend on the thread count; Adam and SGD are funcnn's
(optax's formulas: Adam's ``eps`` is added to the bias-corrected root, and SGD's momentum
carries gradients, not steps, which is the same walk at a constant rate); and a
``random_state`` of None draws a fresh seed from the operating system, never from NumPy's
global state. ``network_`` and ``params_`` give the fitted funcnn model (its outputs are
the output layer's values before the output activation).
"""

from __future__ import annotations

import math
import warnings
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn import neural_network
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from funcnn import layers as L
from funcnn import linalg, optim
from funcnn.layers.base import Layer
from funcnn.layers.dense import DenseParams
from funcnn.sklearn import solvers as S
from funcnn.sklearn.neuralnet import ACTIVATIONS, _as_float32, _sample_weights
from funcnn.tree import freeze

__all__ = ["MLPClassifier", "MLPRegressor"]


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: the network, the loss and its
    gradient, the solvers and the stopping rule (see the module's docstring)."""

    # scikit-learn's own checks of its parameters (its messages, its version's rules)
    _parameter_constraints: ClassVar[dict] = {**neural_network.MLPClassifier._parameter_constraints}

    # set by the subclasses' __init__, which spell out every parameter for help()
    hidden_layer_sizes: Any
    activation: str
    solver: str
    alpha: float
    batch_size: Any
    learning_rate: str
    learning_rate_init: float
    power_t: float
    max_iter: int
    shuffle: bool
    random_state: Any
    tol: float
    verbose: Any
    warm_start: bool
    momentum: float
    nesterovs_momentum: bool
    early_stopping: bool
    validation_fraction: float
    beta_1: float
    beta_2: float
    epsilon: float
    n_iter_no_change: Any
    max_fun: int
    loss: str

    _label_binarizer: LabelBinarizer
    _opt_state: Any

    # -- what the subclasses say

    def _validate_input(
        self, X: Any, y: Any, incremental: bool, reset: bool
    ) -> tuple[Any, np.ndarray]:
        raise NotImplementedError

    def _output_activation(self) -> str:
        raise NotImplementedError

    def _score_outputs(
        self, outputs: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None
    ) -> float:
        raise NotImplementedError

    # -- the network

    def _network(self, units: list[int]) -> Layer:
        act = ACTIVATIONS[self.activation]
        hidden = [layer for n in units[1:-1] for layer in (L.Dense(n), act)]
        return L.serial(*hidden, L.Dense(units[-1]))

    def _initial_params(self, units: list[int], dtype: type) -> tuple[Any, ...]:
        """scikit-learn's draws from ``self._random_state``: for each layer, the weights
        then the biases, uniform in +-sqrt(factor / (fan_in + fan_out)) (factor 2 for the
        logistic activation, 6 otherwise)."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        params: list[Any] = []
        for fan_in, fan_out in pairwise(units):
            bound = math.sqrt(factor / (fan_in + fan_out))
            w = self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype)
            b = self._random_state.uniform(-bound, bound, fan_out).astype(dtype)
            params += [freeze(DenseParams(w, b)), ()]
        return tuple(params[:-1])

    def _set_params_(self, params: tuple[Any, ...]) -> None:
        self.params_ = params
        dense = params[::2]
        self.coefs_ = [p.w for p in dense]
        self.intercepts_ = [p.b for p in dense]

    def _outputs(self, params: tuple[Any, ...], X: Any) -> np.ndarray:
        """The output layer's activations for ``X``, in inference mode, a block at a time."""
        pieces = []
        with linalg.blas_held():
            for rows in S.batches(X.shape[0], 1024):
                x = S.dense_rows(X, rows, params[0].w.dtype)
                pieces.append(self.network_.apply(params, x))
        z = np.concatenate(pieces) if pieces else np.zeros((0, self.n_outputs_))
        return S.OUTPUT_ACTIVATIONS[self.out_activation_](z)

    def _loss_and_grads(
        self, params: tuple[Any, ...], x: np.ndarray, Y: np.ndarray, w: np.ndarray | None
    ) -> tuple[float, tuple[Any, ...]]:
        """The batch's loss (with the L2 term) and its gradient in the params."""
        z, _, cache = self.network_.forward_with_state(params, self._state, x, train=True)
        p = S.OUTPUT_ACTIVATIONS[self.out_activation_](z)
        loss = S.LOSSES[self.out_activation_](Y, p, w)
        delta = p - Y  # the canonical link: d loss / dz
        if w is not None:
            delta *= w[:, None]
        total = float(len(x)) if w is None else float(w.sum())
        delta /= total
        grads, _ = self.network_.backward(params, cache, delta, need_dx=False)
        if self.alpha:
            decay = self.alpha / total
            loss += 0.5 * decay * sum(float(np.sum(np.square(q.w))) for q in params[::2])
            grads = tuple(
                g if not isinstance(g, DenseParams) else DenseParams(g.w + decay * q.w, g.b)
                for g, q in zip(grads, params)
            )
        return loss, grads

    # -- fitting

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> Any:
        self._validate_params()
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if any(n <= 0 for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first)
        weights = None if sample_weight is None else _sample_weights(sample_weight, X.shape[0])
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        self.n_outputs_ = Y.shape[1]
        units = [X.shape[1], *sizes, self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if self.random_state is None:  # a fresh seed from the OS, not NumPy's global state
            self._random_state = np.random.RandomState(np.random.SeedSequence().generate_state(1))
        dtype = np.float64 if self.solver == "lbfgs" else X.dtype  # sklearn keeps X's
        if first:
            self._initialize(units, dtype)
        elif [c.shape for c in self.coefs_] != list(pairwise(units)):
            raise ValueError(
                f"the fitted network has layer widths {self.network_units_}, the data and "
                f"hidden_layer_sizes ask for {units}; set warm_start=False to start again"
            )
        X = S.in_range(X, dtype)
        params = freeze(tuple(S.as_dtype(p, dtype) for p in self.params_))
        self._state = self.network_.init_state((units[0],))
        Y = _as_float32(Y, "y").astype(dtype, copy=False)
        with linalg.blas_held():
            if self.solver == "lbfgs":
                params = self._fit_lbfgs(params, X, Y, weights)
            else:
                params = self._fit_stochastic(params, X, Y, weights, incremental)
        if not all(np.all(np.isfinite(a)) for p in params[::2] for a in p):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain "
                "large values and need to be preprocessed."
            )
        self._set_params_(params)
        return self

    def _initialize(self, units: list[int], dtype: type) -> None:
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(units)
        self.network_units_ = units
        self.out_activation_ = self._output_activation()
        self.network_ = self._network(units)
        self._set_params_(self._initial_params(units, dtype))
        if self.solver != "lbfgs":
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_: list[float] | None = []
                self.best_validation_score_: float | None = -np.inf
                self.best_loss_: float | None = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _optimizer(self) -> optim.GradientTransformation:
        if self.solver == "adam":
            return optim.adam(self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon)
        return S.sgd(self.learning_rate_init, self.momentum, self.nesterovs_momentum)

    def _rate(self) -> float:
        if isinstance(self._opt_state, S.SGDState):
            return self._opt_state.learning_rate
        return optim.current_learning_rate(self._opt_state)

    def _set_rate(self, rate: float) -> None:
        """The learning rate of the next updates ("invscaling" and "adaptive": S.sgd only)."""
        if isinstance(self._opt_state, S.SGDState):
            self._opt_state = self._opt_state._replace(learning_rate=rate)

    def _fit_stochastic(
        self,
        params: tuple[Any, ...],
        X: Any,
        Y: np.ndarray,
        weights: np.ndarray | None,
        incremental: bool,
    ) -> tuple[Any, ...]:
        flat = freeze(S.flat(params))  # one vector: one optimizer leaf, not one per array
        if not incremental or not hasattr(self, "_opt_state"):
            self._opt_state = self._optimizer().init(flat)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if self.early_stopping and not hasattr(self, "_best_params"):
            self._best_params = params
        update = self._optimizer().update
        X_val = y_val = w_val = None
        if self.early_stopping:
            stratify = Y if is_classifier(self) and self.n_outputs_ == 1 else None
            parts = [X, Y] if weights is None else [X, Y, weights]
            split = train_test_split(
                *parts,
                random_state=self._random_state,
                test_size=self.validation_fraction,
                stratify=stratify,
            )
            X, X_val, Y, y_val = split[:4]
            if weights is not None:
                weights, w_val = split[4:]
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the "
                    "size of your dataset."
                )
        n = X.shape[0]
        order = np.arange(n, dtype=int)
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn(
                    f"batch_size={self.batch_size} is larger than the {n} training samples; "
                    "it is clipped to the sample count",
                    stacklevel=4,
                )
            batch_size = int(np.clip(self.batch_size, 1, n))
        dtype = params[0].w.dtype
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            if self.shuffle:  # sklearn.utils.shuffle's draw, without its argument checks
                permutation = np.arange(n)
                self._random_state.shuffle(permutation)
                order = order[permutation]
            total = 0.0
            for batch in S.batches(n, batch_size):
                rows = order[batch]
                w = None if weights is None else weights[rows].astype(dtype)
                loss, grads = self._loss_and_grads(params, S.dense_rows(X, rows, dtype), Y[rows], w)
                total += loss * (batch.stop - batch.start)
                updates, self._opt_state = update(S.flat(grads), self._opt_state, flat)
                flat = optim.apply_updates(flat, updates)
                params = S.unflat(flat, params)
            self.n_iter_ += 1
            self.t_ += n
            self.loss_ = total / n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            self._count_no_improvement(params, X_val, y_val, w_val)
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                self._set_rate(self.learning_rate_init / (self.t_ + 1) ** self.power_t)
            if self._no_improvement_count > self.n_iter_no_change:
                if self._stop():
                    break
                self._no_improvement_count = 0
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and "
                    "the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=4,
                )
        if self.early_stopping:
            params = self._best_params
        return params

    def _count_no_improvement(
        self, params: tuple[Any, ...], X_val: Any, y_val: Any, w_val: Any
    ) -> None:
        if self.early_stopping:
            score = self._score_outputs(self._outputs(params, X_val), y_val, w_val)
            self.validation_scores_ = [*(self.validation_scores_ or []), score]
            if self.verbose:
                print(f"Validation score: {score:f}")
            best = -np.inf if self.best_validation_score_ is None else self.best_validation_score_
            if score < best + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > best:
                self.best_validation_score_ = score
                self._best_params = params
        else:
            best_loss = np.inf if self.best_loss_ is None else self.best_loss_
            if self.loss_curve_[-1] > best_loss - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(best_loss, self.loss_curve_[-1])

    def _stop(self) -> bool:
        """Whether to stop after ``n_iter_no_change`` epochs without improvement ("adaptive"
        divides the rate by 5 instead, until it is 1e-6 or less)."""
        what = "Validation score" if self.early_stopping else "Training loss"
        verb = "increase" if self.early_stopping else "improve"
        message = (
            f"{what} did not {verb} more than tol={self.tol:f} for "
            f"{self.n_iter_no_change} consecutive epochs."
        )
        rate = self._rate()
        if self.solver == "sgd" and self.learning_rate == "adaptive" and rate > 1e-6:
            self._set_rate(rate / 5.0)
            if self.verbose:
                print(f"{message} Setting learning rate to {rate / 5.0:f}")
            return False
        if self.verbose:
            print(f"{message} Stopping.")
        return True

    def _fit_lbfgs(
        self, params: tuple[Any, ...], X: Any, Y: np.ndarray, weights: np.ndarray | None
    ) -> tuple[Any, ...]:
        x = S.dense_rows(X, slice(None), np.float64)

        def unpack(flat: np.ndarray) -> tuple[Any, ...]:
            return S.unflat(freeze(flat.copy()), params)

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            loss, grads = self._loss_and_grads(unpack(flat), x, Y, weights)
            return loss, S.flat(grads)

        start = S.flat(params)
        result = scipy.optimize.minimize(
            objective,
            start,
            method="L-BFGS-B",
            jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
        )
        self.n_iter_ = min(int(result.nit), self.max_iter)
        if result.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status="
                f"{result.status}): {result.message}. Increase max_iter or scale the data.",
                ConvergenceWarning,
                stacklevel=4,
            )
        self.loss_ = float(result.fun)
        return unpack(result.x)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """Fit the model to ``X (n_samples, n_features)`` and ``y``; returns the estimator."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _predict_outputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(
            self, X, accept_sparse=["csr", "csc"], reset=False, dtype=(np.float64, np.float32)
        )
        return self._outputs(self.params_, S.in_range(X, self.coefs_[0].dtype))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_PARAMETERS_DOC = """
    hidden_layer_sizes : array-like of ints, default=(100,)
        The number of units of each hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        The hidden layers' activation.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'adam' and 'sgd' are funcnn's optimizers on mini-batches; 'lbfgs' is SciPy's
        L-BFGS-B on the whole data (float64), best for small data sets.
    alpha : float, default=1e-4
        Strength of the L2 penalty on the weights (not the biases).
    batch_size : int or 'auto', default='auto'
        Samples per mini-batch; 'auto' is min(200, n_samples). Not used by 'lbfgs'.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        'sgd' only: constant; learning_rate_init / (t + 1) ** power_t after t samples;
        or divided by 5 each time n_iter_no_change epochs fail to improve by tol.
    learning_rate_init : float, default=0.001
        The initial learning rate ('sgd' and 'adam').
    power_t : float, default=0.5
        The exponent of 'invscaling'.
    max_iter : int, default=200
        Epochs at most ('sgd', 'adam'); iterations at most ('lbfgs').
    shuffle : bool, default=True
        Shuffle the samples at each epoch ('sgd', 'adam').
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffles and the early-stopping split; an int gives
        the same bits on any machine and thread count. None: a fresh seed each fit.
    tol : float, default=1e-4
        The improvement of the loss (or validation score) that counts; for 'lbfgs' the
        gradient tolerance.
    verbose : bool, default=False
        Print the loss at each epoch.
    warm_start : bool, default=False
        Start ``fit`` from the fitted weights instead of new ones.
    momentum : float, default=0.9
        'sgd' momentum, in [0, 1].
    nesterovs_momentum : bool, default=True
        'sgd': Nesterov's momentum.
    early_stopping : bool, default=False
        Hold out validation_fraction of the data and stop when its score has not improved
        by tol for n_iter_no_change epochs, keeping the best epoch's weights.
    validation_fraction : float, default=0.1
        The share held out by early_stopping.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decays and its epsilon.
    n_iter_no_change : int, default=10
        Epochs without improvement by tol before stopping ('sgd', 'adam').
    max_fun : int, default=15000
        'lbfgs': the most loss evaluations."""

_ATTRIBUTES_DOC = """
    Attributes
    ----------
    coefs_, intercepts_ : lists of arrays
        Each layer's weights (n_in, n_out) and biases (n_out,).
    loss_ : float
        The loss of the last epoch (lbfgs: at the solution).
    loss_curve_ : list of float
        The loss of each epoch ('sgd', 'adam').
    best_loss_ : float or None
        The lowest epoch loss (None with early_stopping).
    validation_scores_, best_validation_score_ : list of float, float
        The held-out scores and the best one (early_stopping only, else None).
    n_iter_ : int
        Epochs run (lbfgs: iterations); ``t_`` samples seen.
    n_layers_, n_outputs_, out_activation_ : int, int, str
        Layers (input and output included), output units, the output activation.
    network_, params_ : funcnn layer and params
        The fitted funcnn model (its outputs are before the output activation)."""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = (
        """scikit-learn's ``MLPClassifier``, computed by funcnn: minimises the log loss.

    Two classes give one logistic output, more a softmax; a label-indicator ``y`` is
    multilabel (one logistic output per label).

    Parameters
    ----------"""
        + _PARAMETERS_DOC
        + _ATTRIBUTES_DOC
        + """
    classes_ : ndarray
        The class labels.
    """
    )

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: Any = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_fun: int = 15000,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def _validate_input(
        self, X: Any, y: Any, incremental: bool, reset: bool
    ) -> tuple[Any, np.ndarray]:
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        return X, self._label_binarizer.transform(y).astype(np.float32)

    def _output_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _score_outputs(
        self, outputs: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None
    ) -> float:
        truth = self._label_binarizer.inverse_transform(y)
        return float(accuracy_score(truth, self._labels(outputs), sample_weight=sample_weight))

    def _labels(self, outputs: np.ndarray) -> np.ndarray:
        if self.n_outputs_ == 1:
            outputs = outputs.ravel()
        return self._label_binarizer.inverse_transform(outputs)

    def predict(self, X: Any) -> np.ndarray:
        """The predicted classes ``(n_samples,)`` (multilabel: ``(n_samples, n_labels)``)."""
        return self._labels(self._predict_outputs(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        p = self._predict_outputs(X)
        if self.n_outputs_ == 1:
            return np.column_stack([1 - p[:, 0], p[:, 0]])
        return p

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        """One epoch over ``(X, y)``; the first call needs ``classes`` (every class)."""
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is "
                "not stochastic."
            )
        if getattr(self, "classes_", None) is None:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"`classes={np.unique(classes)}` is not the same as on the last call to "
                f"partial_fit, was: {self.classes_}"
            )
        return self._fit(X, y, sample_weight, incremental=True)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """scikit-learn's ``MLPRegressor``, computed by funcnn: minimises half the squared
    error
    (identity outputs) or, with ``loss="poisson"``, half the Poisson deviance (exp outputs).

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        The loss; 'poisson' needs targets >= 0 with a positive sum.""" + (
        _PARAMETERS_DOC + _ATTRIBUTES_DOC + "\n    "
    )

    _parameter_constraints: ClassVar[dict] = {**neural_network.MLPRegressor._parameter_constraints}

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: Any = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_fun: int = 15000,
    ) -> None:
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def _validate_input(
        self, X: Any, y: Any, incremental: bool, reset: bool
    ) -> tuple[Any, np.ndarray]:
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (np.any(y < 0) or not np.sum(y) > 0):
            raise ValueError(
                "loss='poisson' needs targets y >= 0 with a positive sum, got values from "
                f"{np.min(y)} to {np.max(y)}"
            )
        return X, np.asarray(y)

    def _output_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _score_outputs(
        self, outputs: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None
    ) -> float:
        if not np.all(np.isfinite(outputs)):
            return float("nan")
        return float(r2_score(y, outputs, sample_weight=sample_weight))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n_samples,)``, or ``(n_samples, n_outputs)`` for several targets."""
        out = self._predict_outputs(X)
        return out.ravel() if out.shape[1] == 1 else out

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``(X, y)``, starting a model on the first call."""
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is "
                "not stochastic."
            )
        return self._fit(X, y, sample_weight, incremental=True)
