"""`functrans.nn`: activation functions with `jax.nn`'s names and derivatives.

Each is built from functrans primitives, so it is differentiable to any order. Where
`jax.nn` fixes a derivative at a kink (`relu'(0) = 0`), these agree with it.

    >>> import functrans as ft, functrans.nn as fnn
    >>> float(ft.grad(fnn.softplus)(0.0))
    0.5
"""

from __future__ import annotations

import math

import numpy as np

from . import numpy as fnp
from ._src.prims import elementwise as ew


def _arr(x):
    (x,) = fnp._promote(fnp.asarray(x) if ew.is_python_scalar(x) else x, to_inexact=True)
    return x


def sigmoid(x):
    """The logistic function `1 / (1 + exp(-x))`."""
    return ew.logistic_p.bind(_arr(x))


def relu(x):
    """`max(x, 0)`, with derivative 0 at 0 (as `jax.nn.relu`)."""
    x = _arr(x)
    return fnp.where(x > 0, x, 0.0)


def leaky_relu(x, negative_slope=0.01):
    x = _arr(x)
    return fnp.where(x >= 0, x, negative_slope * x)


def elu(x, alpha=1.0):
    x = _arr(x)
    safe = fnp.where(x > 0, 0.0, x)  # keeps expm1 from overflowing on the unused branch
    return fnp.where(x > 0, x, alpha * fnp.expm1(safe))


def gelu(x, approximate=True):
    """Gaussian error linear unit; `approximate=True` is the tanh form, as in `jax.nn`."""
    x = _arr(x)
    if approximate:
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * (x * x * x))
        return 0.5 * x * (1 + fnp.tanh(inner))
    return 0.5 * x * (1 + ew.erf_p.bind(x / math.sqrt(2)))


def silu(x):
    x = _arr(x)
    return x * sigmoid(x)


swish = silu


def softplus(x):
    """`log(1 + exp(x))`, computed stably."""
    return fnp.logaddexp(_arr(x), 0.0)


def log_sigmoid(x):
    return -softplus(-_arr(x))


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, where=None):
    """`log(sum(b * exp(a)))` over `axis`, shifted by the (constant) maximum for stability.

    Args:
      a: the exponents.
      axis: the axis or axes to sum over; all of them by default.
      b: optional scale factors, broadcast against `a`; where `b == 0` the entry of `a`
        does not count (not even if it is `inf`).
      keepdims: keep the summed axes, with size 1.
      return_sign: return `(log(abs(s)), sign(s))` for the scaled sum `s`; otherwise a
        negative `s` gives NaN.
      where: optional boolean mask (broadcast against `a` and `b`) of the entries to sum.

    Returns:
      The logarithm of the (scaled, masked) sum, or a `(log_abs, sign)` pair.

    >>> import functrans.nn as fnn, functrans.numpy as fnp
    >>> out, sign = fnn.logsumexp(fnp.zeros(2), b=fnp.asarray([1.0, -3.0]), return_sign=True)
    >>> round(float(out), 6), float(sign)  # log|1 - 3| = log 2
    (0.693147, -1.0)
    """
    if b is None and not return_sign and where is None:
        a = _arr(a)
        # The shift is a constant: its maximum is taken of a constant, so no transformation
        # differentiates the maximum only to throw the derivative away.
        m = fnp.max(ew.stop_gradient(a), axis=axis, keepdims=True)
        m = fnp.where(fnp.isfinite(m), m, 0.0)
        out = fnp.log(fnp.sum(fnp.exp(a - m), axis=axis, keepdims=True)) + m
        if keepdims:
            return out
        return fnp.squeeze(out, axis=fnp._axes(axis, fnp.ndim(a)) if axis is not None else None)
    a = _arr(a)
    shapes = [fnp.shape(a)] + [fnp.shape(v) for v in (b, where) if v is not None]
    full_shape = ew._broadcast_shapes(*shapes)  # as JAX: `b` and `where` may broadcast `a`
    mask = None if where is None else fnp._mask("logsumexp", where, full_shape)
    if mask is not None:
        a = fnp.where(mask, a, 0.0)
    if b is not None:
        a, b = fnp._promote(a, b, to_inexact=True)
        a = fnp.where(fnp.not_equal(b, 0), a, -math.inf)
    axes = fnp._axes(axis, fnp.ndim(a))
    kept = dict(axis=axes, keepdims=True, where=mask)
    m = fnp.max(ew.stop_gradient(a), initial=-math.inf, **kept)
    m = fnp.where(fnp.isfinite(m), m, 0.0)
    scaled = fnp.exp(a - m) if b is None else fnp.exp(a - m) * b
    total = fnp.sum(scaled, **kept)
    sign = fnp.sign(total)
    out = fnp.log(fnp.abs(total)) + m
    if not keepdims:
        out, sign = fnp.squeeze(out, axes), fnp.squeeze(sign, axes)
    if return_sign:
        return out, sign
    if b is not None:
        out = fnp.where(sign < 0, math.nan, out)
    return out


def log_softmax(x, axis=-1, where=None):
    """`x - logsumexp(x, axis, keepdims=True)`; with `where`, `-inf` at masked-out entries.

    The masked-out entries take no part in the normalization (as in `jax.nn.log_softmax`)
    and have a zero derivative.
    """
    x = _arr(x)
    if where is None:
        shifted = x - fnp.max(ew.stop_gradient(x), axis=axis, keepdims=True)  # a constant shift
        return shifted - fnp.log(fnp.sum(fnp.exp(shifted), axis=axis, keepdims=True))
    mask = fnp._mask("log_softmax", where, fnp.shape(x))
    x_safe = fnp.where(mask, x, -math.inf)
    shifted = x_safe - fnp.max(ew.stop_gradient(x_safe), axis=axis, keepdims=True)
    normalizer = fnp.log(fnp.sum(fnp.exp(shifted), axis=axis, keepdims=True, where=mask))
    return fnp.where(mask, shifted - normalizer, -math.inf)


def softmax(x, axis=-1, where=None):
    """`exp(x) / sum(exp(x))` along `axis`; with `where`, 0 at masked-out entries.

    The masked-out entries take no part in the normalization (as in `jax.nn.softmax`) and
    have a zero derivative.

    >>> import functrans.nn as fnn, functrans.numpy as fnp
    >>> fnn.softmax(fnp.asarray([1.0, 5.0, 1.0]), where=fnp.asarray([True, False, True])).tolist()
    [0.5, 0.0, 0.5]
    """
    x = _arr(x)
    if where is None:
        unnormalized = fnp.exp(x - fnp.max(ew.stop_gradient(x), axis=axis, keepdims=True))
        return unnormalized / fnp.sum(unnormalized, axis=axis, keepdims=True)
    mask = fnp._mask("softmax", where, fnp.shape(x))
    x_safe = fnp.where(mask, x, -math.inf)
    unnormalized = fnp.exp(x_safe - fnp.max(ew.stop_gradient(x_safe), axis=axis, keepdims=True))
    total = fnp.sum(unnormalized, axis=axis, keepdims=True, where=mask)
    return fnp.where(mask, unnormalized / total, 0.0)


def one_hot(x, num_classes, dtype=None, *, axis=-1):
    """`x[..., None] == arange(num_classes)` as floats (no derivative).

    `axis` is where the new axis of size `num_classes` goes in the result (the last by
    default), as in `jax.nn.one_hot`.
    """
    dtype = dtype or fnp._default_float()
    x = fnp.asarray(x) if not isinstance(x, fnp.Tracer) else x
    nd = fnp.ndim(x)
    (pos,) = fnp._axes(axis, nd + 1)
    if pos == nd:
        return fnp.asarray(fnp.expand_dims(x, -1) == fnp.arange(num_classes), dtype)
    classes = np.arange(num_classes).reshape(
        [num_classes if i == pos else 1 for i in range(nd + 1)]
    )
    return fnp.asarray(fnp.equal(fnp.expand_dims(x, pos), classes), dtype)
