"""`functrans.numpy.fft`: discrete Fourier transforms with `jax.numpy.fft`'s signatures.

`fft ifft rfft irfft fft2 ifft2 rfft2 irfft2 fftn ifftn rfftn irfftn fftfreq rfftfreq
fftshift ifftshift`, each differentiable at every order (the transforms are linear).

Example:
  >>> import functrans as ft, functrans.numpy as fnp
  >>> x = fnp.array([1.0, 2.0, 0.0, -1.0])
  >>> power = lambda x: fnp.sum(fnp.abs(fnp.fft.rfft(x)) ** 2)
  >>> float(power(x))
  14.0
  >>> [float(g) for g in ft.grad(power)(x)]
  [6.0, 10.0, 2.0, -2.0]
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as _np

from .._src.core import Tracer, get_aval
from .._src.prims import elementwise as ew
from .._src.prims import fft as _fft
from .._src.prims import structural as st
from .._src.prims.indexing import static_slice

_NORMS = (None, "backward", "ortho", "forward")


def _prepare(a, s, axes, name):
    from functrans import numpy as fnp

    a = a if isinstance(a, Tracer) else fnp.asarray(a)
    if not jnp.issubdtype(get_aval(a).dtype, jnp.inexact):
        a = ew.convert_element_type(a, jnp.result_type(float))
    ndim = get_aval(a).ndim
    if axes is None:
        axes = tuple(range(ndim - len(s), ndim)) if s is not None else tuple(range(ndim))
    axes = tuple(ax % ndim for ax in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"`functrans.numpy.fft.{name}` got repeated axes {axes}.")
    # transformed axes go last, in order
    rest = [i for i in range(ndim) if i not in axes]
    perm = (*rest, *axes)
    return st.transpose(a, perm), perm, len(axes)


def _fit(a, sizes):
    """Zero-pad or truncate the trailing axes of `a` to `sizes`."""
    shape = get_aval(a).shape
    k = len(sizes)
    lead = shape[: len(shape) - k]
    starts = [0] * len(shape)
    limits = list(shape)
    config = [(0, 0, 0)] * len(shape)
    for i, n in enumerate(sizes):
        ax = len(lead) + i
        if n < shape[ax]:
            limits[ax] = n
        elif n > shape[ax]:
            config[ax] = (0, n - shape[ax], 0)
    if limits != list(shape):
        a = static_slice(a, starts, limits)
    if any(c != (0, 0, 0) for c in config):
        a = st.pad(a, 0.0, config)
    return a


def _scale(out, norm, n, inverse, name):
    """Apply `norm` on top of `jax.lax.fft`'s own scaling (inverse transforms divide by n)."""
    if norm not in _NORMS:
        raise ValueError(
            f'`functrans.numpy.fft.{name}`: `norm` must be "backward", "ortho" or "forward", '
            f"got {norm!r} instead."
        )
    if norm in (None, "backward"):
        return out
    factor = math.sqrt(n) if norm == "ortho" else n
    factor = factor if inverse else 1 / factor
    return ew.mul(out, _np.asarray(factor, _np.finfo(get_aval(out).dtype).dtype))


def _undo(out, perm):
    inv = _np.argsort(perm)
    return st.transpose(out, tuple(int(i) for i in inv))


def _transform(kind, a, s, axes, norm, name):
    a, perm, k = _prepare(a, s, axes, name)
    shape = get_aval(a).shape
    if s is None:
        sizes = list(shape[len(shape) - k :])
        if kind == "IRFFT":
            sizes[-1] = 2 * (sizes[-1] - 1)
    else:
        sizes = [int(n) for n in s]
    if kind == "IRFFT":
        a = _fit(a, [*sizes[:-1], sizes[-1] // 2 + 1])
    else:
        a = _fit(a, sizes)
    out = _fft.fft(a, kind, tuple(sizes))
    out = _scale(out, norm, math.prod(sizes), kind in ("IFFT", "IRFFT"), name)
    return _undo(out, perm)


def _one_axis(kind, name):
    def transform(a, n=None, axis=-1, norm=None):
        return _transform(kind, a, None if n is None else (n,), (axis,), norm, name)

    transform.__name__ = name
    transform.__doc__ = f"As `jax.numpy.fft.{name}`: one axis, optional length `n` and `norm`."
    return transform


def _many_axes(kind, name, default_axes):
    def transform(a, s=None, axes=default_axes, norm=None):
        return _transform(kind, a, s, axes, norm, name)

    transform.__name__ = name
    transform.__doc__ = f"As `jax.numpy.fft.{name}`: axes `axes`, optional lengths `s`, `norm`."
    return transform


fft = _one_axis("FFT", "fft")
ifft = _one_axis("IFFT", "ifft")
rfft = _one_axis("RFFT", "rfft")
irfft = _one_axis("IRFFT", "irfft")
fft2 = _many_axes("FFT", "fft2", (-2, -1))
ifft2 = _many_axes("IFFT", "ifft2", (-2, -1))
rfft2 = _many_axes("RFFT", "rfft2", (-2, -1))
irfft2 = _many_axes("IRFFT", "irfft2", (-2, -1))
fftn = _many_axes("FFT", "fftn", None)
ifftn = _many_axes("IFFT", "ifftn", None)
rfftn = _many_axes("RFFT", "rfftn", None)
irfftn = _many_axes("IRFFT", "irfftn", None)


def fftfreq(n, d=1.0):
    """Sample frequencies of `fft` (a constant array), as `jax.numpy.fft.fftfreq`."""
    return jnp.fft.fftfreq(n, d)


def rfftfreq(n, d=1.0):
    """Sample frequencies of `rfft` (a constant array), as `jax.numpy.fft.rfftfreq`."""
    return jnp.fft.rfftfreq(n, d)


def _roll(x, shifts, axes):
    for shift, ax in zip(shifts, axes):
        n = get_aval(x).shape[ax]
        k = shift % n if n else 0
        if k:
            shape = get_aval(x).shape
            head = static_slice(x, [0] * len(shape), [*shape[:ax], n - k, *shape[ax + 1 :]])
            starts = [0] * len(shape)
            starts[ax] = n - k
            tail = static_slice(x, starts, list(shape))
            x = st.concatenate([tail, head], ax)
    return x


def _axes(x, axes):
    ndim = get_aval(x).ndim
    axes = tuple(range(ndim)) if axes is None else (axes,) if isinstance(axes, int) else axes
    return tuple(ax % ndim for ax in axes)


def fftshift(x, axes=None):
    """Move the zero frequency to the centre, as `jax.numpy.fft.fftshift`."""
    axes = _axes(x, axes)
    return _roll(x, [get_aval(x).shape[ax] // 2 for ax in axes], axes)


def ifftshift(x, axes=None):
    """The inverse of `fftshift`, as `jax.numpy.fft.ifftshift`."""
    axes = _axes(x, axes)
    return _roll(x, [-(get_aval(x).shape[ax] // 2) for ax in axes], axes)
