"""The type aliases used across funcnn, defined once.

Trees are nests of tuples (NamedTuples included), lists and dicts with arrays as
leaves (see :mod:`funcnn.tree`). The aliases name what a tree is for; the type
checker sees them all as ``Any``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = np.ndarray
Shape = tuple[Any, ...]
"""One example's shape, without the batch axis: ``(784,)``; a tuple of them for several inputs."""
Params = Any
"""A layer's trainable arrays: what ``init`` returns and optimizers update."""
LayerState = Any
"""A layer's non-trainable arrays (BatchNorm's running statistics): what ``init_state`` returns."""
Cache = Any
"""What a layer's forward keeps for its backward."""
Updates = Any
"""What an optimizer adds to the params: a tree like them."""
OptState = Any
"""An optimizer's state: what ``GradientTransformation.init`` returns."""
UpdateResult = tuple[Any, Any]
"""What an optimizer's ``update`` returns: ``(updates, new_opt_state)``."""
