"""`functrans.nn`: activation functions with `jax.nn`'s names and derivatives.

Each is built from functrans primitives, so it is differentiable to any order. Where
`jax.nn` fixes a derivative at a kink (`relu'(0) = 0`), these agree with it.

    >>> import functrans as ft, functrans.nn as fnn
    >>> float(ft.grad(fnn.softplus)(0.0))
    0.5
"""

from __future__ import annotations

import math

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


def logsumexp(a, axis=None, keepdims=False):
    """`log(sum(exp(a)))` over `axis`, shifted by the (constant) maximum for stability."""
    a = _arr(a)
    # The shift is a constant: its maximum is taken of a constant, so no transformation
    # differentiates the maximum only to throw the derivative away.
    m = fnp.max(ew.stop_gradient(a), axis=axis, keepdims=True)
    m = fnp.where(fnp.isfinite(m), m, 0.0)
    out = fnp.log(fnp.sum(fnp.exp(a - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return out
    return fnp.squeeze(out, axis=fnp._axes(axis, fnp.ndim(a)) if axis is not None else None)


def log_softmax(x, axis=-1):
    x = _arr(x)
    shifted = x - fnp.max(ew.stop_gradient(x), axis=axis, keepdims=True)  # a constant shift
    return shifted - fnp.log(fnp.sum(fnp.exp(shifted), axis=axis, keepdims=True))


def softmax(x, axis=-1):
    x = _arr(x)
    unnormalized = fnp.exp(x - fnp.max(ew.stop_gradient(x), axis=axis, keepdims=True))
    return unnormalized / fnp.sum(unnormalized, axis=axis, keepdims=True)


def one_hot(x, num_classes, dtype=None):
    """`x[..., None] == arange(num_classes)` as floats (no derivative)."""
    dtype = dtype or fnp._default_float()
    x = fnp.asarray(x) if not isinstance(x, fnp.Tracer) else x
    return fnp.asarray(fnp.expand_dims(x, -1) == fnp.arange(num_classes), dtype)
