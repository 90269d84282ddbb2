"""Optimizers as composable ``(init, update)`` transforms, in the optax style.

One concept per module: :mod:`~funcnn.optim.base` (the protocol, ``chain``,
``apply_updates``), :mod:`~funcnn.optim.leaves` (the leaf machinery every transform
uses), :mod:`~funcnn.optim.transforms` (scalings, the learning rate,
momentum, adaptive methods, weight decay), :mod:`~funcnn.optim.clipping`,
:mod:`~funcnn.optim.wrappers` (masked, apply_if_finite, multi_steps),
:mod:`~funcnn.optim.schedules`, :mod:`~funcnn.optim.aliases` (adam, sgd...), and
:mod:`~funcnn.optim.compiled` (Adam's update compiled by numba, an optional extra).

>>> opt = optim.adam(1e-3)
>>> opt_state = opt.init(params)
>>> updates, opt_state = opt.update(grads, opt_state, params)
>>> params = optim.apply_updates(params, updates)
"""

from funcnn.optim import schedules
from funcnn.optim.aliases import (
    adadelta,
    adagrad,
    adam,
    adamax,
    adamw,
    amsgrad,
    lion,
    momentum,
    nadam,
    nesterov,
    rmsprop,
    sgd,
)
from funcnn.optim.base import (
    ChainState,
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    identity,
)
from funcnn.optim.clipping import clip, clip_by_global_norm, clip_by_leaf_norm
from funcnn.optim.transforms import (
    ScaleByAdadeltaState,
    ScaleByAdamaxState,
    ScaleByAdamState,
    ScaleByAmsgradState,
    ScaleByLearningRateState,
    ScaleByLionState,
    ScaleByRmsState,
    ScaleByRssState,
    ScaleByStddevState,
    TraceState,
    add_decayed_weights,
    add_l1,
    current_learning_rate,
    scale,
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
    scale_learning_rate,
    set_learning_rate,
    trace,
)
from funcnn.optim.wrappers import (
    ApplyIfFiniteState,
    MaskedState,
    MultiStepsState,
    apply_if_finite,
    masked,
    multi_steps,
)

__all__ = sorted(name for name in dir() if not name.startswith("_"))  # everything above
