"""Random image augmentation inside a model, as Keras' preprocessing layers do it:
``RandomFlip``, ``RandomRotation``, ``RandomZoom`` and ``RandomTranslation`` on
channels-last images ``(height, width, channels)``. Each acts in training only (the
identity otherwise), draws its transform per example from the layer's key (row by row:
the same for any batch split), and has an exact backward (a flip is its own inverse; an
affine resampling is linear in the image, so its gradient scatters each output's gradient
back with the same weights)."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, example_shape, training_key
from funcnn.types import Cache, LayerState, Params, Shape

FLIP_MODES = {"horizontal": (2,), "vertical": (1,), "horizontal_and_vertical": (1, 2)}
FILL_MODES = ("reflect", "constant", "nearest", "wrap")
INTERPOLATIONS = ("bilinear", "nearest")


def _image_shape(layer: Layer, input_shape: Any) -> Shape:
    return example_shape(
        layer, input_shape, ("height", "width", "channels"), "reshape flat images first"
    )


def _choice(options: tuple[str, ...]) -> Any:
    """An attrs validator: the value is one of ``options``."""
    return check.field(lambda name, value: check.choice(name, value, options))


@attrs.frozen(repr=False)
class RandomFlip(Layer):
    """Each example flipped with probability 1/2 in training: left-right
    (``"horizontal"``), top-bottom (``"vertical"``) or both at once
    (``"horizontal_and_vertical"``, the default), as Keras' RandomFlip."""

    mode: str = attrs.field(default="horizontal_and_vertical", validator=_choice(tuple(FLIP_MODES)))

    def output_shape(self, input_shape: Shape) -> Shape:
        return _image_shape(self, input_shape)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        self.output_shape(x.shape[1:])
        if not train:
            return x, state, None
        flips = training_key(self, rng).uniform((x.shape[0], 1))[:, 0] <= 0.5
        return self._flip(x, flips), state, flips

    def _flip(self, x: np.ndarray, flips: np.ndarray) -> np.ndarray:
        y = x.copy()
        y[flips] = np.flip(x[flips], axis=FLIP_MODES[self.mode])
        return y

    def backward(
        self, params: Params, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Params, np.ndarray | None]:
        if not need_dx:
            return (), None
        return (), (dy if cache is None else self._flip(dy, cache))


def _fix(index: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Integer positions outside ``0 .. size - 1`` mapped in as ``mode`` does (the index
    fixers of scipy's and JAX's map_coordinates); "constant" leaves them for a mask."""
    if mode == "nearest":
        return np.clip(index, 0, size - 1)
    if mode == "wrap":
        return index % size
    if mode == "mirror":  # (d c b | a b c d | c b a)
        if size == 1:
            return np.zeros_like(index)
        s = size - 1
        return np.abs((index + s) % (2 * s) - s)
    if mode == "reflect":  # (d c b a | a b c d | d c b a)
        return (_fix(2 * index + 1, 2 * size + 1, "mirror") - 1) // 2
    return index


def _corners(
    y_in: np.ndarray, x_in: np.ndarray, shape: tuple[int, int], mode: str, interpolation: str
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """``(flat position, weight, valid)`` of each input pixel an output pixel reads, for
    the sampling positions ``y_in``, ``x_in`` (each ``(batch, h, w)``); ``valid`` is None
    where every position maps into the image (all fill modes but "constant")."""
    h, w = shape
    if interpolation == "nearest":  # round half away from zero, as JAX
        ys = [(np.sign(y_in) * np.floor(np.abs(y_in) + 0.5), np.ones_like(y_in))]
        xs = [(np.sign(x_in) * np.floor(np.abs(x_in) + 0.5), np.ones_like(x_in))]
    else:
        y0, x0 = np.floor(y_in), np.floor(x_in)
        ys = [(y0, 1 - (y_in - y0)), (y0 + 1, y_in - y0)]
        xs = [(x0, 1 - (x_in - x0)), (x0 + 1, x_in - x0)]
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    for yi, wy in ys:
        for xi, wx in xs:
            yi_int, xi_int = yi.astype(np.int64), xi.astype(np.int64)
            valid = (0 <= yi_int) & (yi_int < h) & (0 <= xi_int) & (xi_int < w)
            yf, xf = _fix(yi_int, h, mode), _fix(xi_int, w, mode)
            if mode != "constant":  # every position maps into the image
                found.append((yf * w + xf, wy * wx, None))
                continue
            yf, xf = np.where(valid, yf, 0), np.where(valid, xf, 0)
            found.append((yf * w + xf, wy * wx, valid))
    return found


def rotation_transforms(angles: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(batch, 6)``: for each angle (radians, counter-clockwise) the map ``[a0, a1, a2,
    b0, b1, b2]`` from an output pixel ``(x, y)`` to the input position it reads,
    ``x_in = a0 x + a1 y + a2``, ``y_in = b0 x + b1 y + b2``, a rotation about the image's
    centre (Keras' affine matrix with no shear, scale or translation)."""
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    cos, sin = np.cos(angles), np.sin(angles)
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - cx * a0 - cy * a1
    b2 = cy - cx * b0 - cy * b1
    return np.stack([a0, a1, a2, b0, b1, b2], axis=1)


@attrs.frozen(repr=False)
class _Affine(Layer):
    """An affine resampling of each image drawn in training (:meth:`transforms`), with
    ``interpolation`` ("bilinear" or "nearest") and positions outside the image filled as
    ``fill_mode`` says ("reflect", "constant" with ``fill_value``, "nearest", "wrap"), as
    Keras' affine image layers do."""

    fill_mode: str = attrs.field(default="reflect", kw_only=True, validator=_choice(FILL_MODES))
    interpolation: str = attrs.field(
        default="bilinear", kw_only=True, validator=_choice(INTERPOLATIONS)
    )
    fill_value: float = attrs.field(
        default=0.0, kw_only=True, converter=float, validator=check.field(check.real)
    )

    def transforms(self, u: np.ndarray, height: int, width: int) -> np.ndarray:
        """``(batch, 6)`` maps (see :func:`rotation_transforms`) from uniforms ``u`` of
        shape ``(batch, 2)``."""
        raise NotImplementedError

    def output_shape(self, input_shape: Shape) -> Shape:
        return _image_shape(self, input_shape)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        self.output_shape(x.shape[1:])
        if not train:
            return x, state, None
        u = training_key(self, rng).uniform((x.shape[0], 2))
        y, cache = self.sample(x, self.transforms(u, x.shape[1], x.shape[2]))
        return y, state, cache

    def sample(self, x: np.ndarray, transforms: np.ndarray) -> tuple[np.ndarray, Cache]:
        """``(x resampled, cache for backward)``: output pixel ``(x, y)`` of example ``i``
        reads the input at ``transforms[i]``'s image of it."""
        batch, h, w, channels = x.shape
        t = transforms[:, :, None, None]
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        x_in = t[:, 0] * cols + t[:, 1] * rows + t[:, 2]
        y_in = t[:, 3] * cols + t[:, 4] * rows + t[:, 5]
        corners = _corners(y_in, x_in, (h, w), self.fill_mode, self.interpolation)
        flat = x.reshape(batch, h * w, channels)
        out = np.zeros_like(x)
        fill = np.asarray(self.fill_value, x.dtype)
        for position, weight, valid in corners:
            values = np.take_along_axis(flat, position.reshape(batch, -1, 1), axis=1)
            values = values.reshape(x.shape)
            if valid is not None:
                values = np.where(valid[..., None], values, fill)
            out += weight[..., None].astype(x.dtype) * values
        return out, (x.shape, corners)

    def backward(
        self, params: Params, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Params, np.ndarray | None]:
        if not need_dx:
            return (), None
        if cache is None:
            return (), dy
        shape, corners = cache
        batch, h, w, channels = shape
        dx = np.zeros((batch, h * w, channels), dy.dtype)
        rows = np.broadcast_to(np.arange(batch)[:, None, None], (batch, h, w))
        for position, weight, valid in corners:
            weight = weight if valid is None else np.where(valid, weight, 0)
            part = dy * weight[..., None].astype(dy.dtype)
            np.add.at(dx, (rows.reshape(-1), position.reshape(-1)), part.reshape(-1, channels))
        return (), dx.reshape(shape)


@attrs.frozen(repr=False)
class RandomRotation(_Affine):
    """Each image rotated about its centre in training by an angle drawn uniformly from
    ``factor`` (fractions of a full turn: ``0.1`` is -36 to 36 degrees, ``(lo, hi)`` that
    range), as Keras' RandomRotation; fills and interpolation as :class:`_Affine`'s."""

    factor: tuple[float, float] = attrs.field(converter=lambda f: _factor(f, "RandomRotation"))

    def transforms(self, u: np.ndarray, height: int, width: int) -> np.ndarray:
        lo, hi = self.factor
        degrees = lo * 360.0 + (hi - lo) * 360.0 * u[:, 0]
        return rotation_transforms(np.deg2rad(degrees), height, width)


@attrs.frozen(repr=False)
class RandomZoom(_Affine):
    """Each image zoomed about its centre in training: its height scaled by ``1 + z``,
    ``z`` drawn uniformly from ``height_factor`` (a number f: -f to f; a pair: that range;
    positive zooms out), its width likewise from ``width_factor`` (None: the height's
    scale, keeping the aspect), as Keras' RandomZoom."""

    height_factor: tuple[float, float] = attrs.field(converter=lambda f: _factor(f, "RandomZoom"))
    width_factor: tuple[float, float] | None = attrs.field(
        default=None, converter=lambda f: None if f is None else _factor(f, "RandomZoom")
    )

    def transforms(self, u: np.ndarray, height: int, width: int) -> np.ndarray:
        lo, hi = self.height_factor
        zy = 1.0 + lo + (hi - lo) * u[:, 0]
        if self.width_factor is None:
            zx = zy
        else:
            lo, hi = self.width_factor
            zx = 1.0 + lo + (hi - lo) * u[:, 1]
        zero = np.zeros_like(zx)
        x_offset = (width - 1.0) / 2.0 * (1.0 - zx)
        y_offset = (height - 1.0) / 2.0 * (1.0 - zy)
        return np.stack([zx, zero, x_offset, zero, zy, y_offset], axis=1)


@attrs.frozen(repr=False)
class RandomTranslation(_Affine):
    """Each image shifted in training by a fraction of its height drawn from
    ``height_factor`` (a number f: -f to f; a pair: that range; positive moves it down)
    and of its width from ``width_factor`` (positive: right), as Keras'
    RandomTranslation."""

    height_factor: tuple[float, float] = attrs.field(
        converter=lambda f: _factor(f, "RandomTranslation")
    )
    width_factor: tuple[float, float] = attrs.field(
        converter=lambda f: _factor(f, "RandomTranslation")
    )

    def transforms(self, u: np.ndarray, height: int, width: int) -> np.ndarray:
        (hlo, hhi), (wlo, whi) = self.height_factor, self.width_factor
        dy = (hlo + (hhi - hlo) * u[:, 0]) * height
        dx = (wlo + (whi - wlo) * u[:, 1]) * width
        one, zero = np.ones_like(dx), np.zeros_like(dx)
        return np.stack([one, zero, -dx, zero, one, -dy], axis=1)


def _factor(value: Any, who: str) -> tuple[float, float]:
    """Keras' ``factor``: a number f (the range -f to f) or a pair, sorted (lo, hi)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{who} factor is a number or a pair (lo, hi), got {value!r}")
        lo, hi = sorted(check.real(f"{who} factor", v) for v in value)
    else:
        f = abs(check.real(f"{who} factor", value))
        lo, hi = -f, f
    if who != "RandomRotation" and not -1 <= lo <= hi <= 1:
        raise ValueError(f"{who} factors are fractions in [-1, 1], got {value!r}")
    return (lo, hi)
